#!/usr/bin/env bash
# One GPU call: optionally the issue 5/9 benchmarks first (alone on the GPU: BENCH=1; issue 5's lever rows and
# profiles: BENCH=levers, about 165 s; the targets with CUDA graphs and the SST-2 epoch: BENCH=final, ~500 s;
# the epoch target again, MiniLM and roberta-large shapes: BENCH=epoch, ~450 s; peft compiled too: BENCH=fair;
# the epoch target with full compiled epochs: BENCH=epoch2, ~450 s; cold vs warm compile caches across
# processes: BENCH=cold [SHAPE=roberta-large] [COLD_RUNS="cold_auto warm_auto"], ~250 s for MiniLM; CUDA graphs
# without a compiler, tests + epochs + step bench: BENCH=graphs, ~420 s),
# then the job plan of
# issues 3/4/9 (MiniLM jobs side by side, gpu_queue.py) until DEADLINE_S seconds after the start; all packed
# into $OUT. Optional COMPRESS=1: SVD-compress the knob runs' uniform prompts afterwards (issue 9).
#   device run (carry .device .snap [.prior]):
#     cd .snap && ln -sfn ../.device .device && BENCH=1 bash experiments/lab/gpu_call.sh PLAN DEADLINE_S [PARALLEL]
# A folder .prior/ (make_prior.sh; in the tree's root, or beside .snap) continues the plan of earlier calls.
set -u
plan=$1 deadline=$2 parallel=${3:-14}
T0=$(date +%s)
source experiments/lab/device_env.sh
if [[ ${BENCH:-0} == 1 ]]; then
  B=$DEEPPROMPT_OUTPUT_DIR/bench; mkdir -p "$B"
  echo "== issue 5 bench (methods_step preset)"
  timeout 270 python3 -m deepprompt.bench.cli --preset methods_step --out "$B/issue5_gpu.json" > "$B/issue5_gpu.log" 2>&1
  echo "exit $?"; grep -v "^\s*$" "$B/issue5_gpu.log" | tail -60
  echo "== one SST-2 epoch, MiniLM: static padding vs dynamic"
  timeout 180 python3 -m deepprompt.bench.cli epoch --task sst2 --model-path "$PWD/.device/minilm" \
    --data-dir "$DEEPPROMPT_DATA_DIR" --out "$B/epoch_sst2_minilm.json" > "$B/epoch_sst2_minilm.log" 2>&1
  echo "exit $?"; tail -15 "$B/epoch_sst2_minilm.log"
  echo "== issue 9 mixed-batch inference"
  timeout 90 python3 -m deepprompt.bench.multitask --backbone "$PWD/.device/minilm" --device cuda --dtype bf16 \
    --prompt 8,16,32 --batch 32,128,512 --seq 128 --repeats 20 --warmup 5 --json "$B/bench_multitask.json" \
    > "$B/bench_multitask.md" 2>&1
  echo "exit $?"; tail -15 "$B/bench_multitask.md"
  tar -C "$B" -czf "$OUT/bench.tar.gz" .
fi
if [[ ${BENCH:-0} == levers ]]; then  # issue 5's next levers (compile, CUDA graphs, no dropout) with profiles
  B=$DEEPPROMPT_OUTPUT_DIR/bench_levers; mkdir -p "$B"
  timeout 420 python3 -m deepprompt.bench.cli --preset speed_switches_profile --profile-trace "$B/traces" \
    --out "$B/issue5_levers.json" > "$B/issue5_levers.log" 2>&1
  echo "exit $?"; grep -v "^\s*$" "$B/issue5_levers.log" | tail -60
  tar -C "$B" -czf "$OUT/bench_levers.tar.gz" .
fi
if [[ ${BENCH:-0} == final ]]; then  # issue 5's targets with CUDA graphs, then one SST-2 epoch with each pipeline
  B=$DEEPPROMPT_OUTPUT_DIR/bench_final; mkdir -p "$B"
  timeout 280 python3 -m deepprompt.bench.cli --preset reduce_overhead_step --out "$B/issue5_final.json" \
    > "$B/issue5_final.log" 2>&1
  echo "exit $?"; grep -v "^\s*$" "$B/issue5_final.log" | tail -40
  timeout 240 python3 -m deepprompt.bench.cli epoch --task sst2 --model-path "$PWD/.device/minilm" \
    --data-dir "$DEEPPROMPT_DATA_DIR" --variants static,dynamic_bf16,dynamic_compile,dynamic_cudagraph \
    --budget-s 215 --out "$B/epoch_sst2_minilm.json" > "$B/epoch_sst2_minilm.log" 2>&1
  echo "exit $?"; tail -12 "$B/epoch_sst2_minilm.log"
  tar -C "$B" -czf "$OUT/bench_final.tar.gz" .
