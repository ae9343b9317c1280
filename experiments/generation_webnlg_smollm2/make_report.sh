#!/usr/bin/env bash
# The WebNLG table (method x BLEU seen/unseen/all, ROUGE-L) from an unpacked runs folder of the SmolLM2 GPU call
# (runs_webnlg.tar.gz from `PART=webnlg bash experiments/lab/smollm2_gpu.sh`), from the repository root:
#   mkdir -p "$TMPDIR/webnlg" && tar -C "$TMPDIR/webnlg" -xzf runs_webnlg.tar.gz
#   bash experiments/generation_webnlg_smollm2/make_report.sh "$TMPDIR/webnlg" [OUT_DIR]
# Reads every metrics.json below the folder (the last evaluation: the test set after the last step) and writes
# OUT_DIR/report.md and OUT_DIR/report.csv (default: experiments/generation_webnlg_smollm2/gpu_test).
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 RUNS_DIR [OUT_DIR]"; exit 64; }
cd "$(dirname "$0")/../.."
S=experiments/generation_webnlg_smollm2
"${PYTHON:-python3}" - "$1" "${2:-$S/gpu_test}" <<'PY'
import csv, json, sys
from pathlib import Path

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
order = ["ptuning_v2", "prefix", "lora", "finetune"]
cols = [("BLEU S", "val/bleu_seen"), ("BLEU U", "val/bleu_unseen"), ("BLEU A", "val/bleu"),
        ("ROUGE-L S", "val/rouge_l_seen"), ("ROUGE-L U", "val/rouge_l_unseen"), ("ROUGE-L A", "val/rouge_l")]
rows = []
for path in sorted(runs.rglob("metrics.json")):
    m = json.loads(path.read_text())
    if m.get("task") != "webnlg":
        continue
    last = m.get("last") or {}
    rows.append({"method": m.get("method"), "seed": m.get("seed"), "status": m.get("status"),
                 **{name: last.get(key) for name, key in cols}, "run": path.parent.name})
if not rows:
    sys.exit(f"no WebNLG metrics.json below {runs}")
rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["seed"] or 0))
out.mkdir(parents=True, exist_ok=True)
with open(out / "report.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
lines = ["| method | seed | status | " + " | ".join(n for n, _ in cols) + " |",
         "|---|---|---|" + "---|" * len(cols)]
lines += [f"| {r['method']} | {r['seed']} | {r['status']} | " + " | ".join(fmt(r[n]) for n, _ in cols) + " |"
          for r in rows]
text = ("WebNLG 2017 test set, SmolLM2-135M-Instruct: corpus BLEU (all references) and ROUGE-L (x100) on the seen "
        "(S), unseen (U) and all (A) categories\n\n" + "\n".join(lines) + "\n")
(out / "report.md").write_text(text)
print(text, end="")
print(f"wrote {out}/report.md, {out}/report.csv")
PY
