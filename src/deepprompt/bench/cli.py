"""``deepprompt-bench``: time training steps and inference of P-Tuning v2 against prefix tuning, LoRA, fine-tuning.

Rows are training methods with variants (``ptuning_v2+bf16``, ``prefix+reduce_overhead``; `deepprompt.bench.models`),
built by the registry that training uses. Presets (``--preset``, `presets.yaml`) are named sets of sub-grids.

Timing protocol (docs/performance.md): the GPU is first kept busy for ``--gpu-warmup-s`` (clocks up); then the
cases run in groups (one group = one sub-grid's cases of one shape and T). Each case of a group is built on its
own fresh random-weight backbone (no download) and runs ``--warmup`` untimed steps (its peak memory is read then,
net of the models already resident); then the group's cases are timed in ``--rounds`` interleaved rounds
(A B C, C B A, ...), ``--steps`` timed steps per case in all, so drift hits every case of the group alike. Per
case the JSON holds every step time, the median (the headline), quartiles, p10/p90 and IQR/median (``noisy``
above 10 %, marked ``!`` in the table's IQR column).

A training step is forward + loss + backward + AdamW step (fused on CUDA) + zero_grad on random token ids (no
padding, so no attention mask unless ``--attention-mask``), queued back to back and timed with CUDA events;
``--dtype bf16`` runs under ``torch.autocast(bfloat16)`` with fp32 weights (bf16 with the ``+bf16`` variant).
Inference is one forward under ``torch.inference_mode`` (and the same autocast) for ``linear_probe`` (the bare
backbone and head) and for the ``ptuning_v2`` rows with ``--infer-prompt`` tokens (MLP folded), each step started
on an idle GPU (latency), with the same step function for every inference row; the row records which SDPA calls
the forward makes (``attention``: dtype, mask, causal flag, key length) and whether the host could not keep up
with the GPU (``host_bound``).

Rows without a prompt (``lora``, ``finetune``, ``linear_probe``) are measured once per (shape, T) and recorded with
``m = 0``. A case that fails (prefix with T + m beyond the position table, out of memory ...) becomes an error row
and the run goes on. The JSON is rewritten after every group, so a run killed by a timeout keeps what it measured.

``--pad F`` gives the batch rows lengths from T down to T(1 - 2F) (F = mean padded fraction, with an attention
mask) to show the masks' cost. ``--profile`` profiles chosen cases after their group is timed
(`deepprompt.bench.profile`). ``deepprompt-bench epoch ...`` times one real training epoch (`deepprompt.bench.epoch`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from deepprompt.bench import flops as F
from deepprompt.bench import profile as P
from deepprompt.bench import timing
from deepprompt.bench.cases import run_group
from deepprompt.bench.models import METHODS, VARIANTS, Row
from deepprompt.bench.plan import check, grids, plan, plan_groups, presets
from deepprompt.bench.probes import explain_compiled
from deepprompt.bench.results import environment, write_payload
from deepprompt.bench.shapes import SHAPES

DEFAULT_ROWS = (
    "ptuning_v2",
    "ptuning_v2+naive",
    "ptuning_v2+bf16",
    "prefix",
    "lora",
    "finetune",
    "linear_probe",
)


def _csv(kind):
    def parse(text: str):
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepprompt-bench",
        description="Benchmark P-Tuning v2 (deepprompt) against prefix tuning, LoRA and full fine-tuning.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--shapes",
        type=_csv(str),
        default=["bert-base", "roberta-large"],
        help=f"backbone shapes, comma-separated ({', '.join(SHAPES)})",
    )
    p.add_argument("--batch", type=int, default=32, help="sequences per step")
    p.add_argument("--seq", type=_csv(int), default=[128, 256], help="sequence lengths T")
    p.add_argument(
        "--prompt", type=_csv(int), default=[16, 64, 128], help="prompt lengths m (ptuning_v2, prefix rows)"
    )
    p.add_argument(
        "--methods",
        type=_csv(str),
        default=list(DEFAULT_ROWS),
        help=f"rows, METHOD[+VARIANT...]: methods {', '.join(METHODS)}; variants {', '.join(VARIANTS)}",
    )
    p.add_argument(
        "--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 = autocast over fp32 weights"
    )
    p.add_argument("--steps", type=int, default=50, help="timed steps per case (over all rounds)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds: a group's cases take turns, --steps/--rounds timed steps per turn",
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case, when it is built")
    p.add_argument(
        "--gpu-warmup-s",
        type=float,
        default=3.0,
        help="seconds of bf16 matrix products before the first case (GPU clocks up; 0 = none)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=32,
        help="most cases resident and interleaved at once (a larger (shape, T, pad) group is split)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    p.add_argument(
        "--preset",
        choices=sorted(presets()),
        default=None,
        help="run a preset of src/deepprompt/bench/presets.yaml (shapes/seq/prompt/methods come from it; an "
        "option given explicitly wins over the preset's default)",
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
        help="start no new group of cases after this many seconds (the rest become 'skipped' rows); 0 = no limit",
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the SDPA kernel probe (CUDA: can the case's forward run on flash / efficient attention?)",
    )
    p.add_argument("--out", type=Path, default=Path("results.json"), help="JSON results file")
    p.add_argument(
        "--infer-prompt",
        type=int,
        default=100,
        help="prompt tokens of the ptuning_v2 rows' inference (0: skip)",
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
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile backend of the +compile/+reduce_overhead rows (aot_eager: CPU tests, no code generation)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="before the first group: torch._dynamo.explain of each compiled row's backbone on the tiny shape "
        "of the same family (graph breaks, their reasons) into the JSON's 'explain' block",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after a group is timed, profile its --profile-cases (torch.profiler, CPU + CUDA): GPU busy vs step "
        "time, kernels and launches per step, time by kernel category, top kernels/ops, casts",
    )
    p.add_argument(
        "--profile-cases",
        type=_csv(str),
        default=[],
        help="ROW:SHAPE:T:M[:PAD] cases to profile (train rows of this run); default: every train case",
    )
    p.add_argument("--profile-steps", type=int, default=5, help="steps per profiled pass (and per host pass)")
    p.add_argument(
        "--profile-trace",
        type=Path,
        default=None,
        help="folder for a chrome trace per profiled case (<case>.json.gz)",
    )
    return p


def apply_preset(args, argv: list[str]) -> None:
    """The preset's defaults onto ``args``, except the options given explicitly in ``argv``."""
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    for name, value in presets()[args.preset]["defaults"].items():
        if f"--{name.replace('_', '-')}" not in given:
            setattr(args, name, value)


