"""Where Wall's planning fails: the failures of ``benchmarks/model_table.py`` runs grouped by how far
the way through the door leads round the middle wall (``quantwm.envs.wall.detour_ratio``: the door
path's length over the straight distance from start to goal).

    python benchmarks/wall_detours.py RUN.json [RUN.json ...]

Each RUN.json is a ``model_table.py --env wall --json`` file; its seed and episode count give the
episodes, each checkpoint row's ``failed`` list the failures. One table per file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quantwm.envs.episodes import make_eval_episodes  # noqa: E402
from quantwm.envs.wall import detour_ratio  # noqa: E402

BANDS = (1.0, 1.4, 1.8, 2.2, np.inf)  # detour-ratio band edges


def table(run: dict) -> str:
    """Markdown: per detour-ratio band, the episodes in it and each checkpoint's failures among them."""
    args = run["args"]
    if args["env"] != "wall":
        raise ValueError(f"{args['json']} is a {args['env']} run; detours are Wall's")
    episodes = make_eval_episodes("wall", int(args["episodes"]), int(args["seed"]))
    ratios = np.array([detour_ratio(ep.start_state, ep.goal_state) for ep in episodes])
    rows = run["rows"]
    lines = [f"{len(episodes)} episodes of seed {args['seed']} (planner {args['planner']}, preset {args['preset']}, "
             f"set {args['set']})", "",
             "| door path / straight line | episodes | " + " | ".join(f"failures: {r['checkpoint']}" for r in rows) + " |",
             "|---" * (2 + len(rows)) + "|"]
    for lo, hi in zip(BANDS, BANDS[1:]):
        band = [i for i, r in enumerate(ratios) if lo <= r < hi]
        cells = []
        for row in rows:
            failed = sorted(set(row["failed"]) & set(band))
            cells.append(f"{len(failed)}" + (f" ({', '.join(map(str, failed))})" if failed else ""))
        label = f">= {lo:.1f}" if hi == np.inf else f"{lo:.1f}-{hi:.1f}"
        lines.append(f"| {label} | {len(band)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path, help="model_table.py --env wall --json files")
    for path in p.parse_args().runs:
        print(table(json.loads(path.read_text())), end="\n\n")


if __name__ == "__main__":
    main()
