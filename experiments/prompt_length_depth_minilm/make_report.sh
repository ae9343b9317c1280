#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/prompt_length_depth_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/prompt_length_depth_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
COMMON="$PLUMBING --ignore data.batch_size --ignore trainer.max_epochs --ignore optim.warmup_ratio --ignore method.lr"
$REPORT "$S/runs.jsonl:length/rte_*" "$S/runs.jsonl:depth/rte_*" --out "$S/rte" --title "P-Tuning v2 prompt length and depth on RTE, MiniLM, H100 (seed 1, 10 epochs)" $COMMON
$REPORT "$S/runs.jsonl:length/sst2_*" "$S/runs.jsonl:depth/sst2_*" --out "$S/sst2" --title "P-Tuning v2 prompt length and depth on SST-2, MiniLM, H100 (seed 1, 2 epochs, lr 2e-2)" $COMMON
