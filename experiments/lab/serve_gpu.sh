#!/usr/bin/env bash
# deepprompt-serve on one GPU with MiniLM and four tasks (SST-2, RTE, BoolQ, CB), in one call:
#  (a) prompts: each task trained briefly on the GPU (deepprompt-train trainer=gpu, 300 steps, one epoch cut
#      short, the four runs side by side): real prompts and heads, so the load test's answers mean something
#      (latency does not depend on the prompts' values);
#  (b) latency of the server's forward, side by side in one process (python -m deepprompt.serve.latency): bare
#      backbone vs with prompts, eager vs CUDA graphs, batch 1 and 32 at T128 and T256: p50/p99 on the host,
#      CUDA-event time, the forward's kernel time (torch.profiler), graphs-vs-eager output difference;
#  (c) the HTTP load test of real deepprompt-serve processes (python -m deepprompt.serve.loadtest): 1, 4, 16 and
#      64 concurrent clients, mixed-task batching vs one task per batch: requests/s, p50/p99, and where the time
#      went (the batcher's worker busy fraction, queue wait, server and client CPU). The clients run in
#      client_processes=auto processes (one per 8 clients, at most half the CPUs: 8 for 64 clients on 16 cores);
#      each server captures every shape bucket at start-up (warmup_shapes), so the timed requests capture none.
# Also runs the GPU half of tests/serve/test_serve_graphs.py (real captures vs eager) beside the training.
# Writes $OUT/serve_gpu.{md,json} (with serve_latency.*, serve_load.*, serve_gpu_tests.txt, the runs' small files,
# the server logs).
#
# On the GPU machine, from the repository root (.device carried):  bash experiments/lab/serve_gpu.sh
# Expected on an H100: ~60 s training (start-up dominates), ~30 s latency, ~60-90 s load test (each server also
# captures its 56 shape buckets at start-up, a few seconds), ~15 s unpacking the site: ~3-4 min in all.
# Smoke test on a CPU (tiny backbone, a few requests; DEEPPROMPT_DATA_DIR must hold sst2/rte/boolq/cb):
#   SMOKE=1 OUT=$TMPDIR/serve_smoke bash experiments/lab/serve_gpu.sh
# SHAPE=large: (b) and (c) on a randomly initialised backbone of roberta-large's shape (24 layers, hidden 1024, 16
# heads, FFN 4096; BERT layers with MiniLM's vocabulary: the shape the latency targets name, as no such weights reach
# the device), where the forward, not the host's work per request, dominates a request; its prompts are trained for
# a few steps (their values do not change the time). The load test's servers get the same shape overrides; 16 and
# 64 clients (LARGE_CLIENTS), REQUESTS=2000 a row (3000 for MiniLM: each row a few seconds of load, not a
# fraction of one). Writes serve_gpu_large.{md,json}, serve_latency_large.*, serve_load_large.*.
#   SHAPE=large bash experiments/lab/serve_gpu.sh      (~3-4 min on an H100; SKIP_LATENCY=1: the load test alone)
#   LARGE_SHAPE="hidden_size=64 num_hidden_layers=3 num_attention_heads=4 intermediate_size=128": a smaller one
#   SMOKE=1 SHAPE=large LARGE_SHAPE="..." OUT=$TMPDIR/serve_smoke_large bash experiments/lab/serve_gpu.sh: on a CPU
set -u
export OUT=${OUT:-${TMPDIR:-/tmp}/serve_gpu}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
SMOKE=${SMOKE:-0}
if [[ $SMOKE != 1 && -d .device ]]; then
  source experiments/lab/device_env.sh  # the wheels, MiniLM ($MINILM), DEEPPROMPT_DATA_DIR=.device/data, $OUT/env.txt
else
  export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 \
    WANDB_MODE=offline
fi
PY=${PYTHON:-python3}
TASKS="sst2 rte boolq cb"
RUNS=${DEEPPROMPT_OUTPUT_DIR:-${TMPDIR:-/tmp}/dp_out}/serve_gpu
rm -rf "$RUNS" && mkdir -p "$RUNS"
[[ -n ${DEEPPROMPT_DATA_DIR:-} ]] || { echo "DEEPPROMPT_DATA_DIR is not set"; exit 1; }
for t in $TASKS; do [[ -d $DEEPPROMPT_DATA_DIR/$t ]] || { echo "DEEPPROMPT_DATA_DIR has no $t/"; exit 1; }; done

