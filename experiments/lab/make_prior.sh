#!/usr/bin/env bash
# Build .prior/ (git-ignored) from archived runs, for `gpu_call.sh PLAN ...` to continue a plan without rerunning
# finished jobs. Only what the queue reads travels (status and best scores of each metrics.json): the device
# call's whole tree must stay under 64 MiB. Default source: the 2026-11-23 runs.
#   bash experiments/lab/make_prior.sh [experiments/lab/gpu_runs (not in git)]
set -euo pipefail
src=${1:-experiments/lab/gpu_runs (not in git)}
grep -qx '/.prior/' .git/info/exclude 2>/dev/null || echo '/.prior/' >> .git/info/exclude
rm -rf .prior && mkdir .prior
python3 - "$src" <<'PY'
import json, pathlib, sys
src = pathlib.Path(sys.argv[1])
for file in src.rglob("metrics.json"):
    summary = json.loads(file.read_text())
    slim = {k: summary[k] for k in ("status", "task", "method", "seed", "monitor", "best") if k in summary}
    out = pathlib.Path(".prior") / file.relative_to(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(slim))
PY
n=$(find .prior -name metrics.json | wc -l)
# one small archive instead of hundreds of folders: the device tool counts the tree's size, folders included
tar -C .prior -czf ${TMPDIR:-/tmp}/prior_runs.tar.gz . && rm -rf .prior && mkdir .prior && mv ${TMPDIR:-/tmp}/prior_runs.tar.gz .prior/runs.tar.gz
echo "$n runs in .prior/runs.tar.gz ($(du -b .prior/runs.tar.gz | cut -f1) bytes)"
