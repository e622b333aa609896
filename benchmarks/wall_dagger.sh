#!/usr/bin/env bash
# One DAgger round on Wall, on CPU: a base model plans, its plans are replayed in the real env, and
# a model is trained on the scripted episodes plus those replays (README, Results).
#   benchmarks/wall_dagger.sh [BASE_CHECKPOINT [NAME]]
# BASE_CHECKPOINT: the planning model's .json; without it, a first model is trained on the
# scripted data alone with the shipped recipe (`quantwm --threads 2 train --env wall`). NAME
# (default r1) names the round: its files are cache/dagger/NAME/, cache/data/wall_NAME,
# cache/runs/wall_NAME.
#   1. the scripted dataset (cache/data/wall)                                   ~1 min
#   2. the base model: BASE_CHECKPOINT, or trained (cache/dagger/wall_r0)       ~29 min, 2 threads
#   3. its quick-preset MPC on 80 training episodes (seeds 7 and 8, never the
#      evaluation seed 99), two 1-thread processes side by side                ~15-22 min
#   4. every plan of those episodes replayed in the env from the state it was
#      planned from, written as the plans split of cache/data/wall_NAME, which
#      hard-links the scripted splits (cache/data/wall stays scripted only)     ~1 min
#   5. the round's model, trained on scripted episodes + plan replays
#      (cache/dagger/NAME/wall.json)                                            ~30 min, 2 threads
# Then: quantwm eval --env wall --checkpoint cache/dagger/NAME/wall.json
# A finished step is skipped and training resumes where it stopped, so the script can be rerun
# after an interruption. Run from anywhere, with quantwm installed.
set -euo pipefail
cd "$(dirname "$0")/.."
W=cache/dagger
NAME=${2:-r1}
R="$W/$NAME"
DATA="cache/data/wall_$NAME"
mkdir -p "$R" "$DATA"

[ -f cache/data/wall/meta.json ] || quantwm data --env wall
BASE=${1:-$W/wall_r0.json}
if [ $# -eq 0 ] && [ ! -f "$BASE" ]; then
    quantwm --threads 2 train --env wall --run-dir cache/runs/wall_r0 --out "$BASE"
fi
[ -f "$BASE" ] || { echo "no checkpoint $BASE" >&2; exit 2; }
for seed in 7 8; do
    [ -f "$R/mpc_seed$seed.json" ] || quantwm --threads 1 eval --env wall --planner mpc --episodes 40 --seed "$seed" \
        --checkpoint "$BASE" --quiet --json "$R/mpc_seed$seed.json" &
done
wait
for split in meta.json train.npz val.npz calib.npz; do
    ln -f "cache/data/wall/$split" "$DATA/$split"
done
[ -f "$DATA/plans.json" ] || quantwm data --env wall --out "$DATA" --plans "$R/mpc_seed7.json" "$R/mpc_seed8.json" \
    --checkpoint "$BASE"
quantwm --threads 2 train --env wall --data-dir "$DATA" --run-dir "cache/runs/wall_$NAME" --out "$R/wall.json"
