"""``deepprompt-bench``: time training steps and inference of deep prompts against peft prefix, LoRA, full FT.

Each case builds a fresh random-weight backbone (no download), runs ``--warmup`` untimed and ``--steps``
timed steps and records the median. A training step is forward + loss + backward + AdamW step (fused on
CUDA) + zero_grad on random token ids (no padding, so no attention mask unless ``--attention-mask``);
``--dtype bf16`` runs under ``torch.autocast(bfloat16)`` with fp32 weights. Inference is a forward under
``torch.inference_mode`` for ``bare`` and for ``ptuning_v2`` with ``--infer-prompt`` tokens (MLP folded).

Methods without a prompt (``lora``, ``full_ft``, ``bare``) are measured once per (shape, T) and recorded with
``m = 0``. A case that fails (peft prefix with T + m beyond the position table, out of memory ...) becomes an
error row and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from deepprompt.bench import flops as F
from deepprompt.bench import methods as M
from deepprompt.bench import timing

COLUMNS = ("method", "shape", "T", "m", "train ms/step", "samples/s", "peak GiB", "MFU %", "inference ms")


@dataclass(frozen=True)
class Case:
    method: str
    shape: str
    seq: int
    prompt: int
    mode: str  # "train" or "infer"

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.method, self.shape, self.seq, self.prompt)


def _csv(kind):
    def parse(text: str):
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepprompt-bench",
        description="Benchmark P-Tuning v2 (deepprompt) against peft prefix tuning, LoRA and full fine-tuning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--shapes",
        type=_csv(str),
        default=["bert-base", "roberta-large"],
        help=f"backbone shapes, comma-separated ({', '.join(M.SHAPES)})",
    )
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--seq", type=_csv(int), default=[128, 256], help="sequence lengths T")
    p.add_argument(
        "--prompt", type=_csv(int), default=[16, 64, 128], help="prompt lengths m (prompted methods)"
    )
    p.add_argument(
        "--methods", type=_csv(str), default=list(M.METHODS), help=f"methods ({', '.join(M.METHODS)})"
    )
    p.add_argument(
        "--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 = autocast over fp32 weights"
    )
    p.add_argument("--steps", type=int, default=50, help="timed steps per case")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    p.add_argument("--out", type=Path, default=Path("results.json"), help="JSON results file")
    p.add_argument(
        "--infer-prompt", type=int, default=100, help="prompt tokens for ptuning_v2 inference (0: skip)"
    )
    p.add_argument(
        "--reparam", choices=("none", "mlp"), default="none", help="ptuning_v2 prompt reparameterization"
    )
    p.add_argument(
        "--attention-mask", action="store_true", help="pass an all-ones attention mask (as a collator would)"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="reference rate for MFU instead of the measured matmul rate",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU intra-op threads (torch.set_num_threads); 1 avoids spin-wait collapse on a busy CPU",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def plan(args) -> list[Case]:
    cases = []
    for shape in args.shapes:
        for seq in args.seq:
            for method in args.methods:
                if method == "bare":
                    cases.append(Case("bare", shape, seq, 0, "infer"))
                elif method in M.PROMPTED:
                    cases += [Case(method, shape, seq, m, "train") for m in args.prompt]
                else:
                    cases.append(Case(method, shape, seq, 0, "train"))
            if "ptuning_v2" in args.methods and args.infer_prompt > 0:
                cases.append(Case("ptuning_v2", shape, seq, args.infer_prompt, "infer"))
    return cases


def _autocast(args):
    if args.dtype == "bf16":
        return torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _inputs(config, args, seq: int):
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    low = 3 if config.model_type == "roberta" else 1  # keep clear of special ids (RoBERTa pad = 1)
    ids = torch.randint(low, config.vocab_size, (args.batch, seq), generator=gen).to(args.device)
    labels = torch.randint(0, config.num_labels, (args.batch,), generator=gen).to(args.device)
    batch = {"input_ids": ids}
    if args.attention_mask:
        batch["attention_mask"] = torch.ones_like(ids)
    return batch, labels


def run_case(case: Case, args) -> dict:
    """Measure one case; raises on failure (the caller records the error)."""
    config = M.backbone_config(case.shape)
    if case.method in M.PROMPTED and case.prompt <= 0:
        raise ValueError(f"{case.method} needs a prompt length > 0")
    if case.seq > M.max_input_positions(config):
        raise ValueError(
            f"T={case.seq} exceeds the {M.max_input_positions(config)} positions of {case.shape}"
        )
    timing.reset_peak_memory(args.device)
    backbone = M.build_backbone(case.shape, args.device, seed=args.seed)
    batch, labels = _inputs(config, args, case.seq)
    out: dict = {}
    if case.mode == "train":
        model, params = M.build_method(case.method, backbone, case.prompt, args.reparam)
        model.train()
        cuda = timing.is_cuda(args.device)
        optimizer = torch.optim.AdamW(params, lr=args.lr, fused=True if cuda else None)

        def step():
            with _autocast(args):
                loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        t = timing.time_steps(step, args.warmup, args.steps, args.device)
        step_flops = F.train_step_flops(config, case.method, args.batch, case.seq, case.prompt)
        out |= {
            "train_ms": t["median_ms"],
            "train_timing": t,
            "samples_per_s": args.batch / (t["median_ms"] / 1e3),
            "train_peak_gib": timing.peak_memory_gib(args.device),
            "train_flops": step_flops,
            "train_tflops_per_s": step_flops / (t["median_ms"] / 1e3) / 1e12,
            "trainable_params": sum(p.numel() for p in params),
        }
    else:
        model = M.build_inference(case.method, backbone, case.prompt, args.reparam)

        def step():
            with torch.inference_mode(), _autocast(args):
                return model(**batch).logits

        t = timing.time_steps(step, args.warmup, args.steps, args.device)
        out |= {
            "infer_ms": t["median_ms"],
            "infer_timing": t,
            "infer_peak_gib": timing.peak_memory_gib(args.device),
            "infer_flops": F.inference_flops(config, args.batch, case.seq, case.prompt),
        }
    return out


def _cleanup(device) -> None:
    gc.collect()
    if timing.is_cuda(device):
        torch.cuda.empty_cache()


def environment(args, argv: list[str]) -> dict:
    import peft
    import transformers

    cuda = timing.is_cuda(args.device)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["deepprompt-bench", *argv]),
        "device": args.device,
        "gpu": torch.cuda.get_device_name(args.device) if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        if r.get("error"):
            cells = [
                r["method"],
                r["shape"],
                str(r["T"]),
                str(r["m"]),
                f"error: {r['error'][:60]}",
                "",
                "",
                "",
                "",
            ]
        else:
            peak = r.get("train_peak_gib")
            peak_cell = _fmt(peak, ".2f")
            if peak is None and r.get("infer_peak_gib") is not None:
                peak_cell = f"{r['infer_peak_gib']:.2f} (inf)"
            mfu = r.get("mfu")
            cells = [
                r["method"],
                r["shape"],
                str(r["T"]),
                str(r["m"]),
                _fmt(r.get("train_ms"), ".1f"),
                _fmt(r.get("samples_per_s"), ".0f"),
                peak_cell,
                _fmt(None if mfu is None else 100 * mfu, ".1f"),
                _fmt(r.get("infer_ms"), ".1f"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    unknown = [m for m in args.methods if m not in M.METHODS] + [s for s in args.shapes if s not in M.SHAPES]
    if unknown:
        print(f"deepprompt-bench: unknown method/shape {unknown}", file=sys.stderr)
        return 2
    if timing.is_cuda(args.device) and not torch.cuda.is_available():
        print("deepprompt-bench: --device cuda but no GPU is visible (use --device cpu)", file=sys.stderr)
        return 2

    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args, argv)
    env["matmul_tflops"] = {"bf16": timing.matmul_tflops(args.device, "bf16")}
    if args.dtype != "bf16":
        env["matmul_tflops"][args.dtype] = timing.matmul_tflops(args.device, args.dtype)
    reference = args.peak_tflops or env["matmul_tflops"][args.dtype]
    env["mfu_reference_tflops"] = reference
    print(
        f"# {env['gpu'] or env['cpu']}: {args.dtype} matmul {env['matmul_tflops'][args.dtype]:.4g} TFLOP/s",
        file=sys.stderr,
    )

    rows: dict[tuple, dict] = {}
    for case in plan(args):
        row = rows.setdefault(
            case.key,
            {
                "method": case.method,
                "shape": case.shape,
                "T": case.seq,
                "m": case.prompt,
                "batch": args.batch,
                "dtype": args.dtype,
            },
        )
        try:
            result = run_case(case, args)
        except Exception as err:  # noqa: BLE001 - any failure (OOM, peft position overflow ...) is a row
            message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            row["error"] = (row["error"] + "; " if row.get("error") else "") + f"{case.mode}: {message}"
            print(f"# {case.mode} {case.key}: FAILED {message}", file=sys.stderr)
        else:
            row.update(result)
            if "train_flops" in result:
                row["mfu"] = F.mfu(result["train_flops"], result["train_ms"] / 1e3, reference)
            done = (
                f"{result['train_ms']:.2f} ms/step"
                if "train_ms" in result
                else f"{result['infer_ms']:.2f} ms"
            )
            print(f"# {case.mode} {case.key}: {done}", file=sys.stderr)
        finally:
            _cleanup(args.device)

    table = markdown_table(list(rows.values()))
    print(table)
    payload = {
        "environment": env,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": list(rows.values()),
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"# wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