fi
if [[ ${BENCH:-0} == fair ]]; then  # issue 5: peft prefix compiled the same way as ours (~150 s on an H200)
  # straight into $OUT (the JSON is rewritten after every group): a call cut by its limit keeps what ran
  timeout "${FAIR_S:-380}" python3 -m deepprompt.bench.cli --preset compiled_prefix_step --out "$OUT/issue5_fair.json" \
    > "$OUT/issue5_fair.log" 2>&1
  echo "exit $?"; grep "^# lever\|^# target" "$OUT/issue5_fair.log"
fi
if [[ ${BENCH:-0} == epoch ]]; then  # issue 5's epoch target after the per-step sync fix (docs/performance.md)
  B=$DEEPPROMPT_OUTPUT_DIR/bench_epoch; mkdir -p "$B"
  timeout 200 python3 -m deepprompt.bench.cli epoch --task sst2 --model-path "$PWD/.device/minilm" \
    --data-dir "$DEEPPROMPT_DATA_DIR" --variants static,dynamic_bf16,dynamic_cudagraph,dynamic_cudagraph \
    --pad-multiple 32 --budget-s 180 --out "$B/epoch_sst2_minilm.json" > "$B/epoch_sst2_minilm.log" 2>&1
  echo "exit $?"; tail -8 "$B/epoch_sst2_minilm.log"
  timeout 260 python3 -m deepprompt.bench.cli epoch --task sst2 --model-path "$PWD/.device/minilm" --shape roberta-large \
    --data-dir "$DEEPPROMPT_DATA_DIR" --variants static,dynamic_bf16,dynamic_cudagraph,dynamic_cudagraph \
    --pad-multiple 32 --budget-s 240 --out "$B/epoch_sst2_roberta_large.json" > "$B/epoch_sst2_roberta_large.log" 2>&1
  echo "exit $?"; tail -8 "$B/epoch_sst2_roberta_large.log"
  tar -C "$B" -czf "$OUT/bench_epoch.tar.gz" .
fi
if [[ ${BENCH:-0} == epoch2 ]]; then  # the epoch target again: step logs every 50 steps, compiled runs unbroken
  B=$DEEPPROMPT_OUTPUT_DIR/bench_epoch2; mkdir -p "$B"
  for shape in minilm roberta_large; do
    extra=(); [[ $shape == roberta_large ]] && extra=(--shape roberta-large)
    timeout "$([[ $shape == minilm ]] && echo 170 || echo 330)" python3 -m deepprompt.bench.cli epoch --task sst2 \
      --model-path "$PWD/.device/minilm" "${extra[@]}" --data-dir "$DEEPPROMPT_DATA_DIR" \
      --variants static,dynamic_cudagraph,dynamic_cudagraph --pad-multiple 32 --budget-s 40 \
      --out "$B/epoch_sst2_$shape.json" > "$B/epoch_sst2_$shape.log" 2>&1
    echo "exit $?"; grep "^|\|^# " "$B/epoch_sst2_$shape.log" | tail -8
  done
  tar -C "$B" -czf "$OUT/bench_epoch2.tar.gz" .
fi
if [[ ${BENCH:-0} == cold ]]; then  # issue 5: cold vs warm compile caches across processes (SHAPE=minilm|roberta-large)
  shape=${SHAPE:-minilm}; extra=(); [[ $shape != minilm ]] && extra=(--shape "$shape")
  epoch() {  # $1: output name, $2: inductor cache folder, rest: variants
    local name=$1 cache=$2; shift 2
    TORCHINDUCTOR_CACHE_DIR=$cache timeout 280 python3 -m deepprompt.bench.cli epoch --task sst2 \
      --model-path "$PWD/.device/minilm" "${extra[@]}" --data-dir "$DEEPPROMPT_DATA_DIR" --variants "$1" \
      --pad-multiple 32 --budget-s 20 --out "$OUT/${name}_$shape.json" > "$OUT/${name}_$shape.log" 2>&1
    echo "exit $? $name"; grep "^|" "$OUT/${name}_$shape.log" | tail -3
  }
  rm -rf ${TMPDIR:-/tmp}/cache_auto ${TMPDIR:-/tmp}/cache_symbolic
  runs=" ${COLD_RUNS:-cold_auto cold_symbolic warm_auto} "  # COLD_RUNS="cold_auto warm_auto": the sweep pair only
  [[ $runs == *" cold_auto "* ]] && epoch cold_auto ${TMPDIR:-/tmp}/cache_auto static,dynamic_cudagraph  # first job of a sweep
  [[ $runs == *" cold_symbolic "* ]] && epoch cold_symbolic ${TMPDIR:-/tmp}/cache_symbolic static,dynamic_cudagraph_symbolic
  [[ $runs == *" warm_auto "* ]] && epoch warm_auto ${TMPDIR:-/tmp}/cache_auto static,dynamic_cudagraph  # later job, same cache
