#!/usr/bin/env bash
# Reproduce the shipped Wall model (assets/wall.*) on CPU, one DAgger round:
#   1. the scripted dataset (cache/data/wall)                                   ~1 min
#   2. a first model trained on it alone (cache/dagger/wall_r0)                 ~29 min, 2 threads
#   3. its quick-preset MPC on 80 training episodes (seeds 7 and 8, never the
#      evaluation seed 99), two 1-thread processes side by side                ~22 min
#   4. every plan of those episodes replayed in the env from the state it was
#      planned from (the plans split of cache/data/wall)                       ~1 min
#   5. the shipped model trained on scripted episodes + plan replays            ~29 min, 2 threads
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
quantwm --threads 2 train --env wall
