#!/usr/bin/env bash
# eager_buckets=false against eager_buckets=true on the CPU: four MiniLM prompt runs (SST-2, RTE, BoolQ, CB), the
# HTTP load test of each setting, alternated over rounds (drift on a shared machine hits both), then each
# setting's start-up time (until /health answers) and summary.py's table.
#   DEEPPROMPT_DATA_DIR=<data> bash experiments/serve_eager_buckets_cpu/run.sh
# ~1 min training, ~1 min (false) and ~2 min (true: 48 buckets warmed first) per load test, ~17 min in all on 2 cores.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python}
WORK=${WORK:-${TMPDIR:-/tmp}/serve_eager_buckets}
mkdir -p "$WORK"
for t in sst2 rte boolq cb; do
  [[ -f $WORK/runs/$t/prompts/best/prompt_config.json ]] || $PY -m deepprompt.train trainer=cpu debug=limit \
    trainer.max_epochs=1 trainer.num_sanity_val_steps=0 data=$t backbone=minilm extras.print_config=false \
    "hydra.run.dir=$WORK/runs/$t" > "$WORK/train_$t.log" 2>&1
done
P="prompts={sst2: $WORK/runs/sst2, rte: $WORK/runs/rte, boolq: $WORK/runs/boolq, cb: $WORK/runs/cb}"
LOAD=(backbone=minilm device=cpu threads=1 requests=300 warmup=32 max_batch=32 max_wait_ms=5)
load() {  # round, setting, modes, clients
  mkdir -p "$WORK/r$1_$2_$3" && (cd "$WORK/r$1_$2_$3" && uptime && $PY -m deepprompt.serve.loadtest "$P" \
    "${LOAD[@]}" "modes=[$3]" "clients=$4" "server=[eager_buckets=$2]" out=load.json)
}
load 1 false mixed '[16,4]'; load 1 true mixed '[16,4]'
load 2 true mixed '[16,4]'; load 2 false mixed '[16,4]'
load 3 false mixed '[16,4]'; load 3 true mixed '[16,4]'
load 1 false per_task '[16]'; load 1 true per_task '[16]'
load 2 true per_task '[16]'; load 2 false per_task '[16]'
for e in false true; do  # start-up: process start to /health
  $PY experiments/serve_eager_buckets_cpu/startup.py "$P" backbone=minilm device=cpu threads=1 \
    batching.max_batch=32 eager_buckets=$e > "$WORK/startup_$e.json"
done
$PY experiments/serve_eager_buckets_cpu/summary.py "$WORK" > experiments/serve_eager_buckets_cpu/results.md
