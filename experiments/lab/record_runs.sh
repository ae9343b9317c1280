#!/usr/bin/env bash
# One GPU call's run folders -> a compact record (runs.jsonl format, deepprompt.report.collect.write_record), with
# the data and model folders as the calls named them (.smoldata, .device/..., $TMPDIR/smollm2/hf), each run named
# runs/<path below the folder> (not where the machine that ran them or this one unpacked them), and the GPU its
# train.log names (experiments/lab/record_runs.py). The SmolLM2 studies' make_report.sh call it:
#   bash experiments/lab/record_runs.sh <run folders> <record.jsonl>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" ${PYTHON:-python} "$root/experiments/lab/record_runs.py" "$1" "$2"