def _seconds_left(start: float, budget: float | None) -> bool:
    return not budget or time.perf_counter() - start < budget


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "epoch":  # deepprompt-bench epoch ...: one real training epoch
        from deepprompt.bench import epoch

        return epoch.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.preset:
        apply_preset(args, argv)
    try:
        check(grids(args), "deepprompt-bench")
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if timing.is_cuda(args.device) and not torch.cuda.is_available():
        print("deepprompt-bench: --device cuda but no GPU is visible (use --device cpu)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment(args, argv)
    env["gpu_warmup_s"] = timing.gpu_warmup(args.device, args.gpu_warmup_s)
    env["matmul_tflops"] = {"bf16": timing.matmul_tflops(args.device, "bf16")}
    if args.dtype != "bf16":
        env["matmul_tflops"][args.dtype] = timing.matmul_tflops(args.device, args.dtype)
    reference = args.peak_tflops or env["matmul_tflops"][args.dtype]
    env["mfu_reference_tflops"] = reference
    env["protocol"] = {
        "warmup_steps_per_case": args.warmup,
        "timed_steps_per_case": args.steps,
        "rounds": args.rounds,
        "round_order": "alternating (A B C, C B A, ...)",
        "grouping": "(shape, T, pad)",
        "train": "CUDA events per step, steps queued back to back",
        "infer": "CUDA events per step, GPU idle at each step's start (synchronize before and after)",
        "gc": "disabled while timing",
        "noisy_iqr_rel": timing.NOISY_IQR,
    }
    print(
        f"# {env['gpu'] or env['cpu']}: {args.dtype} matmul {env['matmul_tflops'][args.dtype]:.4g} TFLOP/s",
        file=sys.stderr,
    )

    cases = plan(args)
    if args.explain and any(Row.parse(c.method).compile_mode for c in cases):
        explain_started = time.perf_counter()
        env["explain"] = explain_compiled(cases, args)
        env["explain_s"] = time.perf_counter() - explain_started
        for key, value in env["explain"].items():
            print(f"# explain {key}: {value}", file=sys.stderr)
    rows: dict[tuple, dict] = {
        case.key: {
            "method": case.method,
            "shape": case.shape,
            "T": case.seq,
            "m": case.prompt,
            "pad": case.pad,
            "batch": args.batch,
            "dtype": args.dtype,
        }
        for case in cases
    }
    for group in plan_groups(cases, args.group_size):
        if not _seconds_left(started, args.budget_s):
            for case in group:
                rows[case.key]["skipped"] = f"budget {args.budget_s:g} s"
            continue
        for case, result in run_group(group, args).items():
            row = rows[case.key]
            if isinstance(result, Exception):
                first = str(result).splitlines()[0] if str(result) else ""
                message = f"{type(result).__name__}: {first}"[:300]
                row["error"] = (row["error"] + "; " if row.get("error") else "") + f"{case.mode}: {message}"
                print(f"# {case.mode} {case.key}: FAILED {message}", file=sys.stderr)
                continue
            row.update(result)
            if "train_flops" in result:
                row["mfu"] = F.mfu(result["train_flops"], result["train_ms"] / 1e3, reference)
            t = result.get("train_timing") or result["infer_timing"]
            flags = " NOISY" if t["noisy"] else ""
            flags += " host-bound" if t.get("host_bound") else ""
            print(
                f"# {case.mode} {case.key}: median {t['median_ms']:.2f} ms, IQR {t['p25_ms']:.2f}-{t['p75_ms']:.2f}"
                f" ({100 * t['iqr_rel']:.0f} %), p10-p90 {t['p10_ms']:.2f}-{t['p90_ms']:.2f}{flags}",
                file=sys.stderr,
            )
        write_payload(args, env, list(rows.values()), started, final=False)  # a timeout still leaves results

    payload = write_payload(args, env, list(rows.values()), started, final=True)
    report(payload)
    print(f"# wrote {args.out} ({env['wall_s']:.0f} s)", file=sys.stderr)
    return 0


def report(payload: dict) -> None:
    """The profiles and the table on stdout; each speed switch's ratios and each target as a ``#`` line."""
    for name, prof in payload["profiles"].items():
        print(P.format_profile(name, prof))
    print(payload["table"])
    for shape, values in payload["targets"].items():
        for method, cells in values.get("levers", {}).items():
            for label, e in cells.items():
                ratios = ", ".join(
                    f"{k} {v:.3f}x" for k, v in e.items() if k.startswith("vs_") and v is not None
                )
                build = f", build {e['build_s']:.1f} s" if e.get("build_s") is not None else ""
                print(f"# lever {shape} {method} {label}: {e['train_ms']:.2f} ms, {ratios}{build}")
        for name, value in values.items():
            if isinstance(value, dict) and "value" in value:
                print(
                    f"# target {shape} {name}: {value['value']:.3f} ({value['target']}, met={value['met']})"
                )


if __name__ == "__main__":
    raise SystemExit(main())
