"""``deepprompt-bench epoch``: time one real training epoch end to end, our data pipeline against static padding.

    deepprompt-bench epoch --task sst2 --model-path $PWD/.device/minilm --data-dir $DEEPPROMPT_DATA_DIR \\
        --variants static,dynamic_nogroup,dynamic,dynamic_bf16 --out epoch.json
    python -m deepprompt.bench.epoch ...                          # the same, without the console script

Every variant trains P-Tuning v2 (``--prompt`` tokens on every layer, classification head on the pooler) for
one epoch of the task's training split with Lightning (bf16-mixed on CUDA, fp32 on CPU), no validation, no
logger, no checkpoints, no progress bar. The clock runs from the first training batch to the end of the epoch
(CUDA synchronised): data loading, collation, forward, backward, optimizer and Lightning's per-step overhead
all count; reading and tokenizing the files (done once, before the clock) and building the model do not.
Before the first variant one short untimed fit (``--warmup-batches``) warms CUDA and cuBLAS up.

Variants:

- ``static``: every batch padded to ``--max-seq-length`` (128), examples in random order: what the official
  P-Tuning v2 code does (``padding="max_length"``);
- ``dynamic_nogroup``: each batch padded to its own longest example (rounded up to 8), random order;
- ``dynamic``: our DataModule as ``conf/data/<task>.yaml`` sets it up: dynamic padding + length grouping;
- ``dynamic_bf16``: ``dynamic`` with the frozen backbone stored in bf16 (``method.frozen_dtype=bf16``; CUDA);
- ``dynamic_compile`` / ``dynamic_cudagraph``: ``dynamic_bf16`` with ``method.compile=default`` /
  ``reduce-overhead`` (torch.compile of the backbone, automatic dynamic shapes; CUDA graphs record one graph per
  batch shape); ``dynamic_cudagraph_symbolic``: the same with ``method.compile_dynamic=true`` (symbolic sizes
  from the first batch: one compile instead of a static one, then a dynamic one at the first new shape);
  ``dynamic_graphs``: ``dynamic_bf16`` with ``method.cuda_graphs=true`` (no compiler: the eager kernels of each
  batch shape's forward and backward captured once as CUDA graphs, under a second per shape, then replayed).
  Compiling and capturing happen inside the clock, in the first steps and at the first new batch shape: those
  steps are reported apart (``slow_steps``: steps over 10x the median step, ``epoch_s_without_slow``), so the
  table shows both the end-to-end epoch and the steady rate a longer training would see.

A variant named twice runs twice (the second row is labelled ``(run 2)``): in the same process inductor's caches
are warm, which is what the later jobs of a sweep on one machine see. ``--pad-multiple`` (default 8) rounds the
dynamic batches' length up to a multiple: fewer distinct shapes, fewer CUDA-graph recordings and recompiles.

Time budget (``--budget-s``, default 150 s, 0 = none) for the eager variants: each gets an equal share; a
variant that reaches its share stops early (``truncated``, the steps it did are a random sample of the epoch:
random order, or length-grouped mega-batches in random order; with no compile their rate is steady, so the full
epoch's time is estimated from it). Compiled variants always run the whole epoch: truncated, they measure
mostly their compile (on an H100 a 50 s share ended after 2 steps); ``dynamic_graphs`` runs whole epochs too. The
JSON is written after every variant, so a killed run still leaves the finished ones.

Reported per variant: epoch seconds, steps, examples/s, padded and real tokens (their ratio is the padding
overhead), and the speed-up over ``static`` as the ratio of examples/s (for full epochs of the same data that is
the ratio of epoch times; for truncated ones the same ratio over the steps done), plus the full epoch's
estimated seconds at that rate. ``--shape roberta-large`` keeps the checkpoint's architecture and
tokenizer but builds random weights with roberta-large's sizes (speed only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import shlex
import sys
import time
from pathlib import Path

import torch

OVERHEAD_S = 5.0  # per variant, outside its clock: model build, Lightning setup/teardown, DataLoader workers
MIN_SHARE_S = 1.0  # a variant always gets at least this much
_BF16 = {"frozen_dtype": "bf16"}
# variant -> its data pipeline (group_by_length; static pads every batch to --max-seq-length) and the
# ptuning_v2 method options it sets on top of the method's defaults (conf/method/ptuning_v2.yaml)
VARIANTS: dict[str, dict] = {
    "static": {"static": True, "method": {}},
    "dynamic_nogroup": {"method": {}},
    "dynamic": {"group_by_length": True, "method": {}},
    "dynamic_bf16": {"group_by_length": True, "method": _BF16},
    "dynamic_compile": {"group_by_length": True, "method": {**_BF16, "compile": "default"}},
    "dynamic_cudagraph": {"group_by_length": True, "method": {**_BF16, "compile": "reduce-overhead"}},
    # symbolic sizes from the first batch: one compile instead of a static one, then a dynamic one
    "dynamic_cudagraph_symbolic": {
        "group_by_length": True,
        "method": {**_BF16, "compile": "reduce-overhead", "compile_dynamic": True},
    },
    # captured per batch shape, no compiler
    "dynamic_graphs": {"group_by_length": True, "method": {**_BF16, "cuda_graphs": True}},
}


def needs_bf16(variant: str) -> bool:
    return VARIANTS[variant]["method"].get("frozen_dtype") == "bf16"


def whole_epoch(variant: str) -> bool:
    """Never truncated by the budget: the first steps compile or capture."""
    method = VARIANTS[variant]["method"]
    return method.get("compile", "none") != "none" or bool(method.get("cuda_graphs"))


SLOW_STEP = 10.0  # a step over this many times the median is counted as a compile step
SIZES = {
    "roberta-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),  # tests
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepprompt-bench epoch",
        description="Time one training epoch: dynamic padding + length grouping against static padding.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", default="sst2", help="classification task (sst2, boolq, rte, cb)")
    p.add_argument(
        "--model-path",
        default=None,
        help="backbone folder or hub name (also the tokenizer); default: the minilm config's backbone",
    )
    p.add_argument("--data-dir", default=None, help="benchmark data folder (default: $DEEPPROMPT_DATA_DIR)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated ({', '.join(VARIANTS)})")
    p.add_argument("--shape", choices=sorted(SIZES), default=None, help="random weights of these sizes")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--prompt", type=int, default=16, help="prompt tokens per layer")
    p.add_argument(
        "--pad-multiple",
        type=int,
        default=8,
        help="dynamic variants: pad each batch to a multiple of this (data.pad_to_multiple_of; larger = fewer "
        "batch shapes, i.e. fewer CUDA-graph recordings and recompiles)",
    )
    p.add_argument("--limit-train-examples", type=int, default=None, help="first N training examples only")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader workers (conf/data uses 2)")
    p.add_argument("--warmup-batches", type=int, default=20, help="untimed warm-up batches before the first")
    p.add_argument(
        "--budget-s",
        type=float,
        default=150.0,
        help="wall-clock budget of the eager variants together; each stops at its equal share (0 = no limit: "
        "full epochs); compiled variants always run full epochs",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--precision", default=None, help="Lightning precision (default: bf16-mixed on CUDA, 32-true on CPU)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=Path("epoch.json"))
    return p


def _datamodule(args, variant: str):
    from deepprompt.data import FeatureCollator
    from deepprompt.tasks.classification import ClassificationDataModule

    static = VARIANTS[variant].get("static", False)
    dm = ClassificationDataModule(
        task=args.task,
        tokenizer=args.model_path,
        data_dir=args.data_dir,
        batch_size=args.batch,
        max_seq_length=args.max_seq_length,
        num_workers=args.num_workers,
        group_by_length=VARIANTS[variant].get("group_by_length", False),
        pad_to_multiple_of=args.pad_multiple,
        limit_train_examples=args.limit_train_examples,
        limit_eval_examples=1,
        seed=args.seed,
    )
    if static:  # every batch exactly max_seq_length wide (all examples are truncated to it)
        dm.collator = FeatureCollator(
            dm.collator.pad_token_id, args.max_seq_length, dm.tokenizer.padding_side
        )
    return dm


def _module(args, dm, variant: str):
    from deepprompt.tasks.classification import ClassificationModule

    backbone = {"name": "bench", "name_or_path": args.model_path, "pretrained": args.shape is None}
    if args.shape:
        backbone["config_overrides"] = SIZES[args.shape]
    method = {"name": "ptuning_v2", "prompt": {"length": args.prompt}, **VARIANTS[variant]["method"]}
    return ClassificationModule(backbone=backbone, method=method, **dm.module_kwargs())


def _clock(device: str, budget_s: float | None = None):
    """A Lightning callback: epoch wall time from the first batch, padded and real token counts; stops the epoch
    once ``budget_s`` seconds have passed since its first batch (``truncated``)."""
    import lightning as L

    cuda = torch.device(device).type == "cuda"

    class Clock(L.Callback):
        def __init__(self):
            self.start = self.end = None
            self.truncated = False
            self.steps = self.examples = self.padded = 0
            self.real = torch.zeros((), dtype=torch.long)  # summed on the batch's device: no sync per step
            self.step_ends: list[float] = []  # host clock, no sync: a compile blocks the host and shows here
            self.train_loss: float | None = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if self.start is None:
                if cuda:
                    torch.cuda.synchronize()
                self.start = time.perf_counter()
            self.steps += 1
            self.examples += batch["input_ids"].shape[0]
            self.padded += batch["input_ids"].numel()
            self.real = self.real.to(batch["attention_mask"].device) + batch["attention_mask"].sum()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.step_ends.append(time.perf_counter())
            if budget_s is not None and time.perf_counter() - self.start >= budget_s:
                self.truncated = True
                trainer.should_stop = True

        def on_train_epoch_end(self, trainer, module):
            if cuda:
                torch.cuda.synchronize()
            self.end = time.perf_counter()
            # the epoch's mean training loss (the module resets it in its own hook, which runs after this one):
            # that every variant trains, not only runs
            if module.train_loss.update_count:
                self.train_loss = float(module.train_loss.compute())

    return Clock()


def _fit(args, dm, variant: str, limit_batches: int | None = None, budget_s: float | None = None) -> dict:
    import lightning as L

    module = _module(args, dm, variant)
    clock = _clock(args.device, budget_s)
    trainer = L.Trainer(
        accelerator="gpu" if torch.device(args.device).type == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_epochs=1,
        limit_train_batches=limit_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.fit(module, datamodule=dm)
    seconds = clock.end - clock.start
    real = int(clock.real.item())
    steps_s = torch.tensor(clock.step_ends).diff(prepend=torch.tensor([clock.start])).tolist()
    median = sorted(steps_s)[len(steps_s) // 2] if steps_s else 0.0
    slow = [t for t in steps_s if t > SLOW_STEP * median]
    full = len(dm.dataset("train"))
    result = {
        "variant": variant,
        "epoch_s": seconds,
        "truncated": clock.truncated,
        "budget_s": budget_s,
        "epoch_examples": full,
        "epoch_s_estimate": seconds * full / max(clock.examples, 1),
        "steps": clock.steps,
        "examples": clock.examples,
        "examples_per_s": clock.examples / seconds,
        "ms_per_step": 1e3 * seconds / max(clock.steps, 1),
        "padded_tokens": clock.padded,
        "real_tokens": real,
        "padding_overhead": clock.padded / max(real, 1),
        "slow_steps": len(slow),
        "slow_steps_s": sum(slow),
        "epoch_s_without_slow": seconds - sum(slow),
        "train_loss": clock.train_loss,
    }
    if (
        getattr(module.encoder, "graphs", None) is not None
    ):  # counts, not the graphs: teardown's .cpu() drops those
        result["cuda_graphs"] = module.encoder.graphs.counts()
    del module, trainer
    gc.collect()
    if torch.device(args.device).type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import os

    from deepprompt.backbones import BackboneConfig

    args.model_path = args.model_path or BackboneConfig().name_or_path
    args.data_dir = args.data_dir or os.environ.get("DEEPPROMPT_DATA_DIR")
    cuda = torch.device(args.device).type == "cuda"
    args.precision = args.precision or ("bf16-mixed" if cuda else "32-true")
    # a variant may repeat: its later runs show what a warm compile cache (inductor's, same process) saves
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"deepprompt-bench epoch: unknown variants {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    for variant in [v for v in variants if needs_bf16(v) and not args.precision.startswith("bf16")]:
        print(f"# {variant} needs bf16-mixed precision: skipped", file=sys.stderr)
        variants.remove(variant)
    if args.threads:
        torch.set_num_threads(args.threads)

    import lightning as L

    L.seed_everything(args.seed, verbose=False)
    modules = {}
    for variant in dict.fromkeys(variants):  # read + tokenize once per pipeline, outside the clock
        dm = _datamodule(args, variant)
        dm.setup("fit")
        modules[variant] = dm
    if args.warmup_batches > 0 and variants:
        _fit(args, modules[variants[0]], variants[0], limit_batches=args.warmup_batches)

    env = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["deepprompt-bench", "epoch", *argv]),
        "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        "torch": torch.__version__,
    }
    results = []
    eager = [v for v in variants if not whole_epoch(v)]
    for i, variant in enumerate(variants):
        share = None
        if args.budget_s and not whole_epoch(variant):
            # each variant also builds its model and Lightning run outside its clock: keep OVERHEAD_S for that
            share = max(args.budget_s / len(eager) - OVERHEAD_S, MIN_SHARE_S)
        result = _fit(args, modules[variant], variant, budget_s=share)
        run = variants[: i + 1].count(variant)
        if run > 1:
            result["variant"] = f"{variant} (run {run})"
        results.append(result)
        cut = f" (stopped at its {share:.0f} s share)" if result["truncated"] else ""
        print(
            f"# {result['variant']}: {result['epoch_s']:.2f} s, {result['steps']} steps{cut}, "
            f"{result['examples_per_s']:.0f} ex/s, padding x{result['padding_overhead']:.2f}",
            file=sys.stderr,
        )
        _write(args, env, results, final=False)  # a timeout still leaves the finished variants
    payload = _write(args, env, results, final=True)
    print(payload["table"])
    print(f"# wrote {args.out} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


def _write(args, env: dict, results: list[dict], final: bool) -> dict:
    """Speed-ups, table and JSON of the variants so far (after every variant, and at the end)."""
    static = next((r for r in results if r["variant"] == "static"), None)
    for r in results:
        r["speedup_vs_static"] = r["examples_per_s"] / static["examples_per_s"] if static else None
    lines = [
        "| variant | epoch s | steps | truncated | full epoch s (est.) | examples/s | ms/step | "
        "padded/real tokens | x static | slow steps (s) | epoch s without them |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speed = "—" if r["speedup_vs_static"] is None else f"{r['speedup_vs_static']:.2f}"
        lines.append(
            f"| {r['variant']} | {r['epoch_s']:.2f} | {r['steps']} | {'yes' if r['truncated'] else 'no'} | "
            f"{r['epoch_s_estimate']:.1f} | {r['examples_per_s']:.0f} | {r['ms_per_step']:.1f} | "
            f"{r['padding_overhead']:.2f} | {speed} | {r['slow_steps']} ({r['slow_steps_s']:.1f}) | "
            f"{r['epoch_s_without_slow']:.2f} |"
        )
    payload = {
        "environment": env,
        "args": {k: str(v) for k, v in vars(args).items()},
        "complete": final,
        "rows": results,
        "table": "\n".join(lines),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    return payload


if __name__ == "__main__":
    raise SystemExit(main())
