#!/usr/bin/env bash
# Regenerate this study's reports from its compact record (runs.jsonl). Run from anywhere:
#   bash experiments/generation_e2e_smollm2/make_report.sh
# After the SmolLM2 GPU call (experiments/lab/smollm2_gpu.sh), record its E2E runs first (-> runs_gpu.jsonl):
#   bash experiments/generation_e2e_smollm2/make_report.sh "$TMPDIR/smol/queue_e2e"
# After the tuned calls (smollm2_gpu.sh PART=e2e_lr), record the learning-rate grid and the tuned seeds first
# (-> runs_gpu_lr.jsonl, runs_gpu_tuned.jsonl):
#   TUNED_RUNS=outputs/smollm2/queue_gen bash experiments/generation_e2e_smollm2/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python}"
REPORT="$PY -m deepprompt.report.cli"
S=experiments/generation_e2e_smollm2
# run plumbing, not part of a setting (device, progress bars, checkpoint cadence, where the weights lay)
PLUMBING="--ignore backbone.name_or_path --ignore data.num_workers --ignore trainer --ignore trainer.enable_progress_bar --ignore callbacks.nan_guard.check_every_n_steps --ignore callbacks.step_checkpoint.every_n_train_steps --ignore task_name"
IGNORE="--ignore=data.limit_eval_examples --ignore=data.eval_split --ignore=data.batch_size --ignore=data.eval_batch_size --ignore=data.generation.num_beams --ignore=data.generation.max_new_tokens --ignore=callbacks --ignore=logger --ignore=data.limit_train_examples --ignore=trainer --ignore=trainer.log_every_n_steps --ignore=trainer.max_epochs --ignore=trainer.num_sanity_val_steps --ignore=trainer.enable_checkpointing"
for sub in train200_test40 train512_test50; do
  $REPORT "$S/runs.jsonl:$sub/*" --out "$S/$sub" --metric val/bleu --title "E2E test subset ($sub), SmolLM2-135M-Instruct, CPU" $IGNORE
  $REPORT "$S/runs.jsonl:$sub/*" --out "$S/$sub/rouge_l" --metric val/rouge_l --title "E2E test subset ($sub), SmolLM2-135M-Instruct, CPU: ROUGE-L" $IGNORE
done
# GPU: the four methods on the full training set, 5-beam search on the official test set (runs_gpu.jsonl)
if [[ $# -ge 1 ]]; then
  PYTHON="$PY" bash experiments/lab/record_runs.sh "$1" "$S/runs_gpu.jsonl"  # free of machine paths
fi
if [[ -f $S/runs_gpu.jsonl ]]; then
  GPU_IGNORE="$IGNORE --ignore=trainer.limit_train_batches --ignore=optim.warmup_ratio --ignore=method.prompt.init_std --ignore=method.init_std --ignore=fast_path --ignore=extras.print_config --ignore=trainer.enable_progress_bar --ignore=backbone --ignore=backbone.name_or_path --ignore=task_name"
  $REPORT "$S/runs_gpu.jsonl" --out "$S/gpu_test" --metric val/bleu \
    --title "E2E official test set, full training set, SmolLM2-135M-Instruct, one GPU" $GPU_IGNORE
  $REPORT "$S/runs_gpu.jsonl" --out "$S/gpu_test/rouge_l" --metric val/rouge_l \
    --title "E2E official test set, full training set, SmolLM2-135M-Instruct, one GPU: ROUGE-L" $GPU_IGNORE
fi
# GPU, tuned: each method's learning rate picked on 200 dev MRs (runs_gpu_lr.jsonl), then seeds 1-3 at that rate
# on the official test set (runs_gpu_tuned.jsonl)
if [[ -n ${TUNED_RUNS:-} ]]; then
  PYTHON="$PY" bash experiments/lab/record_runs.sh "$TUNED_RUNS/e2e_smollm2_lr" "$S/runs_gpu_lr.jsonl"
  PYTHON="$PY" bash experiments/lab/record_runs.sh "$TUNED_RUNS/e2e_smollm2_tuned" "$S/runs_gpu_tuned.jsonl"
fi
if [[ -f $S/runs_gpu_tuned.jsonl ]]; then
  $REPORT "$S/runs_gpu_lr.jsonl" --out "$S/gpu_lr" --metric val/bleu \
    --title "E2E dev set (200 MRs), learning rate per method, SmolLM2-135M-Instruct, one GPU" $GPU_IGNORE
  $REPORT "$S/runs_gpu_tuned.jsonl" --out "$S/gpu_tuned" --metric val/bleu --ignore method.lr \
    --title "E2E official test set at each method's best dev learning rate, seeds 1-3, SmolLM2-135M-Instruct, one GPU" \
    $GPU_IGNORE
  $REPORT "$S/runs_gpu_tuned.jsonl" --out "$S/gpu_tuned/rouge_l" --metric val/rouge_l --ignore method.lr \
    --title "E2E official test set at each method's best dev learning rate, seeds 1-3: ROUGE-L" $GPU_IGNORE
fi
