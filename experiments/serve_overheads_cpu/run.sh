#!/usr/bin/env bash
# Regenerates the tables of README.md on a CPU: four tiny-backbone runs (SST-2, RTE, BoolQ, CB), the HTTP load test
# of the server at a given commit and of the working tree (same command), and the in-process overheads.
#   DEEPPROMPT_DATA_DIR=<data> bash experiments/serve_overheads_cpu/run.sh [<commit to compare against>]
# ~1.5 min training, ~1.5 min per load test, ~20 s overheads on 2 cores.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
PY=${PYTHON:-python}
WORK=${WORK:-${TMPDIR:-/tmp}/serve_overheads}
mkdir -p "$WORK"
for t in sst2 rte boolq cb; do
  [[ -f $WORK/runs/$t/prompts/best/prompt_config.json ]] || $PY -m deepprompt.train trainer=cpu debug=limit \
    trainer.max_epochs=1 method.prompt.length=4 data=$t backbone=tiny extras.print_config=false \
    "hydra.run.dir=$WORK/runs/$t" > "$WORK/train_$t.log" 2>&1
done
P="prompts={sst2: $WORK/runs/sst2, rte: $WORK/runs/rte, boolq: $WORK/runs/boolq, cb: $WORK/runs/cb}"
LOAD=(backbone=tiny device=cpu threads=1 clients=[1,4,16,64] requests=400 warmup=40 max_batch=64 max_wait_ms=5)
uptime
if [[ -n ${1:-} ]]; then  # the same command against the server and load test of another commit
  rm -rf "$WORK/base" && mkdir -p "$WORK/base" && git archive "$1" src conf | tar -x -C "$WORK/base"
  (cd "$WORK/base" && PYTHONPATH=$WORK/base/src $PY -m deepprompt.serve.loadtest "$P" "${LOAD[@]}" out=load.json)
fi
(cd "$WORK" && $PY -m deepprompt.serve.loadtest "$P" "${LOAD[@]}" out=load.json)
$PY experiments/serve_overheads_cpu/overheads.py "$P"
uptime
