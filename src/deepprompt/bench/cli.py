"""``deepprompt-bench``: time training steps and inference of deep prompts against peft prefix, LoRA, full FT.

Each case builds a fresh random-weight backbone (no download), runs ``--warmup`` untimed and ``--steps``
timed steps and records the median. A training step is forward + loss + backward + AdamW step (fused on
CUDA) + zero_grad on random token ids (no padding, so no attention mask unless ``--attention-mask``);
``--dtype bf16`` runs under ``torch.autocast(bfloat16)`` with fp32 weights. Inference is a forward under
``torch.inference_mode`` for ``bare`` and for ``ptuning_v2`` with ``--infer-prompt`` tokens (MLP folded).

Methods without a prompt (``lora``, ``full_ft``, ``bare``) are measured once per (shape, T) and recorded with
``m = 0``. A case that fails (peft prefix with T + m beyond the position table, out of memory ...) becomes an
error row and the run goes on.

``--preset gpu-issue5`` runs issue 5's targets as several sub-grids in one process (one table, one JSON, with a
``targets`` block: speed-up over peft prefix, MFU, inference overhead, memory); ``--preset cpu-tiny`` is the
same machinery on the tiny shape (the test suite runs it). ``--pad F`` gives the batch rows lengths from T down
to T(1 - 2F) (F = mean padded fraction, with an attention mask) to show the masks' cost. ``deepprompt-bench
epoch ...`` times one real training epoch (`deepprompt.bench.epoch`).
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepprompt.bench import flops as F
from deepprompt.bench import methods as M
from deepprompt.bench import timing

COLUMNS = (
    "method",
    "shape",
    "T",
    "m",
    "train ms/step",
    "samples/s",
    "peak GiB",
    "MFU %",
    "inference ms",
    "x bare",
    "pad",
    "sdpa",
)


@dataclass(frozen=True)
class Case:
    method: str
    shape: str
    seq: int
    prompt: int
    mode: str  # "train" or "infer"
    pad: float = 0.0

    @property
    def key(self) -> tuple[str, str, int, int, float]:
        return (self.method, self.shape, self.seq, self.prompt, self.pad)


@dataclass
class Grid:
    """One sub-grid: every method x shape x T (x m for prompted methods), one padding fraction."""

    shapes: list[str]
    seq: list[int]
    methods: list[str]
    prompt: list[int] = field(default_factory=lambda: [16, 64, 128])
    infer_prompt: int = 0  # prompt tokens of the ptuning_v2 variants' inference rows (0: none)
    pad: float = 0.0


_RL, _BB = "roberta-large", "bert-base"
_INFER = ["bare", "bare_bf16"]
PRESETS: dict[str, dict] = {
    # issue 5's targets on one GPU, most important first (fits ~150 s on an H100 with --steps 20 --warmup 3)
    "gpu-issue5": {
        "defaults": {"batch": 32, "dtype": "bf16", "steps": 20, "warmup": 3, "budget_s": 240.0},
        "grids": [
            Grid([_RL], [128, 256], ["ptuning_v2_bf16", "peft_prefix"], [16, 64, 128]),
            Grid([_RL], [128, 256], ["ptuning_v2_naive", "ptuning_v2"], [16, 64]),
            Grid([_RL], [128, 256], ["lora", "full_ft"]),
            Grid([_RL], [128, 256], _INFER, infer_prompt=100),
            Grid([_RL], [128, 256], ["ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16"], [], 100),
            Grid(
                [_RL],
                [256],
                ["ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16", "peft_prefix"],
                [64],
                pad=0.25,
            ),
            Grid([_RL], [256], ["ptuning_v2_bf16_top"], [64]),
            Grid([_BB], [128, 256], ["ptuning_v2_bf16", "peft_prefix"], [16, 64, 128]),
            Grid([_BB], [128, 256], ["lora", "full_ft", *_INFER]),
            Grid([_BB], [128], ["ptuning_v2_bf16"], [], 100),
        ],
    },
    # the same machinery on the tiny shape, CPU, seconds (the test suite runs it)
    "cpu-tiny": {
        "defaults": {"batch": 2, "dtype": "bf16", "steps": 2, "warmup": 1, "device": "cpu", "threads": 1},
        "grids": [
            Grid(["tiny"], [8, 16], ["ptuning_v2_bf16", "peft_prefix"], [4]),
            Grid(["tiny"], [8], ["ptuning_v2_naive", "ptuning_v2", "lora", "full_ft"], [4]),
            Grid(["tiny"], [8], _INFER, infer_prompt=6),
            Grid(["tiny"], [8], ["ptuning_v2_naive", "ptuning_v2", "ptuning_v2_bf16"], [], 6),
            Grid(["tiny"], [16], ["ptuning_v2_naive", "ptuning_v2"], [4], pad=0.25),
            Grid(["tiny"], [16], ["ptuning_v2_bf16_top"], [4]),
        ],
    },
}


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
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="run a preset list of sub-grids (shapes/seq/prompt/methods come from it; explicit --batch, "
        "--steps, --warmup, --dtype, --device, --budget-s still apply)",
    )
    p.add_argument(
        "--pad",
        type=float,
        default=0.0,
        help="mean padded fraction per batch (rows from T down to T(1-2F), with an attention mask)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no new case after this many seconds (the rest become 'skipped' rows); 0 = no limit",
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the SDPA kernel probe (CUDA: can the case's forward run on flash / efficient attention?)",
    )
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


def grids(args) -> list[Grid]:
    if args.preset:
        return PRESETS[args.preset]["grids"]
    return [Grid(args.shapes, args.seq, args.methods, args.prompt, args.infer_prompt, args.pad)]


def plan_grid(grid: Grid, dtype: str) -> list[Case]:
    """The cases of one sub-grid, in order; bf16-weight variants only when ``dtype`` is bf16."""
    cases = []
    methods = [m for m in grid.methods if dtype == "bf16" or m not in M.BF16_ONLY]
    for shape in grid.shapes:
        for seq in grid.seq:
            for method in methods:
                if method in M.INFERENCE_ONLY:
                    cases.append(Case(method, shape, seq, 0, "infer", grid.pad))
                elif method in M.PROMPTED:
                    cases += [Case(method, shape, seq, m, "train", grid.pad) for m in grid.prompt]
                else:
                    cases.append(Case(method, shape, seq, 0, "train", grid.pad))
            if grid.infer_prompt > 0:
                cases += [
                    Case(method, shape, seq, grid.infer_prompt, "infer", grid.pad)
                    for method in methods
                    if method in M.PTUNING_VARIANTS
                ]
    return cases


def plan(args) -> list[Case]:
    cases, seen = [], set()
    for grid in grids(args):
        for case in plan_grid(grid, args.dtype):
            if (case.key, case.mode) not in seen:
                seen.add((case.key, case.mode))
                cases.append(case)
    return cases


def _autocast(args):
    if args.dtype == "bf16":
        return torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded_lengths(batch: int, seq: int, pad: float) -> list[int]:
    """Row lengths from ``seq`` down to ``seq (1 - 2 pad)``, evenly spaced: ``pad`` is the mean padded fraction."""
    if not 0.0 <= pad < 0.5:
        raise ValueError(f"--pad must be in [0, 0.5), got {pad}")
    shortest = max(1, round(seq * (1 - 2 * pad)))
    if batch == 1:
        return [seq]
    return [round(seq - (seq - shortest) * i / (batch - 1)) for i in range(batch)]


def _inputs(config, args, seq: int, pad: float = 0.0):
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    low = 3 if config.model_type == "roberta" else 1  # keep clear of special ids (RoBERTa pad = 1)
    ids = torch.randint(low, config.vocab_size, (args.batch, seq), generator=gen)
    labels = torch.randint(0, config.num_labels, (args.batch,), generator=gen).to(args.device)
    batch = {}
    if pad > 0:
        lengths = torch.tensor(padded_lengths(args.batch, seq, pad))
        mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
        ids = ids.masked_fill(mask == 0, config.pad_token_id or 0)
        batch["attention_mask"] = mask.to(args.device)
    elif args.attention_mask:
        batch["attention_mask"] = torch.ones_like(ids).to(args.device)
    batch["input_ids"] = ids.to(args.device)
    return batch, labels


def sdpa_probe(model, batch, args) -> dict[str, bool]:
    """CUDA only: can this model's forward run with SDPA restricted to flash / to memory-efficient attention?

    One forward per backend under ``sdpa_kernel``; a backend that cannot take the call (a materialised mask
    for flash, say) raises "No available kernel". Says which fused kernels the default dispatch can pick.
    """
    import warnings

    from torch.nn.attention import SDPBackend, sdpa_kernel

    result = {}
    for name, backend in (
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):
        try:
            with warnings.catch_warnings(), torch.no_grad(), sdpa_kernel(backend), _autocast(args):
                warnings.simplefilter("ignore")
                model(**batch)
            result[name] = True
        except RuntimeError:
            result[name] = False
    return result


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
    batch, labels = _inputs(config, args, case.seq, case.pad)
    out: dict = {}
    probe = timing.is_cuda(args.device) and not args.no_probe
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
        layers = M.prompted_layers(case.method, config) if case.method in M.PTUNING_VARIANTS else None
        step_flops = F.train_step_flops(
            config, case.method, args.batch, case.seq, case.prompt, layers, backward_layers=layers
        )
        out |= {
            "train_ms": t["median_ms"],
            "train_timing": t,
            "samples_per_s": args.batch / (t["median_ms"] / 1e3),
            "train_peak_gib": timing.peak_memory_gib(args.device),
            "train_flops": step_flops,
            "train_tflops_per_s": step_flops / (t["median_ms"] / 1e3) / 1e12,
            "trainable_params": sum(p.numel() for p in params),
        }
        if probe:
            out["sdpa"] = sdpa_probe(model, batch, args)
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
        if probe:
            out["sdpa"] = sdpa_probe(model, batch, args)
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


def _sdpa_cell(probe: dict | None) -> str:
    if not probe:
        return "—"
    return "+".join(name for name, ok in probe.items() if ok) or "math"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        head = [r["method"], r["shape"], str(r["T"]), str(r["m"])]
        pad = _fmt(r.get("pad") or None, ".2f")
        if r.get("error") or r.get("skipped"):
            text = f"error: {r['error'][:60]}" if r.get("error") else f"skipped: {r['skipped']}"
            cells = [*head, text, "", "", "", "", "", pad, ""]
        else:
            peak = r.get("train_peak_gib")
            peak_cell = _fmt(peak, ".2f")
            if peak is None and r.get("infer_peak_gib") is not None:
                peak_cell = f"{r['infer_peak_gib']:.2f} (inf)"
            mfu = r.get("mfu")
            cells = [
                *head,
                _fmt(r.get("train_ms"), ".1f"),
                _fmt(r.get("samples_per_s"), ".0f"),
                peak_cell,
                _fmt(None if mfu is None else 100 * mfu, ".1f"),
                _fmt(r.get("infer_ms"), ".1f"),
                _fmt(r.get("infer_vs_bare"), ".3f"),
                pad,
                _sdpa_cell(r.get("sdpa")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_inference_ratios(rows: list[dict]) -> None:
    """``infer_vs_bare``: a prompted inference row over the bare row with the same weights, shape, T, padding."""
    bare = {
        (r["method"], r["shape"], r["T"], r.get("pad", 0.0)): r["infer_ms"]
        for r in rows
        if r["method"] in M.INFERENCE_ONLY and r.get("infer_ms")
    }
    for r in rows:
        if r["method"] in M.PTUNING_VARIANTS and r.get("infer_ms"):
            reference = "bare_bf16" if r["method"] in M.BF16_ONLY else "bare"
            base = bare.get((reference, r["shape"], r["T"], r.get("pad", 0.0)))
            if base:
                r["infer_vs_bare"] = r["infer_ms"] / base
                r["infer_bare_method"] = reference


def _find(rows, method, shape, seq, m=None, pad=0.0, key="train_ms"):
    for r in rows:
        same = (r["method"], r["shape"], r["T"], r.get("pad", 0.0)) == (method, shape, seq, pad)
        if same and (m is None or r["m"] == m) and r.get(key) is not None:
            return r
    return None


def issue5_targets(rows: list[dict], shape: str = "roberta-large") -> dict:
    """Issue 5's targets, read off the rows (None where a row is missing): value, target, met."""
    out: dict = {}
    best = [m for m in ("ptuning_v2_bf16", "ptuning_v2") if _find(rows, m, shape, 128)]
    ours = best[0] if best else "ptuning_v2"
    out["ours"] = ours
    for seq, m in ((128, 16), (256, 64), (128, 64), (256, 16), (128, 128), (256, 128)):
        a, b = _find(rows, ours, shape, seq, m), _find(rows, "peft_prefix", shape, seq, m)
        if a and b:
            speedup = b["train_ms"] / a["train_ms"]
            entry = {"value": speedup, "target": ">= 1.5", "met": speedup >= 1.5}
            if a.get("train_peak_gib") is not None and b.get("train_peak_gib") is not None:
                entry["peak_gib"] = [a["train_peak_gib"], b["train_peak_gib"]]
                entry["memory_met"] = a["train_peak_gib"] <= b["train_peak_gib"]
            out[f"speedup_vs_peft_prefix_T{seq}_m{m}"] = entry
    mfus = [
        r["mfu"]
        for r in rows
        if r["method"] == ours and r["shape"] == shape and r["T"] == 256 and r.get("mfu") and not r.get("pad")
    ]
    if mfus:
        out["mfu_T256_best"] = {"value": max(mfus), "target": ">= 0.40", "met": max(mfus) >= 0.40}
    infer = _find(rows, ours, shape, 128, key="infer_vs_bare")
    if infer:
        ratio = infer["infer_vs_bare"]
        out["inference_vs_bare_T128"] = {
            "value": ratio,
            "m": infer["m"],
            "target": "<= 1.10",
            "met": ratio <= 1.10,
        }
    return out