if [[ $SMOKE == 1 ]]; then
  BACKBONE=(backbone=tiny)
  TRAIN=(trainer=cpu debug=limit trainer.max_epochs=1 method.prompt.length=4)
  LATENCY=(batches=[1,4] lengths=[32,64] iters=8 warmup=1 rounds=2 profile=false)
  LOAD=(backbone=tiny device=cpu clients=[1,4] requests=12 warmup=4 inputs_per_task=8 threads=1 client_processes=2)
  SERVER=()
else
  [[ -n ${MINILM:-} ]] || { echo "MINILM is not set (source experiments/lab/device_env.sh)"; exit 1; }
  BACKBONE=(backbone=minilm "$MINILM")
  TRAIN=(trainer=gpu trainer.max_epochs=1 +trainer.limit_train_batches=300 data.limit_eval_examples=512)
  LATENCY=(batches=[1,32] lengths=[128,256] iters=200 warmup=10 rounds=4)
  LOAD=(backbone=minilm clients=[1,4,16,64] requests=${REQUESTS:-3000} warmup=200 inputs_per_task=64 max_batch=64 max_wait_ms=5
        client_processes=auto)
  SERVER=("server=[\"$MINILM\"]")
fi
# CLIENTS (e.g. [16,64]): the load test's client counts; SERVER_EXTRA (e.g. "graphs=false"): more server overrides,
# space-separated; TOKPAR=true: the servers tokenize a batch on all cores (TOKENIZERS_PARALLELISM); TAG: a suffix
# for the load test's files, so that variants of one call do not overwrite each other
[[ -n ${CLIENTS:-} ]] && LOAD=("${LOAD[@]/#clients=*/clients=$CLIENTS}")
SHAPE=${SHAPE:-minilm} SUFFIX=""
if [[ $SHAPE == large ]]; then  # random weights of roberta-large's shape
  LARGE_SHAPE=${LARGE_SHAPE:-hidden_size=1024 num_hidden_layers=24 num_attention_heads=16 intermediate_size=4096}
  BACKBONE=(backbone=tiny ${MINILM:-})
  served=(${MINILM:+"\"$MINILM\""})  # the servers' backbone overrides: the runs' own shape
  for kv in $LARGE_SHAPE; do
    BACKBONE+=("backbone.config_overrides.$kv")
    served+=("\"backbone.config_overrides.$kv\"")
  done
  SERVER=("server=[$(IFS=,; echo "${served[*]}")]")
  LOAD=("${LOAD[@]/#backbone=*/backbone=tiny}")
  if [[ $SMOKE != 1 ]]; then
    LOAD=("${LOAD[@]/#clients=*/clients=${LARGE_CLIENTS:-[16,64]}}")
    LOAD=("${LOAD[@]/#requests=*/requests=${REQUESTS:-2000}}")
  fi
  TRAIN+=(+trainer.max_steps=4)
  RUNS=$RUNS-large SUFFIX=_large
  rm -rf "$RUNS" && mkdir -p "$RUNS"
fi

# the real captures against the eager forward (tests/serve/test_serve_graphs.py, GPU half), beside the training
if [[ $SMOKE != 1 && $SHAPE != large ]]; then
  $PY -m pytest -q -p no:cacheprovider tests/serve/test_serve_graphs.py -k gpu > "$OUT/serve_gpu_tests.txt" 2>&1 &
fi
# (a) four short runs side by side
t0=$(date +%s.%N)
for t in $TASKS; do
  $PY -m deepprompt.train "${TRAIN[@]}" "data=$t" "${BACKBONE[@]}" extras.print_config=false \
    "hydra.run.dir=$RUNS/$t" > "$RUNS/$t.log" 2>&1 &
done
wait
train_s=$($PY -c "print(round($(date +%s.%N) - $t0, 1))")
prompts=""
for t in $TASKS; do
  if [[ ! -f $RUNS/$t/prompts/best/prompt_config.json && ! -f $RUNS/$t/prompts/last/prompt_config.json ]]; then
    echo "== $t: no prompt export; the end of its log:"; tail -n 30 "$RUNS/$t.log"; exit 1
  fi
  prompts+="${prompts:+, }$t: $RUNS/$t"
