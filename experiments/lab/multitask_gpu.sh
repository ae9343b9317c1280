#!/usr/bin/env bash
# Issue 9 on the GPU machine: joint multi-task P-Tuning v2 (RTE + CB + BoolQ on one frozen MiniLM), mixed and
# homogeneous batches, next to separate single-task runs with the same prompt config (length 20, lr 1e-2,
# seed 11), side by side on one GPU (one process each: wall times include contention); then the mixed-batch
# inference benchmark. Needs .device/ with rte, cb and boolq:
#   ../shared/tools/device-pack --data rte --data cb --data boolq
#   device run (carry .device): bash experiments/lab/issue9_multitask_gpu.sh
# Joint: 12,167 training examples / 32 = 381 steps per epoch, 10 epochs = 3,810 steps.
set -u
source experiments/lab/device_env.sh
T0=$(date +%s)
LOGS=$DEEPPROMPT_OUTPUT_DIR/logs; mkdir -p "$LOGS"  # packed into the archive ($OUT returns at most 8 files)
run() { local name=$1; shift; python3 -m deepprompt.train "$MINILM" trainer=gpu extras.print_config=false "$@" > "$LOGS/$name.log" 2>&1; echo "$name exit $? after $(( $(date +%s) - T0 )) s"; }
run joint_mixed experiment=knob_multitask task_name=issue9_joint_mixed &
run joint_homogeneous experiment=knob_multitask data.batch_mode=homogeneous task_name=issue9_joint_homogeneous &
run rte_separate experiment=rte_minilm seed=11 method.prompt.length=20 method.lr=1e-2 task_name=issue9_rte &
run cb_separate experiment=cb_minilm seed=11 method.prompt.length=20 method.lr=1e-2 task_name=issue9_cb &
run boolq_separate experiment=boolq_minilm seed=11 method.prompt.length=20 method.lr=1e-2 task_name=issue9_boolq &
wait
python3 -m deepprompt.bench.multitask --backbone "$PWD/.device/minilm" --device cuda --dtype bf16 \
  --prompt 8,16,32 --batch 32,128,512 --seq 128 --repeats 20 --warmup 5 --json "$OUT/bench_multitask.json" \
  | tee "$OUT/bench_multitask.md"
python3 -m deepprompt.report.cli "$DEEPPROMPT_OUTPUT_DIR" --out "$DEEPPROMPT_OUTPUT_DIR/report" > "$LOGS/report.log" 2>&1
cp "$DEEPPROMPT_OUTPUT_DIR/report/report.md" "$DEEPPROMPT_OUTPUT_DIR/report/report.csv" "$OUT/"
pack_runs issue9_runs
cat "$OUT/report.md"
