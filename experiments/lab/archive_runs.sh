#!/usr/bin/env bash
# Copy the small, generated files of finished runs (metrics.json, .hydra/config.yaml, overrides.yaml) from an
# outputs folder into experiments/results/<name>/, keeping the folder layout. No checkpoints, no logs.
# Usage: bash experiments/lab/archive_runs.sh <outputs folder> <results name>
set -euo pipefail
src=$1 dst=experiments/results/$2
mkdir -p "$dst"
(cd "$src" && find . \( -name metrics.json -o -path '*/.hydra/config.yaml' -o -path '*/.hydra/overrides.yaml' \) -print0 \
  | tar --null -cf - -T -) | tar -xf - -C "$dst"
find "$dst" -name metrics.json | sort
