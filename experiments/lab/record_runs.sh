#!/usr/bin/env bash
# One GPU call's run folders -> a compact record (runs.jsonl format, deepprompt.report.collect.write_record), with
# the data and model folders as the calls named them (.smoldata, .device/data, $TMPDIR/smollm2/hf), not where the
# machine that ran them or this one unpacked them. The SmolLM2 studies' make_report.sh call it:
#   bash experiments/lab/record_runs.sh <run folders> <record.jsonl>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" ${PYTHON:-python} -c \
  "import sys; from deepprompt.report.collect import write_record; print('wrote', write_record([sys.argv[1]], sys.argv[2]))" \
  "$1" "$2"
sed -i -E -e 's#"data_dir": "[^"]*(\.smoldata|\.device/data)"#"data_dir": "\1"#g' \
  -e 's#backbone.name_or_path=[^"]*/smollm2/hf#backbone.name_or_path=$TMPDIR/smollm2/hf#g' "$2"
