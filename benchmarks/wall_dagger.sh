#!/usr/bin/env bash
# One DAgger round on Wall, on CPU (README, Results: it did not improve planning, so it is not the
# shipped model; the first model below is the shipped recipe, `quantwm --threads 2 train --env wall`):
#   1. the scripted dataset (cache/data/wall)                                   ~1 min
#   2. a first model trained on it alone (cache/dagger/wall_r0)                 ~29 min, 2 threads
#   3. its quick-preset MPC on 80 training episodes (seeds 7 and 8, never the
#      evaluation seed 99), two 1-thread processes side by side                ~22 min
#   4. every plan of those episodes replayed in the env from the state it was
#      planned from (the plans split of cache/data/wall)                       ~1 min
#   5. a model trained on scripted episodes + plan replays (cache/dagger/wall_r1)  ~30 min, 2 threads
# Then: quantwm eval --env wall --checkpoint cache/dagger/wall_r1.json (the plans split stays in
# cache/data/wall, so delete plans.json / plans.npz before training on scripted data alone again).
# A finished step is skipped and training resumes where it stopped, so the script can be rerun
# after an interruption. Run from anywhere, with quantwm installed.
set -euo pipefail
cd "$(dirname "$0")/.."
W=cache/dagger
mkdir -p "$W"

[ -f cache/data/wall/meta.json ] || quantwm data --env wall
if [ ! -f "$W/wall_r0.json" ]; then
    rm -f cache/data/wall/plans.json cache/data/wall/plans.npz  # the first model sees scripted data only
    quantwm --threads 2 train --env wall --run-dir cache/runs/wall_r0 --out "$W/wall_r0.json"
fi
for seed in 7 8; do
    [ -f "$W/mpc_seed$seed.json" ] || quantwm --threads 1 eval --env wall --planner mpc --episodes 40 --seed "$seed" \
        --checkpoint "$W/wall_r0.json" --quiet --json "$W/mpc_seed$seed.json" &
done
wait
[ -f cache/data/wall/plans.json ] || quantwm data --env wall --plans "$W/mpc_seed7.json" "$W/mpc_seed8.json" \
    --checkpoint "$W/wall_r0.json"
quantwm --threads 2 train --env wall --run-dir cache/runs/wall_r1 --out "$W/wall_r1.json"
