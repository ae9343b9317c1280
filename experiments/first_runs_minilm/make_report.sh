#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/first_runs_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/first_runs_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
$REPORT "$S/runs.jsonl" --out "$S" --title "First runs: P-Tuning v2 on MiniLM, SST-2 / RTE / CB, CPU and H100" --ignore backbone.name_or_path --ignore data.num_workers
