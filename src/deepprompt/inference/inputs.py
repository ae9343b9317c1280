"""Inputs to predict on: the task's own file formats, read by the project's readers, or plain text.

``format`` (``auto``: from the file suffix, ``.gz`` ignored): ``jsonl`` and ``tsv`` rows with the task's own
fields (labels optional), ``conll`` (NER: token per line, blank line between sentences, extra columns
ignored), ``squad`` (official SQuAD JSON), ``csv`` (E2E: column ``mr``), or ``text``: one example per line,
the fields of a pair separated by a tab (classification pairs: ``premise<TAB>hypothesis``; COPA:
``premise<TAB>cause|effect<TAB>choice1<TAB>choice2``; MultiRC: ``paragraph<TAB>question<TAB>answer``; QA:
``question<TAB>context``; NER: a sentence, split on whitespace). A malformed example fails with one
`DataFormatError` naming ``file:line``.

`example_from_fields` turns one field dict (a file row or a JSON request item) into an example, so
`deepprompt-serve` takes the same fields as the JSON-lines files.
"""

from __future__ import annotations

import copy
import io
import re
import sys
from pathlib import Path
from typing import Any

from deepprompt.errors import DataFormatError
from deepprompt.inference.families import Example, TaskRunner

FORMATS = ("auto", "jsonl", "tsv", "conll", "squad", "csv", "text")
_SUFFIX = {".jsonl": "jsonl", ".tsv": "tsv", ".conll": "conll", ".json": "squad", ".csv": "csv"}
# TSV/text columns per family (classification pairs: the task's own text fields)
_TEXT_FIELDS = {
    "multiple_choice": ("premise", "question", "choice1", "choice2"),
    "multirc": ("paragraph", "question", "answer"),
    "qa": ("question", "context"),
    "generation": ("source",),
}


def detect_format(path: str | None, requested: str) -> str:
    if requested not in FORMATS:
        raise DataFormatError(f"format={requested!r} is not one of {list(FORMATS)}")
    if requested != "auto":
        return requested
    if path is None:
        return "text"
    name = path[: -len(".gz")] if path.endswith(".gz") else path
    return _SUFFIX.get(Path(name).suffix, "text")


def text_fields(runner: TaskRunner) -> tuple[str, ...]:
    if runner.family == "classification":
        task = getattr(runner.datamodule, "task", None)
        fields = getattr(task, "text_fields", None)
        if fields:
            return tuple(fields)
        return {"wic": ("sentence1", "sentence2"), "wsc": ("text", "span1_text")}.get(str(task), ("text",))
    return _TEXT_FIELDS.get(runner.family, ("text",))


def words_with_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    matches = list(re.finditer(r"\S+", text))
    return [m.group() for m in matches], [(m.start(), m.end()) for m in matches]