fi
if [[ ${BENCH:-0} == graphs || ${BENCH:-0} == graphs2 ]]; then  # issue 5: CUDA graphs without a compiler
  # graphs (call 19, ~420 s): the GPU half of tests/prompts/test_cuda_graphs.py, one SST-2 epoch per shape, the step
  # bench at the target shapes. graphs2 (call 20, ~260 s): the tests, then first epochs side by side (MiniLM's static
  # epoch whole, inductor's graphs with a cold cache next to ours). Each epoch bench is a new process (nothing
  # cached: a sweep's first job); every file goes straight into $OUT (a call cut short keeps what ran).
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/prompts/test_cuda_graphs.py > "$OUT/graphs_tests.log" 2>&1
  echo "exit $? tests"; tail -3 "$OUT/graphs_tests.log"
  name=epoch_graphs minilm=(--budget-s 50 --variants static,dynamic_bf16,dynamic_graphs)
  [[ $BENCH == graphs2 ]] && name=epoch_first minilm=(--budget-s 0 --variants static,dynamic_graphs,dynamic_cudagraph)
  for shape in minilm roberta-large; do
    extra=("${minilm[@]}")
    [[ $shape != minilm ]] && extra=(--shape "$shape" --budget-s 25 --variants static,dynamic_graphs)
    timeout 200 python3 -m deepprompt.bench.cli epoch --task sst2 --model-path "$PWD/.device/minilm" \
      --data-dir "$DEEPPROMPT_DATA_DIR" --pad-multiple 32 "${extra[@]}" --out "$OUT/${name}_$shape.json" \
      > "$OUT/${name}_$shape.log" 2>&1
    echo "exit $? epoch $shape"; grep "^|" "$OUT/${name}_$shape.log" | tail -3
  done
  if [[ $BENCH == graphs ]]; then
    timeout "${GRAPHS_S:-200}" python3 -m deepprompt.bench.cli --preset cuda_graphs_step \
      --out "$OUT/issue5_graphs.json" > "$OUT/issue5_graphs.log" 2>&1
    echo "exit $? bench"; grep "^| " "$OUT/issue5_graphs.log" | head -12
  fi
fi
budget=$(( deadline - ($(date +%s) - T0) - 30 ))
echo "== queue $plan: ${budget}s"
if (( budget < 60 )); then echo "no time left for the queue"; ls -la "$OUT"; exit 0; fi
prior=()
for dir in .prior ../.prior; do [[ -d $dir ]] && { prior=(--prior "$dir"); break; }; done  # tree root or .snap
if [[ ${#prior[@]} -gt 0 && -f ${prior[1]}/runs.tar.gz ]]; then  # make_prior.sh packs it into one archive
  rm -rf ${TMPDIR:-/tmp}/prior && mkdir -p ${TMPDIR:-/tmp}/prior && tar -C ${TMPDIR:-/tmp}/prior -xzf "${prior[1]}/runs.tar.gz" && prior=(--prior ${TMPDIR:-/tmp}/prior)
fi
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 20 > "$OUT/gpu_util.csv" 2>&1 &
python3 experiments/lab/gpu_queue.py --plan "$plan" --budget "$budget" --parallel "$parallel" \
  --steps-per-s "${STEPS_PER_S:-20}" \
  --root "$DEEPPROMPT_OUTPUT_DIR/queue" "${prior[@]}" "$MINILM" trainer=gpu extras.print_config=false \
  '~callbacks.rich_progress_bar' +trainer.enable_progress_bar=false callbacks.nan_guard.check_every_n_steps=25 \
  callbacks.step_checkpoint.every_n_train_steps=null > "$OUT/queue.log" 2>&1
tail -3 "$OUT/queue.log"
kill %1 2>/dev/null
if [[ ${COMPRESS:-0} == 1 ]]; then
  for run in "$DEEPPROMPT_OUTPUT_DIR"/queue/knobs*/*_uniform_s*; do
    [[ -f $run/metrics.json ]] || continue
    python3 -m deepprompt.compress run_dir="$run" > "$run/compress.log" 2>&1 &
  done
  wait
fi
tar -C "$DEEPPROMPT_OUTPUT_DIR/queue" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='*.pt' \
  -czf "$OUT/runs_$plan.tar.gz" .
ls -la "$OUT"
