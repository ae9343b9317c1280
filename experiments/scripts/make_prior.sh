#!/usr/bin/env bash
# Build .prior/ (git-ignored) from archived runs, for `gpu_call.sh PLAN ...` to continue a plan without rerunning
# finished jobs: only each run's metrics.json travels (the 64 MiB tree limit). Default source: the 2026-11-23 runs.
#   bash experiments/scripts/make_prior.sh [experiments/results/minilm_h100_runs]
set -euo pipefail
src=${1:-experiments/results/minilm_h100_runs}
grep -qx '/.prior/' .git/info/exclude 2>/dev/null || echo '/.prior/' >> .git/info/exclude
rm -rf .prior && mkdir .prior
(cd "$src" && find . -name metrics.json -print0 | tar --null -cf - -T -) | tar -xf - -C .prior
echo "$(find .prior -name metrics.json | wc -l) runs in .prior ($(du -sh .prior | cut -f1))"
