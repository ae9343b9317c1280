#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/method_comparison_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/method_comparison_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
$REPORT "$S/runs.jsonl" --out "$S" --title "Eight methods on SST-2, RTE, BoolQ, CB: MiniLM, H100 (lr tuned on seed 1, 3 seeds)" --tuned lr --reference finetune $PLUMBING --ignore data.batch_size --ignore trainer.max_epochs --ignore optim.warmup_ratio
# per seed at the tuned lr: P-Tuning v2 minus each method (SE, Welch p), the dev sets' majority class; reads tuned.csv
# written above and the dev labels (DEEPPROMPT_DATA_DIR, default ../shared/data)
$PY "$S/seed_tests.py" "$S/runs.jsonl" --out "$S" --data-dir "${DEEPPROMPT_DATA_DIR:-../shared/data}"