done
echo "== (a) four runs trained side by side in $train_s s"
[[ -f $OUT/serve_gpu_tests.txt ]] && echo "== GPU tests: $(tail -n1 "$OUT/serve_gpu_tests.txt")"

# (b) latency, one process (SKIP_LATENCY=1: the load test alone)
[[ ${SKIP_LATENCY:-0} == 1 ]] || $PY -m deepprompt.serve.latency "prompts={$prompts}" "${LATENCY[@]}" "out=$OUT/serve_latency$SUFFIX.json" \
  2> "$OUT/serve_latency$SUFFIX.log" | tee "$OUT/serve_latency$SUFFIX.md"
[[ ${SKIP_LATENCY:-0} == 1 || -f $OUT/serve_latency$SUFFIX.json ]] || { tail -n 30 "$OUT/serve_latency$SUFFIX.log"; exit 1; }

if [[ ${SKIP_LOAD:-0} == 1 ]]; then
  tar -C "$RUNS" --exclude='*.ckpt' --exclude='*.safetensors' -czf "$OUT/serve_gpu_runs_$SHAPE.tar.gz" .
  exit 0
fi
# (c) HTTP load test (each batching mode: its own server process, started, warmed up, driven, stopped)
if [[ -n ${SERVER_EXTRA:-} ]]; then
  extra=""; for kv in $SERVER_EXTRA; do extra+=",\"$kv\""; done
  if [[ ${#SERVER[@]} -gt 0 ]]; then SERVER=("${SERVER[0]%]}$extra]"); else SERVER=("server=[${extra#,}]"); fi
fi
[[ -n ${TOKPAR:-} ]] && export TOKENIZERS_PARALLELISM=$TOKPAR
SUFFIX=$SUFFIX${TAG:-}
(cd "$OUT" && $PY -m deepprompt.serve.loadtest "prompts={$prompts}" "${LOAD[@]}" "${SERVER[@]}" \
  "out=$OUT/serve_load$SUFFIX.json") 2> "$OUT/serve_load$SUFFIX.log" | tee "$OUT/serve_load$SUFFIX.md"
[[ -f $OUT/serve_load$SUFFIX.json ]] || { tail -n 30 "$OUT/serve_load$SUFFIX.log"; exit 1; }

[[ -f $OUT/serve_latency$SUFFIX.json ]] && $PY - "$RUNS" "$OUT" "$train_s" "$TASKS" "$SUFFIX" <<'EOF'
import json, sys
from pathlib import Path

runs, out, train_s, tasks = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4].split()
suffix = sys.argv[5]
trained = {}
for t in tasks:
    m = runs / t / "metrics.json"
    s = json.loads(m.read_text()) if m.is_file() else {}
    last = s.get("last") or {}
    trained[t] = {"steps": s.get("steps"), "wall_s": s.get("wall_time_s"),
                  "dev": {k: v for k, v in last.items() if k.startswith("val/")}}
latency = json.loads((out / f"serve_latency{suffix}.json").read_text())
load = json.loads((out / f"serve_load{suffix}.json").read_text())
result = {"prompts": {"how": "each task trained briefly on the device (deepprompt-train, one short epoch)",
                      "train_wall_s": train_s, "runs": trained},
          "latency": latency, "load": load}
(out / f"serve_gpu{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
lines = [f"# deepprompt-serve: {latency['meta']['device']}, {latency['meta']['dtype']}, tasks {', '.join(tasks)}", "",
         f"Prompts: each task trained on the device for one short epoch, the four side by side ({train_s:.0f} s):", "",
         "| task | steps | dev metrics |", "|---|---:|---|"]
for t, r in trained.items():
    dev = ", ".join(f"{k} {v:.3f}" for k, v in r["dev"].items() if isinstance(v, (int, float)))
    lines.append(f"| {t} | {r['steps']} | {dev} |")
lines += ["", "## Latency of the forward (one process, side by side)", "", (out / f"serve_latency{suffix}.md").read_text(),
          "## HTTP load test (a real server process per batching mode)", "", (out / f"serve_load{suffix}.md").read_text()]
(out / f"serve_gpu{suffix}.md").write_text("\n".join(lines) + "\n")
print(f"wrote {out / f'serve_gpu{suffix}.md'} and serve_gpu{suffix}.json")
EOF
tar -C "$RUNS" --exclude='*.ckpt' --exclude='*.safetensors' -czf "$OUT/serve_gpu_runs$SUFFIX.tar.gz" .
