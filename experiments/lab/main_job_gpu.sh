#!/usr/bin/env bash
# One GPU call for the main job's costs (docs/first-run.md, docs/fast-path.md):
#   1. one SST-2 epoch with the fast path off and on (fast_path_epoch.sh, ORDER="off on" unless set);
#   2. the main job as `make train` runs it where there is a GPU (the full recipe: 10 SST-2 epochs, MiniLM,
#      trainer=gpu), timed end to end, its console output in $OUT/main_job.log;
#   3. the GPU-only tests (hooked DeBERTa, CUDA graphs).
# On the GPU machine, from the repository root (carry .device):  bash experiments/lab/main_job_gpu.sh
set -u
source experiments/lab/device_env.sh
ORDER=${ORDER:-off on} timeout ${EPOCH_S:-220} bash experiments/lab/fast_path_epoch.sh
echo "== main job: deepprompt-train trainer=gpu (the full recipe)"
t0=$(date +%s.%N)
timeout ${MAIN_S:-330} python3 -m deepprompt.train trainer=gpu "$MINILM" hydra.run.dir="$DEEPPROMPT_OUTPUT_DIR/main_job" \
  > "$OUT/main_job.log" 2>&1
rc=$?
echo "main job: exit $rc, $(python3 -c "import time; print(round(time.time() - $t0, 1))") s end to end"
tail -n 25 "$OUT/main_job.log"
cp "$DEEPPROMPT_OUTPUT_DIR/main_job/metrics.json" "$OUT/main_job_metrics.json" 2>/dev/null
echo "== GPU tests"
timeout ${TESTS_S:-100} python3 -m pytest -q -p no:cacheprovider tests/prompts/test_hooked_deberta_gpu.py \
  tests/prompts/test_cuda_graphs.py 2>&1 | tail -n 12
