"""Corpus BLEU and TER (sacrebleu, every reference of an input) and ROUGE-L (rouge-score, best reference), all x100;
on the whole evaluation set and on each of its named subsets (WebNLG: seen / unseen categories). TER is an edit
rate (lower is better) and slow: 165 s for E2E's 630 test inputs with their 7.4 references each on one CPU core,
against 1.6 s for BLEU, so a run's validation scores BLEU and ROUGE-L and TER is computed from the saved
predictions (``generation_scores(..., with_ter=True)``, experiments/lab/rescore_generation.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _streams(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's reference streams: stream i holds every input's i-th reference (None past an input's last)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    width = max((len(r) for r in references), default=0)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu ``corpus_bleu`` with all references per input (inputs with fewer references pad with None)."""
    import sacrebleu

    streams = _streams(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def ter(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu ``corpus_ter`` (translation edit rate x100, lower is better): the edits to each hypothesis's
    closest reference over the references' average length, summed over the corpus."""
    import sacrebleu

    streams = _streams(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_ter(list(hypotheses), streams).score)


def rouge_l(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Mean ROUGE-L F1 (stemmed), each hypothesis against its best-matching reference."""
    from rouge_score import rouge_scorer

    if not hypotheses:
        return 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    total = sum(
        scorer.score_multi(list(refs), hyp)["rougeL"].fmeasure
        for hyp, refs in zip(hypotheses, references, strict=True)
    )
    return 100.0 * total / len(hypotheses)


def generation_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], with_ter: bool = False
) -> dict[str, float]:
    scores = {"bleu": bleu(hypotheses, references), "rouge_l": rouge_l(hypotheses, references)}
    if with_ter:
        scores["ter"] = ter(hypotheses, references)
    return scores


def subset_scores(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    subsets: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, float]:
    """`generation_scores` on every input (``bleu``, ``rouge_l``), then on each non-empty subset of input
    positions (``bleu_seen``, ``rouge_l_seen``, ...): corpus scores of that subset alone, not an average."""
    scores = generation_scores(hypotheses, references)
    for name, members in (subsets or {}).items():
        if members:
            part = generation_scores([hypotheses[i] for i in members], [references[i] for i in members])
            scores.update({f"{k}_{name}": v for k, v in part.items()})
    return scores
