"""The Explore tab without a browser: its callbacks on a tiny real result, and its API through
gradio_client (named endpoints, concurrent runs, a cached answer while another run computes)."""
from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from gradio_client import Client

from quantwm.cache import ResultsCache
from quantwm.experiment.options import RunOptions
from quantwm.experiment.run import ExperimentResult, cached_result, run_experiment
from quantwm.ui import UIContext, build_app, explore
from quantwm.ui.explore import (
    FIRST_CLICK, SHOW, Explore, RunSlots, dependent_controls, describe_planner, episode_choices, link_query, options_from,
    options_from_query, result_digest, show_result, summary_table,
)
from quantwm.ui.state import CONTROL_FIELDS, to_values

# what the controls do not set, shrunk so that an experiment takes seconds: one calibration episode, a short probe
TINY_BASE = RunOptions(calibration_episodes=1, calibration_size=24, probe_steps=3, videos=1)
TINY = {"planner": "cem", "episodes": 2}  # open-loop CEM: one plan per episode
UPDATE = {"__type__": "update"}  # gr.update() with nothing changed


def controls(options: RunOptions) -> dict[str, Any]:
    return dict(zip(CONTROL_FIELDS, to_values(options)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """An Explore tab on its own cache holding one computed tiny experiment (RTN W3 on Wall's predictor)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(explore, "base_options", lambda ctx: TINY_BASE)
        cache = ResultsCache(tmp_path_factory.mktemp("results"))
        options = TINY_BASE.with_values(w_bits=3, **TINY)
        result = run_experiment(options.config(), cache=cache)
        ctx = UIContext(cache=cache)
        yield SimpleNamespace(ctx=ctx, tab=Explore(ctx, RunSlots(1)), options=options, result=result, cache=cache)


# ---- pure formatting ---------------------------------------------------------------------------------
def test_summary_table_has_an_fp_and_a_quantized_row(tiny: SimpleNamespace) -> None:
    table = summary_table(tiny.result.value)
    assert list(table["side"]) == ["FP", "quantized"]
    assert list(table.columns) == explore.SUMMARY_COLUMNS
    assert all(re.fullmatch(r"\d+% \(\d/2\)", s) for s in table["success"])
    assert table.loc[0, "bits / weight"] == "32" and float(table.loc[1, "bits / weight"]) < 4
    assert table.loc[0, "quantize (s)"] == "-" and float(table.loc[1, "quantize (s)"]) > 0
    assert float(table.loc[1, "size (MB)"]) < float(table.loc[0, "size (MB)"])
    assert all(re.fullmatch(r"\d+ / \d+ / \d+|n/a", s) for s in table["failures: objective / model / search"])


def test_episode_picker_lists_the_episodes_with_videos_and_both_outcomes() -> None:
    def side(*successes: bool) -> dict[str, Any]:
        return {"episodes": [{"index": i, "success": ok} for i, ok in zip((0, 3, 5), successes)]}

    value = {"videos": ["imagination_3.mp4", "planning_3.mp4", "imagination_0.mp4", "planning_0.mp4"],
             "fp": side(True, True, False), "quant": side(True, False, False)}
    assert episode_choices(value) == [("episode 0 - FP ✓ / quantized ✓", 0), ("episode 3 - FP ✓ / quantized ✗", 3)]


def test_a_shown_result_fills_every_output(tiny: SimpleNamespace) -> None:
    out = dict(zip(SHOW, show_result(tiny.result, "from the cache", "w_bits=3", log_y=True, per_episode=True)))
    assert "RTN W3 per_channel predictor on Wall" in out["title"] and "2 episodes" in out["title"]
    episode = tiny.result.value["fp"]["episodes"][0]["index"]
    assert out["episode"].value == episode and len(out["episode"].choices) == 1  # videos = 1
    assert out["imagination"].endswith(f"imagination_{episode}.mp4")
    assert out["planning"].endswith(f"planning_{episode}.mp4")
    for name in ("latent", "scatter", "layers"):
        assert len(out[name].data) > 0, name
    assert out["latent"].layout.yaxis.type == "log"
    assert out["opt_plot"] is None and out["query"] == "w_bits=3"
    assert "points" not in out["digest"]["alignment"]["quant"] and out["digest"]["fp"]["episodes"] == 2  # a count
    assert out["digest"] == result_digest(tiny.result.value)


# ---- controls, checks and links ------------------------------------------------------------------------
@pytest.mark.parametrize("values, message", [
    ({"method": "awq", "a_bits": 4}, "AWQ is weight-only"),
    ({"w_granularity": "group", "group_size": None}, "group granularity needs an integer group_size"),
    ({"attention_matmuls": True}, "attention_matmuls quantizes at the activation bit-width"),
    ({"modules": ["decoder"], "blocks": ["predictor.blocks[2:]"]}, "not quantized"),
    ({"blocks": ["predictor.blocks[9]"]}, "out of range"),
    ({"w_bits": 16}, "no module group is quantized"),
])
def test_invalid_settings_are_explained_without_running(tiny: SimpleNamespace, values: dict, message: str) -> None:
    text = tiny.tab.check(**{**controls(tiny.options), **values})
    assert text.startswith("⚠️") and message in text


def test_a_disabled_group_size_is_ignored(tiny: SimpleNamespace) -> None:
    assert options_from({**controls(tiny.options), "group_size": 64}, TINY_BASE) == tiny.options
    grouped = options_from({**controls(tiny.options), "w_granularity": "group", "group_size": 64}, TINY_BASE)
    assert grouped.group_size == 64


def test_valid_settings_name_what_will_run(tiny: SimpleNamespace) -> None:
    assert tiny.tab.check(**controls(tiny.options.with_values(a_bits=8))) == "✓ RTN W3 per_channel A8 per_token predictor"
    assert "replans every 5 step(s)" in describe_planner("wall", "mpc", "paper")
    assert describe_planner("pusht", "gd", "quick").startswith("gradient descent")


def test_dependent_controls_enable_only_what_the_settings_take() -> None:
    w_gran, group, a_gran, attention = dependent_controls(3, "per_channel", None, 16, True)
    assert w_gran["interactive"] and not group["interactive"] and group["value"] == 32  # shown, ignored
    assert not a_gran["interactive"] and not attention["interactive"] and attention["value"] is False
    w_gran, group, a_gran, attention = dependent_controls(16, "group", None, 8, True)
    assert not w_gran["interactive"] and group["interactive"] and group["value"] == 32
    assert a_gran["interactive"] and attention["interactive"] and attention["value"] is True


@pytest.mark.parametrize("options", [
    RunOptions(), RunOptions(w_bits=3, episodes=4), RunOptions(env="pusht", method="gptq", w_granularity="group",
                                                             group_size=64, modules=("encoder", "predictor"),
                                                             blocks=("predictor.blocks[2:]",), a_bits=8,
                                                             attention_matmuls=True, planner="gd", seed=7)])
def test_a_link_restores_its_settings(options: RunOptions) -> None:
    query = link_query(options)
    assert query  # an empty query means the dashboard's defaults, not the CLI's
    assert options_from_query(dict(parse_qsl(query)), RunOptions()) == options


def test_restore_from_the_page_query(tiny: SimpleNamespace) -> None:
    request = SimpleNamespace(query_params={"w_bits": "5", "episodes": "4", "__theme": "dark"})
    *values, status, check = tiny.tab.restore(request)
    assert values == to_values(TINY_BASE.with_values(w_bits=5, episodes=4)) and status == ""
    assert check.startswith("✓ RTN W5")
    *values, status, check = tiny.tab.restore(SimpleNamespace(query_params={}))
    assert values == to_values(TINY_BASE.with_values(**FIRST_CLICK))
    for query, word in (({"w_bits": "x"}, "w_bits"), ({"env": "moon"}, "moon"), ({"episodes": "500"}, "episodes")):
        *values, status, check = tiny.tab.restore(SimpleNamespace(query_params=query))
        assert values == [UPDATE] * len(CONTROL_FIELDS) and "invalid" in status and word in status


# ---- runs: cache first, errors leave the shown result ----------------------------------------------------
def test_cached_shows_a_stored_result_and_never_computes(tiny: SimpleNamespace) -> None:
    status, *shown = tiny.tab.cached(**controls(tiny.options))
    assert status == "" and "from the cache" in shown[SHOW.index("title")]
    status, *shown = tiny.tab.cached(**controls(tiny.options.with_values(seed=99)))
    assert "Not computed yet" in status and shown == [UPDATE] * len(SHOW)
    assert cached_result(tiny.options.with_values(seed=99).config(), tiny.cache) is None
    status, *shown = tiny.tab.cached(**{**controls(tiny.options), "method": "awq", "a_bits": 4})
    assert status == "" and shown == [UPDATE] * len(SHOW)  # the check under the controls says why


@pytest.mark.parametrize("values, message", [({"method": "awq", "a_bits": 4}, "**Not run:** AWQ"),
                                             ({"blocks": ["predictor.blocks[9]"]}, "out of range")])
def test_a_failed_run_shows_a_message_and_leaves_the_outputs(tiny: SimpleNamespace, values: dict, message: str) -> None:
    status, *shown = asyncio.run(tiny.tab.run(**{**controls(tiny.options), **values}))
    assert message in status and "Traceback" not in status
    assert shown == [UPDATE] * len(SHOW)


def test_a_run_of_a_cached_configuration_answers_at_once(tiny: SimpleNamespace) -> None:
    start = time.time()
    status, *shown = asyncio.run(tiny.tab.run(**controls(tiny.options)))
    assert status == "" and "from the cache" in shown[SHOW.index("title")] and time.time() - start < 5


# ---- the API through gradio_client ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tiny: SimpleNamespace) -> Iterator[Client]:
    """The whole app, served in this process on the tiny tab's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(explore, "base_options", lambda ctx: TINY_BASE)
        app = build_app(cache=tiny.cache, concurrency=1)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield Client(f"http://127.0.0.1:{port}", verbose=False)
        finally:
            app.close()


def digest(outputs: tuple) -> dict[str, Any]:
    """The result JSON summary among an endpoint's outputs."""
    return next(o for o in outputs if isinstance(o, dict) and "label" in o and "key" in o)


def test_api_endpoints_are_named_and_take_the_control_names(client: Client, tiny: SimpleNamespace) -> None:
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/run", "/cached", "/opt_steps", "/check", "/link"} <= set(api)
    assert {p["parameter_name"] for p in api["/run"]["parameters"]} >= set(CONTROL_FIELDS)
    assert client.predict(w_bits=3, **TINY, api_name="/check").startswith("✓ RTN W3")
    assert client.predict(w_bits=3, **TINY, api_name="/link") == ("", link_query(tiny.options))
    assert digest(client.predict(w_bits=3, **TINY, api_name="/cached"))["key"] == tiny.result.key


def test_concurrent_api_runs_are_correct_and_a_cached_one_does_not_wait(client: Client, tiny: SimpleNamespace) -> None:
    jobs = {bits: client.submit(w_bits=bits, **TINY, api_name="/run") for bits in (4, 5)}
    start = time.time()
    cached = digest(client.predict(w_bits=3, **TINY, api_name="/run"))
    waited = time.time() - start
    assert cached["key"] == tiny.result.key and waited < 5
    assert not all(job.done() for job in jobs.values()), "the cached answer waited for the computing runs"
    for bits, job in jobs.items():
        got = digest(job.result(timeout=600))
        expected: ExperimentResult = cached_result(tiny.options.with_values(w_bits=bits).config(), tiny.cache)
        assert got["label"] == f"RTN W{bits} per_channel predictor" and got["key"] == expected.key
        assert got["quant"] == expected.value["quant"]["summary"]
