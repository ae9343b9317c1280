#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/layer_knobs_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/layer_knobs_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
K="$S/runs.jsonl"
COMMON="$PLUMBING --ignore data.batch_size --ignore trainer.max_epochs --ignore optim.warmup_ratio"
$REPORT "$K:rte_*" --out "$S/rte" --title "Per-layer prompt length profiles and layer-wise lr, P-Tuning v2, RTE, MiniLM, H100 (lr 2e-2, 10 epochs)" $COMMON --ignore method.lr
$PY "$S/knob_vs_uniform.py" "$K:rte_*" --out "$S/rte"
$REPORT "$K:sst2_*" --out "$S/sst2" --title "Per-layer prompt length profiles and layer-wise lr, P-Tuning v2, SST-2, MiniLM, H100 (lr 2e-2, uniform control at lr 3.3e-2, 2 epochs)" $COMMON
$PY "$S/knob_vs_uniform.py" "$K:sst2_*" --out "$S/sst2" --keep method.lr --base lr=2e-2 --versus layer_lr.profile=geometric lr=3.3e-2
