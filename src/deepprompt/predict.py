"""``deepprompt-predict run_dir=... input=...``: apply a trained run to new text, one JSON line per example.

The run's saved config rebuilds its data module (tokenizer, lengths, labels) and model; ``checkpoint`` is
``best``, ``last``, a ``.ckpt`` file or a prompt export folder. Inputs are read in the task's own formats or
as plain text (`deepprompt.inference.inputs`); answers come out in input order, written atomically (all or
nothing) to ``output``, or to standard output when no file is named. The progress bar goes to stderr.
The whole input is read and checked before the model is built and its checkpoint loaded, so a malformed
line is reported at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from deepprompt.config.resolvers import register_resolvers
from deepprompt.errors import DeepPromptError
from deepprompt.runs.guard import debug_enabled
from deepprompt.runs.restore import load_run_config, load_trained, resolve_checkpoint
from deepprompt.utils.atomic import atomic_write
from deepprompt.utils.instantiate import build

if TYPE_CHECKING:
    import torch

    from deepprompt.inference.families import TaskRunner

# torch, Lightning and the inference modules are imported where they are used: a mistake on the command line or a
# wrong run folder is reported at once

log = logging.getLogger("deepprompt.predict")
register_resolvers()


def pick_device(requested: str = "auto") -> torch.device:
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def open_run(run_dir: Path, override=None):
    """``(cfg, runner)`` of a trained run before its model is built: the data module (tokenizer, lengths,
    labels) and no head, enough to read and check inputs. The seed is set first, as training set it."""
    cfg = load_run_config(run_dir, override)
    import lightning as L

    from deepprompt.inference.families import TaskRunner

    L.seed_everything(cfg.seed, workers=False, verbose=False)  # a random backbone is rebuilt bit for bit
    datamodule = build(cfg.data, "data")
    return cfg, TaskRunner.from_datamodule(str(cfg.data.get("task", "task")), datamodule, None, "pooler")


def load_model(
    cfg: DictConfig, runner: TaskRunner, run_dir: Path, checkpoint: str = "best", device: str = "auto"
):
    """The run's module with its trained parameters, in eval mode on ``device``; ``runner`` gets its head."""
    from deepprompt.runs.build import build_module

    module = build_module(cfg, runner.datamodule)
    load_trained(module, resolve_checkpoint(run_dir, checkpoint))
    module.eval().to(pick_device(device))
    runner.head = getattr(module, "classifier", None)
    runner.pooling = module.head_cfg.pooling
    return module


def load_run(run_dir: Path, checkpoint: str = "best", override=None, device: str = "auto"):
    """``(runner, module)`` of a trained run, in eval mode on ``device``."""
    cfg, runner = open_run(run_dir, override)
    return runner, load_model(cfg, runner, run_dir, checkpoint, device)


def run_predictions(
    runner: TaskRunner, module, examples: list[dict[str, Any]], batch_size: int, show_progress: bool = True
) -> list[dict[str, Any]]:
    import torch
    from tqdm import tqdm

    from deepprompt.inference.engine import count_rows, generate, predict

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
    """Read and check every input first (a malformed line fails at once), then build and load the model."""
    run_dir = Path(cfg.run_dir)
    run_cfg, runner = open_run(run_dir, cfg.get("override"))
    from deepprompt.inference.inputs import read_examples

    examples = read_examples(cfg.get("input"), runner, str(cfg.get("format", "auto")))
    module = load_model(run_cfg, runner, run_dir, str(cfg.checkpoint), str(cfg.get("device", "auto")))
    batch_size = int(cfg.batch_size or getattr(runner.datamodule, "eval_batch_size", 32))
    answers = run_predictions(runner, module, examples, batch_size, bool(cfg.get("progress", True)))
    write_lines(answers, cfg.get("output"))
    return len(answers)


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def hydra_main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        n = run(cfg)
    except DeepPromptError as err:  # one line (DEEPPROMPT_DEBUG=1: the traceback)
        if debug_enabled():
            raise
        print(f"deepprompt-predict: error: {err}", file=sys.stderr)
        sys.exit(1)
    log.info("%d predictions", n)


def main() -> None:
    """Console entry point; a mistake on the command line is one line (``deepprompt.config.cli_errors``)."""
    from deepprompt.config.cli_errors import install
    from deepprompt.runs.startup import quick_exit_collection
    from deepprompt.utils.quiet import quiet_third_party

    install("deepprompt-predict")
    quiet_third_party()
    hydra_main()
    quick_exit_collection()  # seconds off the interpreter's teardown


__all__ = ["hydra_main", "load_model", "load_run", "main", "open_run", "pick_device", "run_predictions"]

if __name__ == "__main__":
    main()