def _case_seconds_left(start: float, budget: float | None) -> bool:
    return not budget or time.perf_counter() - start < budget


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "epoch":  # deepprompt-bench epoch ...: one real training epoch
        from deepprompt.bench import epoch

        return epoch.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:  # preset defaults, unless the option was given explicitly
        given = {a.split("=")[0] for a in argv if a.startswith("--")}
        for name, value in PRESETS[args.preset]["defaults"].items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    names = [m for g in grids(args) for m in g.methods]
    shapes = [s for g in grids(args) for s in g.shapes]
    unknown = [m for m in names if m not in M.METHODS] + [s for s in shapes if s not in M.SHAPES]
    if unknown:
        print(f"deepprompt-bench: unknown method/shape {unknown}", file=sys.stderr)
        return 2
    if timing.is_cuda(args.device) and not torch.cuda.is_available():
        print("deepprompt-bench: --device cuda but no GPU is visible (use --device cpu)", file=sys.stderr)
        return 2

    started = time.perf_counter()
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
                "pad": case.pad,
                "batch": args.batch,
                "dtype": args.dtype,
            },
        )
        if not _case_seconds_left(started, args.budget_s):
            row["skipped"] = f"budget {args.budget_s:g} s"
            continue
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

    table_rows = list(rows.values())
    add_inference_ratios(table_rows)
    table = markdown_table(table_rows)
    print(table)
    targets = {
        shape: issue5_targets(table_rows, shape) for shape in dict.fromkeys(r["shape"] for r in table_rows)
    }
    for shape, values in targets.items():
        for name, value in values.items():
            if isinstance(value, dict):
                print(
                    f"# target {shape} {name}: {value['value']:.3f} ({value['target']}, met={value['met']})"
                )
    env["wall_s"] = time.perf_counter() - started
    payload = {
        "environment": env,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rows": table_rows,
        "targets": targets,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"# wrote {args.out} ({env['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
