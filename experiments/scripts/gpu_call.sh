#!/usr/bin/env bash
# One GPU call of the issue 3/4/9 job plans: MiniLM jobs side by side on one GPU (gpu_queue.py), packed into $OUT.
#   device run (carry .device .snap [.prior]):
#     cd .snap && ln -sfn ../.device .device && bash experiments/scripts/gpu_call.sh PLAN BUDGET_S [PARALLEL]
# A folder .prior/ beside .snap (the packed runs of an earlier call, unpacked) continues that call's plan.
set -u
plan=$1 budget=$2 parallel=${3:-14}
source experiments/scripts/device_env.sh
prior=()
[[ -d ../.prior ]] && prior=(--prior ../.prior)
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 20 > "$OUT/gpu_util.csv" 2>&1 &
python3 experiments/scripts/gpu_queue.py --plan "$plan" --budget "$budget" --parallel "$parallel" \
  --root "$DEEPPROMPT_OUTPUT_DIR/queue" "${prior[@]}" "$MINILM" trainer=gpu extras.print_config=false \
  '~callbacks.rich_progress_bar' +trainer.enable_progress_bar=false callbacks.nan_guard.check_every_n_steps=25 \
  callbacks.step_checkpoint.every_n_train_steps=null 2>&1 | tee "$OUT/queue.log"
kill %1 2>/dev/null
tar -C "$DEEPPROMPT_OUTPUT_DIR/queue" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='*.pt' \
  -czf "$OUT/runs_$plan.tar.gz" .
ls -la "$OUT"
