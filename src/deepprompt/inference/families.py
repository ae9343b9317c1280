"""Per task family: an example -> backbone rows (features), the head on the backbone's output, rows -> answer.

One `TaskRunner` per task, built from the task's data module (tokenizer, lengths, label names) and its
trained head (``classifier``). `deepprompt-predict` and `deepprompt-serve` both go through it, so the same
input gets the same answer from either; only the backbone call differs (the run's own encoder, or the
server's `MultiTaskDeepPromptModel`, where each row carries its task's prompts).

An example becomes one or more rows: one for a sentence (pair) or a sentence to tag, one per choice (COPA),
one per answer option (MultiRC), one per context window (QA). ``scores`` maps each row's backbone output to
a small tensor (left on the device: the engine fetches them together); ``decode`` turns an example's rows back
into its answer:

* classification: ``{"label", "probabilities": {label: p}}``
* multiple choice (COPA): ``{"label": "choice1"|"choice2", "choice": i, "probabilities"}``
* MultiRC: ``{"answers": [{"question", "answer", "label", "probability"}]}`` (probability of "true")
* NER: ``{"entities": [{"text", "type", "start", "end"}]}`` (character offsets into the sentence text)
* QA: ``{"answer", "start", "end", "score"}`` (character offsets into the context; score = start + end logit)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from deepprompt.data.base import SEQUENCE_KEYS
from deepprompt.tasks.pooling import pool

Example = dict[str, Any]
Row = dict[str, Any]

# Lightning module class (the task-family registry's class for the data module) -> inference family
FAMILIES = {
    "ClassificationModule": "classification",
    "MultiRCModule": "multirc",
    "MultipleChoiceModule": "multiple_choice",
    "TokenClassificationModule": "ner",
    "QuestionAnsweringModule": "qa",
    "GenerationModule": "generation",
}


def family_of(datamodule) -> str:
    from deepprompt.tasks.registry import module_class

    name = module_class(datamodule).__name__
    if name not in FAMILIES:
        raise ValueError(f"no inference for task modules of type {name}")
    return FAMILIES[name]


def label_names_of(datamodule, family: str) -> list[str]:
    if family == "classification":
        names = getattr(datamodule, "label_names", None)
        return list(names) if names is not None else ["false", "true"]  # WiC / WSC: binary
    if family == "multirc":
        return ["false", "true"]
    if family == "multiple_choice":
        return ["choice1", "choice2"]
    if family == "ner":
        return list(datamodule.label_names)
    return []


def token_states(out, input_length: int) -> torch.Tensor:
    """(B, T, hidden) aligned with the input tokens, as `TaskModule.token_states`."""
    states = out.last_hidden_state
    return states[:, -input_length:] if states.shape[1] > input_length else states


def iob2_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(first word, last word, type)`` of each entity in IOB2 tags (an ``I-X`` after no ``X`` begins one)."""
    spans: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, kind = tag.split("-", 1)
        if prefix == "I" and spans and spans[-1][1] == i - 1 and spans[-1][2] == kind:
            spans[-1] = (spans[-1][0], i, kind)
        else:
            spans.append((i, i, kind))
    return spans


def best_span(
    rows: list[tuple[Row, tuple[np.ndarray, np.ndarray]]], n_best: int, max_answer_length: int
) -> tuple[tuple[int, int] | None, float, float]:
    """The best valid span over an example's windows, as `postprocess_predictions` picks it, with its score;
    and the smallest [CLS] (no-answer) score over the windows."""
    best_score, best, min_null = -np.inf, None, np.inf
    for row, (start_logits, end_logits) in rows:
        offsets, cls = row["offsets"], row["cls"]
        min_null = min(min_null, float(start_logits[cls] + end_logits[cls]))
        n = min(len(offsets), len(start_logits))
        starts = np.argsort(start_logits[:n])[::-1][:n_best]
        ends = np.argsort(end_logits[:n])[::-1][:n_best]
        for s in starts:
            if offsets[s] is None:
                continue
            for e in ends:
                if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if score > best_score:
                    best_score, best = score, (offsets[s][0], offsets[e][1])
    return best, best_score, min_null


