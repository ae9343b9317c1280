#!/usr/bin/env bash
# Here, after any SmolLM2 GPU call (smollm2_gpu.sh): unpack the returned tarballs into one results folder (calls
# merge: each tarball holds every run finished so far on its machine), and write the local record of finished jobs
# that a fresh machine skips (carried inside .smoldata). From the repository root:
#   bash experiments/lab/smollm2_collect.sh <files_at> [<files_at of another call> | runs_*.tar.gz ...]
#   REPORT=1 bash experiments/lab/smollm2_collect.sh <files_at>     # and regenerate the three studies' reports
# Writes $SMOL_RESULTS (default outputs/smollm2, git-ignored): queue_cls/, queue_gen/{e2e,webnlg}_smollm2/,
# queue_minilm/, bench_decoder.json; $DONE_LIST (default .smoldata/done.txt): one `group/name` a line.
set -euo pipefail
cd "$(dirname "$0")/../.."
RESULTS=${SMOL_RESULTS:-outputs/smollm2}
DONE_LIST=${DONE_LIST:-.smoldata/done.txt}
PY=${PYTHON:-python3}
[[ $# -ge 1 ]] || { echo "usage: $0 FILES_AT|runs_*.tar.gz ..."; exit 64; }
mkdir -p "$RESULTS" "$(dirname "$DONE_LIST")"
for src in "$@"; do
  tarballs=("$src")
  [[ -d $src ]] && tarballs=("$src"/runs_*.tar.gz)
  for tarball in "${tarballs[@]}"; do
    [[ -f $tarball ]] || { echo "no runs_*.tar.gz at $src"; exit 2; }
    tar -C "$RESULTS" -xzf "$tarball"  # finished runs only: a later call's copy of a run is the same run
    echo "unpacked $tarball"
  done
done
$PY - "$RESULTS" "$DONE_LIST" <<'PYEOF'
import json, sys
from pathlib import Path
results, done = Path(sys.argv[1]), Path(sys.argv[2])
keys = []
for m in sorted(results.glob("queue_*/*/*/metrics.json")):
    try:
        if json.loads(m.read_text()).get("status") == "finished":
            keys.append(f"{m.parent.parent.name}/{m.parent.name}")
    except ValueError:
        pass
done.write_text("# finished SmolLM2 study jobs (smollm2_collect.sh); a fresh machine skips them\n"
                + "".join(f"{k}\n" for k in keys))
groups = {}
for k in keys:
    groups[k.split("/")[0]] = groups.get(k.split("/")[0], 0) + 1
print(f"{len(keys)} finished runs in {results} ({', '.join(f'{g} {n}' for g, n in groups.items())}) -> {done}")
PYEOF
REPORTS=()  # the studies whose runs have come back
[[ -d $RESULTS/queue_cls ]] && REPORTS+=("bash experiments/method_comparison_smollm2/make_report.sh $RESULTS/queue_cls")
[[ -d $RESULTS/queue_minilm ]] && REPORTS+=(
  "MINILM_RUNS=$RESULTS/queue_minilm bash experiments/method_comparison_smollm2/make_report.sh")
[[ -d $RESULTS/queue_gen/e2e_smollm2 ]] && REPORTS+=(
  "bash experiments/generation_e2e_smollm2/make_report.sh $RESULTS/queue_gen/e2e_smollm2")
[[ -d $RESULTS/queue_gen/webnlg_smollm2 ]] && REPORTS+=(
  "bash experiments/generation_webnlg_smollm2/make_report.sh $RESULTS/queue_gen/webnlg_smollm2")
for cmd in "${REPORTS[@]}"; do
  if [[ ${REPORT:-0} == 1 ]]; then echo "+ $cmd"; eval "$cmd"; else echo "report: $cmd"; fi
done
