#!/usr/bin/env bash
# The WebNLG table (method x BLEU seen/unseen/all, ROUGE-L, the GPU of each run) from this study's compact record
# (runs.jsonl), from anywhere:
#   bash experiments/generation_webnlg_smollm2/make_report.sh [RUNS_DIR [OUT_DIR]]
# RUNS_DIR: an unpacked runs folder of the SmolLM2 GPU calls (after experiments/lab/smollm2_collect.sh:
# outputs/smollm2/queue_gen/webnlg_smollm2): its runs are recorded first (-> runs.jsonl, free of machine paths,
# experiments/lab/record_runs.sh). Each run's score is its last evaluation: the test set after the last step.
# Writes OUT_DIR/report.md and OUT_DIR/report.csv (default: experiments/generation_webnlg_smollm2/gpu_test); with
# more than one seed of a method, also each method's mean +- standard error over its seeds.
# RECORD (default runs.jsonl): the record file, e.g. for the tuned runs (smollm2_gpu.sh PART=webnlg_lr):
#   RECORD=runs_lr.jsonl bash .../make_report.sh outputs/smollm2/queue_gen/webnlg_smollm2_lr .../gpu_lr
#   RECORD=runs_tuned.jsonl bash .../make_report.sh outputs/smollm2/queue_gen/webnlg_smollm2_tuned .../gpu_tuned
set -euo pipefail
cd "$(dirname "$0")/../.."
S=experiments/generation_webnlg_smollm2
PY="${PYTHON:-python3}"
RECORD=$S/${RECORD:-runs.jsonl}
if [[ -n ${1:-} ]]; then  # "" records nothing (an OUT_DIR alone)
  PYTHON="$PY" bash experiments/lab/record_runs.sh "$1" "$RECORD"
fi
[[ -f $RECORD ]] || { echo "no $RECORD yet: pass the unpacked runs folder of the GPU call"; exit 2; }
"$PY" - "$RECORD" "${2:-$S/gpu_test}" <<'PY'
import csv, json, statistics, sys
from pathlib import Path

record, out = Path(sys.argv[1]), Path(sys.argv[2])
order = ["ptuning_v2", "prefix", "lora", "finetune"]
cols = [("BLEU S", "val/bleu_seen"), ("BLEU U", "val/bleu_unseen"), ("BLEU A", "val/bleu"),
        ("ROUGE-L S", "val/rouge_l_seen"), ("ROUGE-L U", "val/rouge_l_unseen"), ("ROUGE-L A", "val/rouge_l")]
rows = []
for text in record.read_text().splitlines():
    m = json.loads(text)
    if m.get("task") != "webnlg":
        continue
    last = m.get("last") or {}
    lr = ((m.get("config") or {}).get("method") or {}).get("lr")
    rows.append({"method": m.get("method"), "lr": lr, "seed": m.get("seed"), "status": m.get("status"),
                 **{name: last.get(key) for name, key in cols}, "gpu": m.get("gpu"),
                 "run": Path(m["run"]).name})
if not rows:
    sys.exit(f"no WebNLG run in {record}")
rows.sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 99, r["lr"] or 0, r["seed"] or 0))
out.mkdir(parents=True, exist_ok=True)
with open(out / "report.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
lines = ["| method | lr | seed | status | " + " | ".join(n for n, _ in cols) + " | GPU |",
         "|---|---|---|---|" + "---|" * len(cols) + "---|"]
lines += [f"| {r['method']} | {r['lr']} | {r['seed']} | {r['status']} | " + " | ".join(fmt(r[n]) for n, _ in cols)
          + f" | {r['gpu'] or '-'} |" for r in rows]
settings = {}  # (method, lr) -> its finished runs, one per seed
for r in rows:
    if r["status"] == "finished":
        settings.setdefault((r["method"], r["lr"]), []).append(r)
several = {k: v for k, v in settings.items() if len({r["seed"] for r in v}) > 1}
if several:  # mean +- standard error (std / sqrt(n)) over the seeds of each method at one rate
    def mean_se(vals):
        vals = [v for v in vals if v is not None]
        if len(vals) < 2:
            return "-"
        return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals) / len(vals) ** 0.5:.1f}"
    lines += ["", "Mean ± standard error over the seeds:", "",
              "| method | lr | seeds | " + " | ".join(n for n, _ in cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for (method, lr), done in several.items():
        lines.append(f"| {method} | {lr} | {len(done)} | " + " | ".join(mean_se([r[n] for r in done]) for n, _ in cols)
                     + " |")
text = ("WebNLG 2017, SmolLM2-135M-Instruct: corpus BLEU (all references) and ROUGE-L (x100) on the seen "
        "(S), unseen (U) and all (A) categories\n\n" + "\n".join(lines) + "\n")
(out / "report.md").write_text(text)
print(text, end="")
print(f"wrote {out}/report.md, {out}/report.csv")
PY
