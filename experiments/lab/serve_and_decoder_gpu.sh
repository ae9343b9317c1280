#!/usr/bin/env bash
# One GPU call: deepprompt-serve's latency and load test (serve_gpu.sh), then the decoder training-step bench
# (bench preset decoder_step: SmolLM2-135M's shape with random weights, no model file needed), then, when
# startup_gpu.sh exists, the start-up of a sweep job. Everything lands in one archive $OUT/all.tar.gz (a call
# brings back at most 8 files) beside the markdown summaries.
#   On the GPU machine, from the repository root (carry .device):  bash experiments/lab/serve_and_decoder_gpu.sh
set -u
FINAL=$OUT
export OUT=${TMPDIR:-/tmp}/call_out/serve
mkdir -p "$OUT"
timeout ${SERVE_S:-330} bash experiments/lab/serve_gpu.sh
echo "serve_gpu.sh: exit $?"
cat "$OUT/serve_gpu.md" 2>/dev/null
B=${TMPDIR:-/tmp}/call_out/bench && mkdir -p "$B"
echo "== bench decoder_step"
(source experiments/lab/device_env.sh > /dev/null; timeout ${BENCH_S:-110} python3 -m deepprompt.bench.cli --preset decoder_step --out "$B/bench_decoder.json" > "$B/bench_decoder.log" 2>&1
echo "exit $?")
 grep "^| \|^#" "$B/bench_decoder.log" | head -30
if [[ -f experiments/lab/startup_gpu.sh ]]; then
  echo "== start-up of sweep jobs"
  (export OUT=${TMPDIR:-/tmp}/call_out/startup && mkdir -p "$OUT" && source experiments/lab/device_env.sh > /dev/null \
    && IMPORTTIME=1 timeout ${STARTUP_S:-120} bash experiments/lab/startup_gpu.sh)
  cat ${TMPDIR:-/tmp}/call_out/startup/startup.md 2>/dev/null
fi
cp "$OUT"/serve_gpu.md "$OUT"/serve_latency.md "$OUT"/serve_load.md "$FINAL"/ 2>/dev/null
tar -C ${TMPDIR:-/tmp}/call_out -czf "$FINAL/all.tar.gz" .
ls -la "$FINAL"
