#!/usr/bin/env bash
# Regenerate the tables of this study: every benchmark JSON rendered by deepprompt.bench.render, one tables.md per
# folder. Run from anywhere: bash experiments/speed_h100/make_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
for d in experiments/speed_h100/*/; do
  for f in $(ls "$d"*.json | sort -V); do
    echo "## $(basename "$f")"; echo; "${PYTHON:-python}" -m deepprompt.bench.render "$f"; echo
  done > "$d/tables.md"
done
