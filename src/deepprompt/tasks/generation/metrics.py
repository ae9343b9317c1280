"""Corpus BLEU (sacrebleu, every reference of an input) and ROUGE-L (rouge-score, best reference), both x100;
on the whole evaluation set and on each of its named subsets (WebNLG: seen / unseen categories)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu ``corpus_bleu`` with all references per input (inputs with fewer references pad with None)."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        return 0.0
    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


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


def generation_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    return {"bleu": bleu(hypotheses, references), "rouge_l": rouge_l(hypotheses, references)}


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
