"""``deepprompt-predict run_dir=... input=...``: apply a trained run to new text, one JSON line per example.

The run's saved config rebuilds its data module (tokenizer, lengths, labels) and model; ``checkpoint`` is
``best``, ``last``, a ``.ckpt`` file or a prompt export folder. Inputs are read in the task's own formats or
as plain text (`deepprompt.inference.inputs`); answers come out in input order, written atomically (all or
nothing) to ``output``, or to standard output when no file is named. The progress bar goes to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import DeepPromptError
from deepprompt.inference.engine import count_rows, generate, predict
from deepprompt.inference.families import TaskRunner
from deepprompt.inference.inputs import read_examples
from deepprompt.runs.build import build_data_and_module
from deepprompt.runs.guard import debug_enabled
from deepprompt.runs.restore import load_run_config, load_trained, resolve_checkpoint
from deepprompt.utils.atomic import atomic_write

log = logging.getLogger("deepprompt.predict")
register_resolvers()


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def load_run(run_dir: Path, checkpoint: str = "best", override=None, device: str = "auto"):
    """``(runner, module)`` of a trained run, in eval mode on ``device``."""
    cfg = load_run_config(run_dir, override)
    L.seed_everything(cfg.seed, workers=False, verbose=False)  # a random backbone is rebuilt bit for bit
    datamodule, module = build_data_and_module(cfg)
    load_trained(module, resolve_checkpoint(run_dir, checkpoint))
    module.eval().to(pick_device(device))
    head = getattr(module, "classifier", None)
    runner = TaskRunner.from_datamodule(
        str(cfg.data.get("task", "task")), datamodule, head, module.head_cfg.pooling
    )
    return runner, module


def run_predictions(
    runner: TaskRunner, module, examples: list[dict[str, Any]], batch_size: int, show_progress: bool = True
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    device = next(module.parameters()).device
    generating = runner.family == "generation"
    total = len(examples) if generating else count_rows([(0, runner, e) for e in examples])
    unit = "example" if generating else "row"
    bar = tqdm(total=total, unit=unit, file=sys.stderr, disable=not show_progress, desc="predict")
    with bar, torch.inference_mode():
        if generating:
            answers = generate(module, runner, examples, batch_size, device, bar.update)
        else:
            work = [(0, runner, e) for e in examples]
            answers = predict(lambda _ids, batch: module.encode(batch), work, batch_size, device, bar.update)
    for example, answer in zip(examples, answers, strict=True):
        if "line" in example:
            answer["line"] = example["line"]
    return answers


def write_lines(answers: list[dict[str, Any]], output: str | None) -> None:
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write(Path(output), lambda p: p.write_text(text, encoding="utf-8"))


def run(cfg: DictConfig) -> int:
    runner, module = load_run(
        Path(cfg.run_dir), str(cfg.checkpoint), cfg.get("override"), str(cfg.get("device", "auto"))
    )
    batch_size = int(cfg.batch_size or getattr(runner.datamodule, "eval_batch_size", 32))
    examples = read_examples(cfg.get("input"), runner, str(cfg.get("format", "auto")))
    answers = run_predictions(runner, module, examples, batch_size, bool(cfg.get("progress", True)))
    write_lines(answers, cfg.get("output"))
    return len(answers)


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        n = run(cfg)
    except DeepPromptError as err:  # one line (DEEPPROMPT_DEBUG=1: the traceback)
        if debug_enabled():
            raise
        print(f"deepprompt-predict: error: {err}", file=sys.stderr)
        sys.exit(1)
    log.info("%d predictions", n)


__all__ = ["load_run", "main", "pick_device", "run_predictions"]

if __name__ == "__main__":
    main()
