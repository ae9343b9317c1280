#!/usr/bin/env bash
# Regenerate this study's tables and figure from its compact records. Run from anywhere:
#   bash experiments/method_comparison_smollm2/make_report.sh
# After a GPU call, first record its runs (the folders stay out of git), then the same command regenerates:
#   mkdir -p "$TMPDIR/smol" && tar -C "$TMPDIR/smol" -xzf <files_at>/runs_smollm2.tar.gz
#   bash experiments/method_comparison_smollm2/make_report.sh "$TMPDIR/smol/queue_cls"          # -> runs.jsonl
# and after MiniLM's counterpart call (PART=minilm, runs_minilm.tar.gz):
#   MINILM_RUNS="$TMPDIR/mini/queue_cls" bash experiments/method_comparison_smollm2/make_report.sh  # -> minilm_budget.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
S=experiments/method_comparison_smollm2
record() {  # run folders -> one compact record (runs.jsonl format), free of machine paths
  PYTHON="$PY" bash experiments/lab/record_runs.sh "$1" "$2"
}
if [[ $# -ge 1 ]]; then record "$1" "$S/runs.jsonl"; fi
if [[ -n ${MINILM_RUNS:-} ]]; then record "$MINILM_RUNS" "$S/minilm_budget.jsonl"; fi
if [[ ! -f $S/runs.jsonl ]]; then
  echo "no $S/runs.jsonl yet: run the GPU call (experiments/lab/smollm2_gpu.sh), then pass its unpacked queue_cls/"
  exit 2
fi
# run plumbing and the protocol every run shares: not part of a setting
IGNORE=(backbone backbone.name_or_path data.num_workers trainer trainer.enable_progress_bar trainer.enable_checkpointing
  callbacks extras.print_config fast_path task_name data.batch_size trainer.max_epochs optim.warmup_ratio
  data.limit_train_examples method.prompt.init_std method.init_std)
# per method and task: mean ± std over the seeds at its one learning rate, differences to fine-tuning
$PY -m deepprompt.report.cli "$S/runs.jsonl" --out "$S/smollm2" --tuned lr --reference finetune \
  --title "Four methods on SST-2, BoolQ, RTE, CB: SmolLM2-135M, budget protocol (3 seeds)" "${IGNORE[@]/#/--ignore=}"
# MiniLM beside SmolLM2: the same budget protocol when its counterpart runs are recorded (the headline table,
# scales.md / gap.png, and MiniLM's own report in minilm_budget/), with the MiniLM comparison's full protocol at its
# tuned rates as a secondary reference (full_protocol_minilm/); before that, the full protocol alone
FULL=(--minilm experiments/method_comparison_minilm/runs.jsonl
  --minilm-tuned experiments/method_comparison_minilm/tuned.csv
  --label "the MiniLM comparison's FULL protocol at its tuned rates (not this study's budget: SST-2 all data, BoolQ 5 epochs all data, RTE 20 epochs)")
if [[ -f $S/minilm_budget.jsonl ]]; then
  MINILM=(--minilm "$S/minilm_budget.jsonl" --label "the same budget protocol and rates (minilm_budget.jsonl)"
    --figure-title "Gap to full fine-tuning, same budget protocol at both scales (± 1 SE)")
  $PY -m deepprompt.report.cli "$S/minilm_budget.jsonl" --out "$S/minilm_budget" --tuned lr --reference finetune \
    --title "Four methods on SST-2, BoolQ, RTE, CB: MiniLM-L6, the same budget protocol" "${IGNORE[@]/#/--ignore=}"
  $PY "$S/scale_table.py" --smollm2 "$S/runs.jsonl" "${FULL[@]}" --out "$S/full_protocol_minilm" \
    --figure-title "Gap to fine-tuning: MiniLM full protocol vs SmolLM2 budget (± 1 SE)" > /dev/null
else
  MINILM=("${FULL[@]}")
fi
$PY "$S/scale_table.py" --smollm2 "$S/runs.jsonl" "${MINILM[@]}" --out "$S"
$PY "$S/scale_table.py" --smollm2 "$S/runs.jsonl" "${MINILM[@]}" --epoch last --out "$S/last_epoch" > /dev/null