def _as_list(scores) -> list:
    return scores if isinstance(scores, list) else scores.tolist()


@dataclass
class TaskRunner:
    """One task's tokenizing, head and decoding (``head``: the trained ``classifier`` linear layer)."""

    name: str
    family: str
    datamodule: Any
    head: nn.Module | None
    pooling: str = "pooler"
    labels: list[str] = field(default_factory=list)

    @classmethod
    def from_datamodule(cls, name: str, datamodule, head: nn.Module | None, pooling: str) -> TaskRunner:
        family = family_of(datamodule)
        return cls(name, family, datamodule, head, pooling, label_names_of(datamodule, family))

    @property
    def tokenizer(self):
        return self.datamodule.tokenizer

    @property
    def max_length(self) -> int:
        return int(getattr(self.datamodule, "max_seq_length", 512))

    # -- example -> rows ---------------------------------------------------------------------------------
    def rows(self, example: Example) -> list[Row]:
        """The backbone rows of one example: token id lists (``input_ids`` ...) plus decoding bookkeeping."""
        tok, family = self.tokenizer, self.family
        if family == "classification":
            a, b = example["texts"]
            return [self.token_keys(tok(a, b, truncation=True, max_length=self.max_length))]
        if family == "multiple_choice":
            return [
                self.token_keys(tok(example["context"], c, truncation=True, max_length=self.max_length))
                for c in example["choices"]
            ]
        if family == "multirc":
            return [
                self.token_keys(
                    tok(example["paragraph"], f"{q} {a}", truncation=True, max_length=self.max_length)
                )
                for q, a in example["options"]
            ]
        if family == "ner":
            enc = tok(
                [example["tokens"]], is_split_into_words=True, truncation=True, max_length=self.max_length
            )
            row = {k: enc[k][0] for k in SEQUENCE_KEYS if k in enc}
            words, previous = [], None
            for word in enc.word_ids(0):
                words.append(word if word is not None and word != previous else -1)
                previous = word
            row["word_index"] = words
            return [row]
        if family == "qa":
            from deepprompt.tasks.qa.data import encode_windows

            dm = self.datamodule
            data = encode_windows(tok, [example], dm.max_seq_length, dm.doc_stride, training=False)
            return [
                {
                    **{k: f[k] for k in SEQUENCE_KEYS if k in f},
                    "offsets": data.offsets[i],
                    "cls": data.cls_index[i],
                }
                for i, f in enumerate(data.features)
            ]
        raise ValueError(f"{self.name}: the {family} family has no backbone rows (it generates)")

    def rows_many(self, examples: list[Example]) -> list[list[Row]]:
        """`rows` of several examples, with one tokenizer call for a classification task's sentences (a fast
        tokenizer encodes a list in one pass; the rows are the ones `rows` makes one by one)."""
        if self.family != "classification" or len(examples) < 2:
            return [self.rows(e) for e in examples]
        out: list[list[Row] | None] = [None] * len(examples)
        for pairs in (True, False):  # sentence pairs and single sentences: one call each
            picked = [i for i, e in enumerate(examples) if (e["texts"][1] is not None) == pairs]
            if not picked:
                continue
            first = [examples[i]["texts"][0] for i in picked]
            second = [examples[i]["texts"][1] for i in picked] if pairs else None
            enc = self.tokenizer(first, second, truncation=True, max_length=self.max_length)
            keys = [k for k in SEQUENCE_KEYS if k in enc]
            for j, i in enumerate(picked):
                out[i] = [{k: enc[k][j] for k in keys}]
        return out  # type: ignore[return-value]

    def count_rows(self, example: Example) -> int:
        """How many rows `rows` makes of ``example``, without tokenizing (QA: 1, its first context window)."""
        if "_rows" in example:
            return len(example["_rows"])
        if self.family == "multiple_choice":
            return len(example["choices"])
        if self.family == "multirc":
            return len(example["options"])
        return 1

    @staticmethod
    def token_keys(encoded) -> Row:
        """The backbone keys (``input_ids`` ...) of a tokenizer output, as lists."""
        return {k: encoded[k] for k in SEQUENCE_KEYS if k in encoded}

    # -- backbone output -> per-row scores --------------------------------------------------------------
    @torch.no_grad()
    def scores(self, out, rows: torch.Tensor | slice, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """This task's rows (indices ``rows`` of the batch) of the backbone output -> their scores, one row each,
        on the output's device (new tensors, never views of ``out``: they stay valid when the next forward
        overwrites a graph's static outputs)."""
        length = batch["input_ids"].shape[1]
        family = self.family
        if family in ("classification", "multirc", "multiple_choice"):
            vec = pool(out, batch, self.pooling)[rows]
            logits = self.head(vec.to(self.head.weight.dtype)).float()
            if family == "multiple_choice":
                return logits[:, 0]
            return logits.softmax(-1)
        states = token_states(out, length)[rows]
        logits = self.head(states.to(self.head.weight.dtype)).float()
        if family == "ner":
            return logits.argmax(-1)
        start, end = logits.unbind(-1)  # qa
        pad = batch["attention_mask"][rows] == 0
        start, end = start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)
        return torch.stack([start, end], -1)

    # -- rows -> answer ---------------------------------------------------------------------------------
    @property
    def decodes_lists(self) -> bool:
        """`decode` reads each row's scores as a list (classification, MultiRC, NER): the engine converts a
        batch's fetched scores in one ``tolist``; other families get a tensor per row."""
        return self.family in ("classification", "multirc", "ner")

    def decode(self, example: Example, rows: list[Row], scores: list[Any]) -> dict[str, Any]:
        """An example's answer from its rows' scores (tensors, or lists where `decodes_lists`)."""
        family = self.family
        if family == "classification":
            p = _as_list(scores[0])
            return {"label": self.labels[int(np.argmax(p))], "probabilities": self._probs(p)}
        if family == "multiple_choice":
            p = torch.stack(scores).softmax(-1).tolist()
            choice = int(np.argmax(p))
            return {"label": self.labels[choice], "choice": choice, "probabilities": self._probs(p)}
        if family == "multirc":
            answers = []
            for (question, answer), s in zip(example["options"], scores, strict=True):
                p = _as_list(s)
                answers.append(
                    {
                        "question": question,
                        "answer": answer,
                        "label": self.labels[int(np.argmax(p))],
                        "probability": round(p[1], 6),
                    }
                )
            return {"answers": answers}
        if family == "ner":
            row, ids = rows[0], _as_list(scores[0])
            tags = ["O"] * len(example["tokens"])  # words cut off by truncation stay O
            for position, word in enumerate(row["word_index"]):
                if word >= 0:
                    tags[word] = self.labels[ids[position]]
            offsets, text = example["offsets"], example["text"]
            entities = []
            for first, last, kind in iob2_spans(tags):
                start, end = offsets[first][0], offsets[last][1]
                entities.append({"text": text[start:end], "type": kind, "start": start, "end": end})
            return {"entities": entities}
        # qa
        dm = self.datamodule
        pairs = [
            (r, (s[:, 0].numpy().astype(np.float64), s[:, 1].numpy().astype(np.float64)))
            for r, s in zip(rows, scores, strict=True)
        ]
        span, score, null = best_span(pairs, dm.n_best, dm.max_answer_length)
        if span is None or (dm.version_2_with_negative and null - score > dm.null_score_diff_threshold):
            return {"answer": "", "start": None, "end": None, "score": round(null, 6)}
        context = example["context"]
        return {
            "answer": context[span[0] : span[1]],
            "start": span[0],
            "end": span[1],
            "score": round(score, 6),
        }

    def _probs(self, p: list[float]) -> dict[str, float]:
        return {name: round(float(v), 6) for name, v in zip(self.labels, p, strict=True)}

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "labels": self.labels}
