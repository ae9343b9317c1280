#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/prompt_dropout_minilm/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/prompt_dropout_minilm
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
M=experiments/method_comparison_minilm/runs.jsonl
$REPORT "$S/runs.jsonl" "$M:sst2_ptuning_v2_*" "$M:rte_ptuning_v2_*" "$M:sst2_prefix_s*" "$M:rte_prefix_s*" --out "$S" --title "P-Tuning v2 with prompt dropout 0 vs the default 0.1 vs peft prefix, SST-2 and RTE, MiniLM, H100 (lr chosen on seed 1, 3 seeds)" --tuned lr --reference prefix $PLUMBING --ignore data.batch_size --ignore trainer.max_epochs --ignore optim.warmup_ratio
