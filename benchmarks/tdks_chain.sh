#!/usr/bin/env bash
# The whole chain of the shipped issue-18 functional `memory-switch` (docs/tdks.md), from
# nothing: the data, the four training commands of its network `avg-strongft-window`, the
# switch fitted on the training set, and the evaluation. Each step is the documented command; every one is resumable, so
# after an interruption (or on a machine that lost some of DATA) run the script again and it
# goes on where it stopped. Finished functionals are kept (a folder with manifest.json).
#
# Run:  bash benchmarks/tdks_chain.sh DATA [STEP]
#   DATA  a folder for the sets and functionals (about 6 GB)
#   STEP  stop after this step: data, pretrain, rounds, strong, window, switch, evaluate (default: all)
# Cost on the 2-core machine of BENCHMARKS.md: the training data about 2 h (2 workers); then the
# evaluation sets (about 1 h on one core) beside pretraining 40 min, DAgger rounds and
# fine-tuning 2.6 h, the strong-laser fine-tuning 27 min, re-gating seconds, the switch 1 min;
# the evaluation 3 min.
# `densitylab` must be on PATH (make's .venv/bin). With TDKS_CHAIN_KEEP=DIR each finished
# functional is also copied into DIR (e.g. benchmarks/results/tdks_chain of the checkout, to be
# committed: the weights are about 250 kB, and a lost machine took them once).
set -euo pipefail
DATA=$(realpath -m "${1:?usage: tdks_chain.sh DATA [STEP]}")
LAST=${2:-evaluate}
case "$LAST" in data | pretrain | rounds | strong | window | switch | evaluate) ;;
*) echo "STEP: expected data, pretrain, rounds, strong, window, switch or evaluate, got '$LAST'" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DATA"
cd "$DATA"
SHAPE=(--channels 32 --depth 4 --dilation 3)
DONE=()

EVALUATION_SETS=""

finish() {  # finish STEP: stop here (once the evaluation sets are made) when STEP is the last asked for
    DONE+=("$1")
    if [ "$1" = "$LAST" ]; then
        if [ -n "$EVALUATION_SETS" ]; then wait "$EVALUATION_SETS"; fi
        echo "chain: stopped after $1 (${DONE[*]})"
        exit 0
    fi
}

train() {  # train OUTPUT ARGS...: the functional OUTPUT, unless it is already finished
    local output=$1
    shift
    if [ -f "$output/manifest.json" ]; then
        echo "chain: $output is finished"
    else
        densitylab tdks functional --dataset "$DATA/all" --preset training "${SHAPE[@]}" --output "$output" "$@"
    fi
    if [ -n "${TDKS_CHAIN_KEEP:-}" ]; then mkdir -p "$TDKS_CHAIN_KEEP" && cp -r "$output" "$TDKS_CHAIN_KEEP/"; fi
}

# 1. The training data: the 12 training cases, the strong lasers and the two faster momenta
#    (trajectories and their exact v_c).
densitylab tdks dataset --output all --preset training --laser 0.12:0.5 --laser 0.15:0.5 \
    --momentum -1.9 --momentum -2.2 --workers 2
# The held-out and unseen cases (trajectories only) on the second core, beside the training.
(
    densitylab tdks dataset --output held --preset held-out --no-invert --workers 1
    densitylab tdks dataset --output extra --preset none --momentum -1.3 --momentum -1.7 \
        --momentum -2.4 --laser 0.10:0.5 --no-invert --workers 1
) > evaluation-sets.log 2>&1 &
EVALUATION_SETS=$!
finish data

# 2. Supervised pretraining on the exact v_c of the 12 training cases.
train walls-pre-seed1 --seed 1 --base sce --pretrain-epochs 30 --stride 4 --dagger-rounds 0 --horizon 0
finish pretrain

# 3. DAgger rounds on the functional's own propagations, then fine-tuning through them.
train avg-seed1 --seed 1 --init walls-pre-seed1 --pretrain-epochs 0 --stride 4 --dagger-rounds 5 \
    --dagger-epochs 4 --dagger-learning-rate 1e-3 --dagger-average 3 --horizon 600 \
    --truncated-iterations 8 --rollout-learning-rate 1e-4 --measure current --keep-best
finish rounds

# 4. Fine-tuning with the strong lasers added.
train avg-strongft --seed 1 --case laser-F0.120-w0.50 --case laser-F0.150-w0.50 --init avg-seed1 \
    --pretrain-epochs 0 --horizon 600 --truncated-iterations 8 --rollout-learning-rate 1e-4 \
    --measure current --keep-best
finish strong

# 5. The same weights under the whole-window gate.
train avg-strongft-window --init avg-strongft --gate-scope window --horizon 0
finish window

# 6. The switch: the network or an anchor per trajectory, chosen by the training cases nearest
#    in initial state (seconds per case).
if [ -f memory-switch/manifest.json ]; then
    echo "chain: memory-switch is finished"
else
    densitylab tdks switch --network avg-strongft-window --dataset "$DATA/all" --output memory-switch
fi
if [ -n "${TDKS_CHAIN_KEEP:-}" ]; then mkdir -p "$TDKS_CHAIN_KEEP" && cp -r memory-switch "$TDKS_CHAIN_KEEP/"; fi
finish switch

# 7. Max ∫|n_KS − n_exact| dx of each on the held-out and unseen cases, and the switch beside
#    the anchors.
wait "$EVALUATION_SETS" || { echo "chain: the evaluation sets failed (evaluation-sets.log)" >&2; exit 1; }
python "$HERE/tdks_rollout_errors.py" avg-seed1 avg-strongft avg-strongft-window -- held extra
python "$HERE/tdks_switch.py" memory-switch -- held extra
finish evaluate
