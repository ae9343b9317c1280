"""DDP scaling of the compared methods: training throughput on 1 vs N devices at the same per-device batch.

    python -m deepprompt.bench.ddp_scaling --shape bert-base --world-sizes 1,2 --batch 32 --seq 128 \\
        --prompt 16 --dtype bf16 --out ddp_scaling.json           # a 2-GPU machine (NCCL)
    python -m deepprompt.bench.ddp_scaling --smoke                # CPU, gloo, tiny backbone, 2 processes

For each world size W, W processes are spawned (``torch.multiprocessing``, one device each, NCCL on CUDA and
gloo on CPU); each builds every method on the same random-weight backbone (``deepprompt.bench.models``) and
times ``--steps`` training steps (forward + loss + backward with the gradient all-reduce + AdamW step) after
``--warmup`` untimed ones, on random token ids of ``--batch`` x ``--seq`` per device. W = 1 is the plain
single-device model (no DDP wrapper, as a 1-device run trains); W > 1 wraps it in
``DistributedDataParallel``. A step time is the slowest rank's median (the ranks wait for each other in
the all-reduce). Reported per method: ms/step, samples/s (W x batch / step time), the scaling efficiency
``samples/s(W) / (W x samples/s(1))``, and the bytes all-reduced per step (the trainable gradients:
kilobytes for P-Tuning v2, the whole model for full fine-tuning), the main reason the methods scale
differently.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from deepprompt.bench import timing
from deepprompt.bench.models import TRAINED, Row, build_model
from deepprompt.bench.shapes import SHAPES, backbone_config

DEFAULT_METHODS = ("ptuning_v2", "prefix", "lora", "finetune")
SMOKE = dict(
    device="cpu", shape="tiny", methods="ptuning_v2,finetune", world_sizes="1,2", batch=4, seq=32, prompt=4,
    steps=3, warmup=1, dtype="fp32",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out_file: str) -> None:
    """One process of a world of ``world``: time every method, rank 0 writes the rows to ``out_file``."""
    cuda = args.device == "cuda"
    device = torch.device(f"cuda:{rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, args.threads))
    distributed = world > 1
    if distributed:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    rows = []
    try:
        for method in args.methods:
            try:
                rows.append(_time_method(method, rank, world, device, args))
            except Exception as err:  # an out-of-memory or unsupported case becomes an error row
                rows.append({"method": method, "world_size": world, "error": f"{type(err).__name__}: {err}"})
            if cuda:
                torch.cuda.empty_cache()
        if distributed:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, rows)
        else:
            gathered = [rows]
        if rank == 0:
            Path(out_file).write_text(json.dumps(_merge_ranks(gathered)))
    finally:
        if distributed:
            dist.destroy_process_group()


def _time_method(method: str, rank: int, world: int, device: torch.device, args) -> dict:
    prompt = args.prompt if Row.parse(method).prompted else 0
    model, trainable = build_model(method, args.shape, prompt, device=device, seed=args.seed)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    vocab = backbone_config(args.shape).vocab_size
    generator = torch.Generator(device="cpu").manual_seed(args.seed + rank)
    input_ids = torch.randint(3, vocab, (args.batch, args.seq), generator=generator).to(device)
    labels = torch.randint(0, 2, (args.batch,), generator=generator).to(device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if args.dtype == "bf16"
        else contextlib.nullcontext()
    )

    def step() -> None:
        with autocast:
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    stats = timing.time_steps(step, args.warmup, args.steps, device)
    grad_bytes = sum(p.numel() * p.element_size() for p in trainable)
    return {
        "method": method,
        "world_size": world,
        "prompt": prompt,
        "median_ms": stats["median_ms"],
        "allreduce_bytes": grad_bytes if world > 1 else 0,
        "trainable": sum(p.numel() for p in trainable),
    }


def _merge_ranks(per_rank: list[list[dict]]) -> list[dict]:
    """One row per method: the slowest rank's median step time."""
    merged = []
    for rows in zip(*per_rank, strict=True):
        errors = [r["error"] for r in rows if "error" in r]
        if errors:
            merged.append({**rows[0], "error": errors[0]})
            continue
        merged.append({**rows[0], "median_ms": max(r["median_ms"] for r in rows)})
    return merged


def run_world(world: int, args: argparse.Namespace) -> list[dict]:
    """Spawn ``world`` processes (or run in this one for 1) and return their merged rows."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = str(Path(tmp) / "rows.json")
        if world == 1:
            _worker(0, 1, 0, args, out_file)
        else:
            mp.spawn(_worker, args=(world, _free_port(), args, out_file), nprocs=world, join=True)
        return json.loads(Path(out_file).read_text())


def summarise(rows: list[dict], batch: int) -> list[dict]:
    """Add samples/s and the scaling efficiency against the method's 1-device row."""
    base = {r["method"]: r for r in rows if r["world_size"] == 1 and "error" not in r}
    for r in rows:
        if "error" in r:
            continue
        r["samples_per_s"] = r["world_size"] * batch / (r["median_ms"] / 1e3)
        one = base.get(r["method"])
        if one is not None:
            one_rate = batch / (one["median_ms"] / 1e3)
            r["scaling_efficiency"] = r["samples_per_s"] / (r["world_size"] * one_rate)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| method | devices | ms/step | samples/s | efficiency | all-reduce / step |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['world_size']} | error: {r['error'][:60]} | | | |")
            continue
        eff = r.get("scaling_efficiency")
        lines.append(
            f"| {r['method']} | {r['world_size']} | {r['median_ms']:.1f} | {r['samples_per_s']:.1f} | "
            f"{'' if eff is None else f'{100 * eff:.0f}%'} | {r['allreduce_bytes'] / 2**20:.3f} MiB |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deepprompt.bench.ddp_scaling",
        description="Training throughput of the compared methods on 1 vs N devices (same per-device batch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="CPU, gloo, tiny backbone, 2 processes, 3 steps")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--shape", choices=sorted(SHAPES), default="bert-base")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--world-sizes", default="1,2", help="comma-separated process counts; 1 is the baseline")
    p.add_argument("--batch", type=int, default=32, help="per-device batch")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--prompt", type=int, default=16, help="prompt length m (ptuning_v2, prefix)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="bf16")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process (CPU runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write the rows and the environment as JSON")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.smoke:
        given = {
            a.lstrip("-").split("=")[0].replace("-", "_") for a in (argv if argv is not None else sys.argv)
        }
        for key, value in SMOKE.items():
            if key not in given:
                setattr(args, key, value)
    args.methods = [m.strip() for m in str(args.methods).split(",") if m.strip()]
    unknown = [m for m in args.methods if m.split("+")[0] not in TRAINED]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; known: {', '.join(TRAINED)} (with +VARIANT...)")
    worlds = sorted({int(w) for w in str(args.world_sizes).split(",") if w.strip()})
    if 1 not in worlds:
        worlds.insert(0, 1)  # the baseline of the efficiency
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.device == "cuda" and found < max(worlds):
        raise SystemExit(f"--world-sizes {max(worlds)} needs as many GPUs, found {found} (--smoke on CPU)")
    rows = []
    for world in worlds:
        rows += run_world(world, args)
    rows = summarise(rows, args.batch)
    print(markdown(rows))
    if args.out is not None:
        env = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
