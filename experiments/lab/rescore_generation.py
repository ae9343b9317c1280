"""Score saved generation predictions again, with the metrics a run logs and with METEOR and CIDEr.

Every generation run writes ``<run>/predictions/<split>_epoch<N>.jsonl`` (hypothesis, all references, the WebNLG
subset). This reads the last epoch's file of each run and scores it with deepprompt's own corpus BLEU, TER
(sacrebleu) and ROUGE-L (rouge-score), and with METEOR 1.5 and CIDEr from pycocoevalcap, the implementations the E2E
challenge's evaluation scripts use (METEOR runs Java). Texts are lowercased and split by sacrebleu's 13a tokenizer
for METEOR and CIDEr (the challenge scripts tokenize with Stanford's PTB tokenizer); the corpus for CIDEr's
document frequencies is the scored set (or subset) itself. pycocoevalcap is not a deepprompt dependency:

    pip install pycocoevalcap          # or PYTHONPATH=<folder with it>
    python experiments/lab/rescore_generation.py <run dir> [<run dir> ...] --out scores.json [--md scores.md]
        [--over-seeds]

Writes one entry per run: {"run": <name>, "scores": {"bleu", "rouge_l", "ter", "meteor", "cider", and each with
_<subset> for WebNLG's seen/unseen}}; --md a table of them. With --over-seeds the table has one row per setting
instead, the runs whose names differ only in their ``_s<seed>`` part (``e2e_lora_s2_lr5e-3`` -> ``e2e_lora_lr5e-3``):
each cell the mean over those runs ± its standard error (std / sqrt(n)); the per-run table follows it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
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


def setting(run: str) -> str:
    """A run's name without its seed part: ``e2e_lora_s2_lr5e-3`` -> ``e2e_lora_lr5e-3``."""
    return re.sub(r"_s\d+(?=_|$)", "", run)


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n)); a single value has no error (NaN)."""
    if len(values) < 2:
        return values[0], math.nan
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def table(entries: list[dict], over_seeds: bool = False) -> str:
    metrics = ["bleu", "meteor", "rouge_l", "cider", "ter"]
    subsets = sorted(
        {k.split("_")[-1] for e in entries for k in e["scores"] if k.endswith(("_seen", "_unseen"))}
    )
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(setting(e["run"]) if over_seeds else e["run"], []).append(e)
    names = " | ".join(m.upper().replace("ROUGE_L", "ROUGE-L") for m in metrics)
    if over_seeds:
        lines = [f"| setting | seeds | {names} |", "|---|---:|" + "---:|" * len(metrics)]
    else:
        lines = [f"| run | {names} |", "|---|" + "---:|" * len(metrics)]
    for name, members in groups.items():
        cells = [str(len(members))] if over_seeds else []
        for m in metrics:
            keys = [m] + [f"{m}_{sub}" for sub in subsets if f"{m}_{sub}" in members[0]["scores"]]
            digits = 2 if m == "cider" else 1
            parts = []
            for key in keys:
                mean, se = mean_se([e["scores"][key] for e in members])
                parts.append(f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if len(members) > 1 else ""))
            cells.append(" / ".join(parts))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = []
    if over_seeds:
        notes.append(
            "Each cell: mean over the seeds ± its standard error (std / sqrt(n)); one seed: its score."
        )
    if subsets:
        notes.append(f"Each cell: all / {' / '.join(subsets)}.")
    text = "\n".join(lines) + "".join(f"\n\n{n}" for n in notes) + "\n"
    return text + "\nPer run:\n\n" + table(entries) if over_seeds else text


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--md", type=Path)
    parser.add_argument(
        "--over-seeds", action="store_true", help="one row per setting: mean ± s.e. over its seeds' runs"
    )
    args = parser.parse_args(argv)
    entries = [score_run(run) for run in args.runs]
    args.out.write_text(json.dumps(entries, indent=1) + "\n")
    text = table(entries, over_seeds=args.over_seeds)
    if args.md:
        args.md.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
