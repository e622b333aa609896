#!/usr/bin/env bash
# Recompute every number derived from a shipped checkpoint (assets/ENV.*), for the submission that
# changes it. Run from anywhere, with quantwm installed (its venv active):
#   benchmarks/recompute.sh ENV
# Each step writes cache/recompute/ENV/STEP.log and is skipped once STEP.done exists, so a rerun
# after an interruption resumes. Two 1-thread steps run side by side, then the timed steps alone
# on both cores. What each step feeds:
#   eval_quick     README / docs/models.md results table (seed 99, 50 episodes)  cache/eval/ENV_*.json
#   eval_paper_*   docs/models.md DINO-WM comparison (paper preset)               cache/eval/ENV_*_paper.json
#   unseen_SEED    docs/models.md / README unseen-seed lines (100 episodes each)  cache/recompute/ENV/unseen_SEED.json
#   findings       assets/findings/, docs/findings.md tables (benchmarks/findings_tables.py), README table
#   rtn3, gptq3    docs/experiments.md "GPTQ against RTN" row
#   quant          docs/benchmarks.md quantization engine section
#   calibration    docs/experiments.md calibration paragraph (in-sample vs held-out SQNR)
#   planning       docs/benchmarks.md success-dependent planning numbers (sections b, f)
#   rollout_error  docs/models.md latent quality table
#   interactive    docs/models.md interactive limits: one MPC episode and one open-loop plan at a time, 2 threads
#   (detours.md)   docs/models.md: Wall's unseen-seed failures by how far the door path leads round
#   screenshot     docs/screenshots/findings.png, and explore.png for wall (README's Wall example; look at them)
# Hand-written prose (verdicts, ablation text) is then updated from these logs.
# PushT took 1 h 45 min on a 2-core AVX-512 host (2026-11-29, partly beside a training run); keep other
# jobs off the cores, or at least at autogroup nice 19 (`echo 19 > /proc/PID/autogroup`: plain nice does
# not reach across sessions), or the times it records are inflated.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV=${1:?usage: benchmarks/recompute.sh wall|pusht}
case "$ENV" in
    # Wall's line is measured on 20261207: its MPC budget was first tried on failures of 20261129
    wall) FINDINGS_EPISODES=20; PAPER_MPC_EPISODES=50; SHOTS="findings explore"; UNSEEN_SEEDS="20261207 20261129" ;;
    pusht) FINDINGS_EPISODES=10; PAPER_MPC_EPISODES=10; SHOTS=findings; UNSEEN_SEEDS=20261129 ;;  # PushT's paper MPC takes ~50 s per episode on one thread
    *) echo "unknown env '$ENV'; valid: wall, pusht" >&2; exit 2 ;;
esac
OUT=cache/recompute/$ENV
mkdir -p "$OUT"

step() {  # step NAME COMMAND...: run once, log, mark done
    local name=$1; shift
    if [ -f "$OUT/$name.done" ]; then echo "skip $name (done)"; return; fi
    echo "start $name: $*"
    "$@" > "$OUT/$name.log" 2>&1 && touch "$OUT/$name.done" && echo "done $name" || echo "FAILED $name: see $OUT/$name.log"
}

parallel_steps=("eval_quick python benchmarks/eval_table.py --env $ENV --threads 1 --planners mpc cem gd random")
for seed in $UNSEEN_SEEDS; do
    parallel_steps+=("unseen_$seed python benchmarks/model_table.py --env $ENV --checkpoints assets/$ENV.json --episodes 100 --seed $seed --threads 1 --json $OUT/unseen_$seed.json")
done
parallel_steps+=(
    "eval_paper_mpc python benchmarks/eval_table.py --env $ENV --threads 1 --preset paper --planners mpc --episodes $PAPER_MPC_EPISODES"
    "findings quantwm --threads 1 findings --env $ENV --episodes $FINDINGS_EPISODES --quiet"
    "eval_paper_open python benchmarks/eval_table.py --env $ENV --threads 1 --preset paper --planners cem gd"
    "rtn3 quantwm --threads 1 run --env $ENV --method rtn --w-bits 3 --episodes $FINDINGS_EPISODES --videos 0 --json $OUT/rtn3.json"
    "gptq3 quantwm --threads 1 run --env $ENV --method gptq --w-bits 3 --episodes $FINDINGS_EPISODES --videos 0 --json $OUT/gptq3.json"
    "quant python benchmarks/quant.py --env $ENV --threads 1"
    "calibration python benchmarks/calibration_holdout.py --env $ENV --threads 1"
    "rollout_error python benchmarks/rollout_error.py --env $ENV"
)
for spec in "${parallel_steps[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    # shellcheck disable=SC2086  # each spec is a name and a command line of plain words
    step $spec &
done
wait

step planning python benchmarks/planning.py --env "$ENV" --threads 2 --sections b f
step interactive_mpc quantwm --threads 2 eval --env "$ENV" --planner mpc --episodes 10 --batch-episodes 1 --quiet \
    --json "$OUT/interactive_mpc.json"
step interactive_cem quantwm --threads 2 eval --env "$ENV" --planner cem --episodes 10 --batch-episodes 1 --quiet \
    --json "$OUT/interactive_cem.json"
# shellcheck disable=SC2086  # SHOTS is a list of tab names
step screenshot python benchmarks/screenshots.py --tab $SHOTS
python benchmarks/findings_tables.py --env "$ENV" > "$OUT/findings_tables.md"
if [ "$ENV" = wall ]; then
    python benchmarks/wall_detours.py "$OUT"/unseen_*.json > "$OUT/detours.md"
fi
for f in "$OUT"/interactive_*.json; do
    python -c "import json, sys; s = json.load(open(sys.argv[1]))['results'][0]['summary']
print(f\"{s['planner']}: median {s['median_episode_s']:.2f} s per episode, one at a time, success {s['success_rate']:.2f}\")" "$f"
done
echo "logs in $OUT; findings tables in $OUT/findings_tables.md"
