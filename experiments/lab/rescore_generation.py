"""Score saved generation predictions again, with the metrics a run logs and with METEOR and CIDEr.

Every generation run writes ``<run>/predictions/<split>_epoch<N>.jsonl`` (hypothesis, all references, the WebNLG
subset). This reads the last epoch's file of each run and scores it with deepprompt's own corpus BLEU, TER
(sacrebleu) and ROUGE-L (rouge-score), and with METEOR 1.5 and CIDEr from pycocoevalcap, the implementations the E2E
challenge's evaluation scripts use (METEOR runs Java). Texts are lowercased and split by sacrebleu's 13a tokenizer
for METEOR and CIDEr (the challenge scripts tokenize with Stanford's PTB tokenizer); the corpus for CIDEr's
document frequencies is the scored set (or subset) itself. pycocoevalcap is not a deepprompt dependency:

    pip install pycocoevalcap          # or PYTHONPATH=<folder with it>
    python experiments/lab/rescore_generation.py <run dir> [<run dir> ...] --out scores.json [--md scores.md]

Writes one entry per run: {"run": <name>, "scores": {"bleu", "rouge_l", "ter", "meteor", "cider", and each with
_<subset> for WebNLG's seen/unseen}}; --md a table of them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def last_predictions(run: Path) -> Path:
    files = sorted(
        (run / "predictions").glob("*_epoch*.jsonl"), key=lambda p: int(re.search(r"epoch(\d+)", p.name)[1])
    )
    if not files:
        raise SystemExit(f"{run}: no predictions/*_epoch<N>.jsonl")
    return files[-1]


def coco_scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """METEOR and CIDEr (x100) from pycocoevalcap on lowercased 13a tokens."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()

    def norm(text: str) -> str:
        return tok(text.lower()).strip() or "."

    res = {i: [norm(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [norm(r) for r in refs] for i, refs in enumerate(references)}
    meteor = Meteor()
    try:
        meteor_score = meteor.compute_score(gts, res)[0]
    finally:
        meteor.close() if hasattr(meteor, "close") else None
    cider_score = Cider().compute_score(gts, res)[0]
    return {"meteor": 100.0 * meteor_score, "cider": float(cider_score)}


def score_run(run: Path) -> dict:
    from deepprompt.tasks.generation.metrics import generation_scores

    rows = [json.loads(line) for line in last_predictions(run).read_text().splitlines() if line.strip()]
    hyps = [r["hypothesis"] for r in rows]
    refs = [list(r["references"]) for r in rows]
    scores = {**generation_scores(hyps, refs, with_ter=True), **coco_scores(hyps, refs)}
    subsets: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("subset"):
            subsets.setdefault(r["subset"], []).append(i)
    for name, members in sorted(subsets.items()):
        part_h, part_r = [hyps[i] for i in members], [refs[i] for i in members]
        part = {**generation_scores(part_h, part_r, with_ter=True), **coco_scores(part_h, part_r)}
        scores.update({f"{k}_{name}": v for k, v in part.items()})
    return {"run": run.name, "inputs": len(rows), "scores": {k: round(v, 4) for k, v in scores.items()}}


def table(entries: list[dict]) -> str:
    metrics = ["bleu", "meteor", "rouge_l", "cider", "ter"]
    subsets = sorted(
        {k.split("_")[-1] for e in entries for k in e["scores"] if k.endswith(("_seen", "_unseen"))}
    )
    head = "| run | " + " | ".join(m.upper().replace("ROUGE_L", "ROUGE-L") for m in metrics) + " |"
    lines = [head, "|---|" + "---:|" * len(metrics)]
    for e in entries:
        s = e["scores"]
        cells = []
        for m in metrics:
            parts = [s[m]] + [s[f"{m}_{sub}"] for sub in subsets if f"{m}_{sub}" in s]
            fmt = "{:.2f}" if m == "cider" else "{:.1f}"
            cells.append(" / ".join(fmt.format(v) for v in parts))
        lines.append(f"| {e['run']} | " + " | ".join(cells) + " |")
    note = f"\n\nEach cell: all / {' / '.join(subsets)}." if subsets else ""
    return "\n".join(lines) + note + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)
    entries = [score_run(run) for run in args.runs]
    args.out.write_text(json.dumps(entries, indent=1) + "\n")
    if args.md:
        args.md.write_text(table(entries))
    print(table(entries))


if __name__ == "__main__":
    main(sys.argv[1:])
