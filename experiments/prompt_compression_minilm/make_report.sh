#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/prompt_compression_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/prompt_compression_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
L=experiments/prompt_length_depth_minilm/runs.jsonl
$PY "$S/compression_table.py" "$S/runs.jsonl" --trained "$L:length/rte_length*" --out "$S/rte"
$PY "$S/compression_table.py" "experiments/layer_knobs_minilm/runs.jsonl:sst2_uniform_s[0-9]" --trained "$L:length/sst2_length*" --out "$S/sst2"