def _str(where: str, row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{where}: field {name!r} is missing or not text: {value!r}")
    return value


def example_from_fields(runner: TaskRunner, row: dict[str, Any], where: str) -> Example:
    """One example of ``runner``'s family from a row of fields (``where``: ``file:line`` for errors)."""
    family, dm = runner.family, runner.datamodule
    source, line = where.rsplit(":", 1) if ":" in where else (where, "0")
    if family == "classification":
        task = getattr(dm, "task", None)
        if (task == "wic" and "word" in row) or (task == "wsc" and ("target" in row or "span2_index" in row)):
            from deepprompt.tasks.superglue.data import frame_wic, frame_wsc  # the training template

            frame = frame_wic if task == "wic" else frame_wsc
            first, second, _, _ = frame(source, int(line), {"label": False, **row}, dm.template)[0]
            return {"texts": (first, second)}
        fields = text_fields(runner)
        texts = [_str(where, row, f) for f in fields]
        return {"texts": (texts[0], texts[1] if len(texts) > 1 else None)}
    if family == "multiple_choice":
        from deepprompt.tasks.superglue.copa import frame_copa

        context, choices, _ = frame_copa(source, int(line), {"label": 0, **row})
        return {"context": context, "choices": choices}
    if family == "multirc":
        if "passage" in row:  # the SuperGLUE nesting: passage -> questions -> answers
            from deepprompt.tasks.superglue.data import _Groups, frame_multirc

            row = copy.deepcopy(row)
            for q in row["passage"].get("questions", []) if isinstance(row["passage"], dict) else []:
                for a in q.get("answers", []) if isinstance(q, dict) else []:
                    if isinstance(a, dict):
                        a.setdefault("label", False)
            framed = frame_multirc(source, int(line), row, _Groups())
            paragraph = framed[0][0] if framed else ""
            options = []
            for q in row["passage"]["questions"]:
                options += [(q["question"], a["text"]) for a in q["answers"]]
            return {"paragraph": paragraph, "options": options}
        fields = [_str(where, row, f) for f in ("paragraph", "question", "answer")]
        return {"paragraph": fields[0], "options": [(fields[1], fields[2])]}
    if family == "ner":
        if isinstance(row.get("tokens"), list) and all(isinstance(t, str) for t in row["tokens"]):
            tokens = row["tokens"]
            text = " ".join(tokens)
            offsets, at = [], 0
            for t in tokens:
                offsets.append((at, at + len(t)))
                at += len(t) + 1
        else:
            text = _str(where, row, "text")
            tokens, offsets = words_with_offsets(text)
        if not tokens:
            raise DataFormatError(f"{where}: an empty sentence")
        return {"tokens": tokens, "offsets": offsets, "text": text}
    if family == "qa":
        return {
            "id": str(row.get("id", line)),
            "question": _str(where, row, "question"),
            "context": _str(where, row, "context"),
        }
    if family == "generation":
        if "mr" in row:
            from deepprompt.tasks.generation.data import linearize_e2e

            try:
                return {"source": linearize_e2e(_str(where, row, "mr"))}
            except ValueError as err:
                raise DataFormatError(f"{where}: {err}") from None
        return {"source": _str(where, row, "source")}
    raise DataFormatError(f"{where}: no inputs for the {family} family")


def fields_from_text(runner: TaskRunner, line: str, where: str) -> dict[str, str]:
    """A plain-text example (tab-separated fields; NER: the sentence) as the fields of a JSON-lines row."""
    if runner.family == "ner":
        return {"text": line}
    fields = text_fields(runner)
    parts = line.split("\t")
    if len(parts) != len(fields):
        raise DataFormatError(
            f"{where}: expected {len(fields)} tab-separated field(s) {list(fields)}, got {len(parts)}"
        )
    return dict(zip(fields, parts, strict=True))


def _text_rows(lines, source: str, runner: TaskRunner):
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if line.strip():
            yield lineno, fields_from_text(runner, line, f"{source}:{lineno}")


def read_examples(path: str | None, runner: TaskRunner, fmt: str = "auto") -> list[Example]:
    """Every example of ``path`` (None: standard input), in order; each example keeps its ``line``."""
    from deepprompt.data.readers import read_jsonl, read_tsv

    fmt = detect_format(path, fmt)
    source = path or "<stdin>"
    if path is None:
        stdin = sys.stdin.read()
        if fmt != "text":
            raise DataFormatError(f"standard input is read as plain text (format={fmt} needs a file)")
        rows = _text_rows(io.StringIO(stdin), source, runner)
    elif not Path(path).is_file():
        raise DataFormatError(f"input file {path} does not exist")
    elif fmt == "jsonl":
        rows = read_jsonl(path)
    elif fmt == "tsv":
        rows = read_tsv(path)
    elif fmt == "text":
        from deepprompt.data.readers import read_text

        rows = list(_text_rows(io.StringIO(read_text(path)), source, runner))
    elif fmt == "conll":
        from deepprompt.tasks.ner.data import read_conll

        rows = ((line, {"tokens": tokens}) for line, tokens, _ in read_conll(path, tag_column=None))
    elif fmt == "squad":
        from deepprompt.tasks.qa.data import read_squad

        rows = (
            (e["id"], {"id": e["id"], "question": e["question"], "context": e["context"]})
            for e in read_squad(path)
        )
    elif fmt == "csv":
        from deepprompt.tasks.generation.data import read_e2e

        rows = ((line, {"source": mr}) for line, mr, _ in read_e2e(path))
    else:
        raise DataFormatError(f"format={fmt} is not readable for {runner.family}")
    examples = []
    for line, row in rows:
        example = example_from_fields(runner, row, f"{source}:{line}")
        example["line"] = line
        examples.append(example)
    if not examples:
        raise DataFormatError(f"{source}: no examples")
    return examples
