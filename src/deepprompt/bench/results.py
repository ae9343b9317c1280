"""A run's results: the environment, inference ratios, the markdown table, the targets block, the JSON file."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shlex
import time
from pathlib import Path

import torch

from deepprompt.bench import timing
from deepprompt.bench.models import REFERENCE, Row

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
    "IQR %",
    "pad",
    "sdpa",
)
OURS = ("ptuning_v2+bf16", "ptuning_v2")  # the P-Tuning v2 row the targets read, the first one present
PEER = "prefix"  # what the speed-up targets compare with
# the speed targets: P-Tuning v2's step over prefix tuning's, MFU at T256, inference over the bare model
SPEEDUP_TARGET, MFU_TARGET, INFERENCE_TARGET = 1.5, 0.40, 1.10


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


def iqr_cell(row: dict) -> str:
    """IQR / median of the row's timing in percent (train, else inference); ``!`` marks a noisy case, ``h`` a
    host-bound one."""
    timing_ = row.get("train_timing") or row.get("infer_timing")
    if not timing_ or "iqr_rel" not in timing_:
        return "—"
    marks = ("!" if timing_.get("noisy") else "") + ("h" if timing_.get("host_bound") else "")
    return f"{100 * timing_['iqr_rel']:.0f}{marks}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        head = [r["method"], r["shape"], str(r["T"]), str(r["m"])]
        pad = _fmt(r.get("pad") or None, ".2f")
        if r.get("error") or r.get("skipped"):
            text = f"error: {r['error'][:60]}" if r.get("error") else f"skipped: {r['skipped']}"
            cells = [*head, text, "", "", "", "", "", "", pad, ""]
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
                iqr_cell(r),
                pad,
                _sdpa_cell(r.get("sdpa")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SAME_ATTENTION = (
    "sdpa_calls",
    "dtype",
    "kv_dtype",
    "mask",
    "is_causal",
    "dropout_p",
    "inference_mode",
    "grad",
)


def same_attention(a: dict | None, b: dict | None) -> bool | None:
    """Do two inference rows' SDPA calls agree on everything but the key length? (None: not recorded)"""
    if not a or not b:
        return None
    return all(a.get(k) == b.get(k) for k in _SAME_ATTENTION) and a.get("q_len") == b.get("q_len")


def add_inference_ratios(rows: list[dict]) -> None:
    """``infer_vs_bare``: a prompted inference row over the bare row (``linear_probe``, with the same weight dtype)
    of the same shape, T and padding; ``infer_like_for_like``: whether both made the same SDPA calls (dtype, mask,
    causal flag, inference mode)."""
    bare = {
        (r["method"], r["shape"], r["T"], r.get("pad", 0.0)): r
        for r in rows
        if Row.parse(r["method"]).inference_only and r.get("infer_ms")
    }
    for r in rows:
        row = Row.parse(r["method"])
        if row.infers and r.get("infer_ms"):
            reference = f"{REFERENCE}+bf16" if row.bf16 else REFERENCE
            base = bare.get((reference, r["shape"], r["T"], r.get("pad", 0.0)))
            if base:
                r["infer_vs_bare"] = r["infer_ms"] / base["infer_ms"]
                r["infer_bare_method"] = reference
                r["infer_like_for_like"] = same_attention(r.get("attention"), base.get("attention"))


def _find(rows, method, shape, seq, m=None, pad=0.0, key="train_ms"):
    for r in rows:
        same = (r["method"], r["shape"], r["T"], r.get("pad", 0.0)) == (method, shape, seq, pad)
        if same and (m is None or r["m"] == m) and r.get(key) is not None:
            return r
    return None


def speed_targets(rows: list[dict], shape: str = "roberta-large") -> dict:
    """The speed targets read off the rows (None where a row is missing): value, target, met."""
    out: dict = {}
    best = [m for m in OURS if _find(rows, m, shape, 128)]
    ours = best[0] if best else OURS[-1]
    out["ours"] = ours
    for seq, m in ((128, 16), (256, 64), (128, 64), (256, 16), (128, 128), (256, 128)):
        a, b = _find(rows, ours, shape, seq, m), _find(rows, PEER, shape, seq, m)
        if a and b:
            speedup = b["train_ms"] / a["train_ms"]
            entry = {"value": speedup, "target": f">= {SPEEDUP_TARGET}", "met": speedup >= SPEEDUP_TARGET}
            if a.get("train_peak_gib") is not None and b.get("train_peak_gib") is not None:
                entry["peak_gib"] = [a["train_peak_gib"], b["train_peak_gib"]]
                entry["memory_met"] = a["train_peak_gib"] <= b["train_peak_gib"]
            out[f"speedup_vs_{PEER}_T{seq}_m{m}"] = entry
    mfus = [
        r["mfu"]
        for r in rows
        if r["method"] == ours and r["shape"] == shape and r["T"] == 256 and r.get("mfu") and not r.get("pad")
    ]
    if mfus:
        out["mfu_T256_best"] = {
            "value": max(mfus),
            "target": f">= {MFU_TARGET:.2f}",
            "met": max(mfus) >= MFU_TARGET,
        }
    infer = _find(rows, ours, shape, 128, key="infer_vs_bare")
    if infer:
        ratio = infer["infer_vs_bare"]
        out["inference_vs_bare_T128"] = {
            "value": ratio,
            "m": infer["m"],
            "like_for_like": infer.get("infer_like_for_like"),
            "target": f"<= {INFERENCE_TARGET:.2f}",
            "met": ratio <= INFERENCE_TARGET,
        }
    return out


def switch_speedups(rows: list[dict], shape: str) -> dict:
    """Every P-Tuning v2 train row, and every prefix row with a variant, against ``prefix`` and ``ptuning_v2+bf16``
    at the same (T, m, pad): ``{row: {"T128_m16": {"vs_prefix": x, "vs_ptuning_v2+bf16": y, "mfu": z, "build_s":
    s}}}`` (the ``levers`` block of the targets)."""
    out: dict = {}
    for r in rows:
        row = Row.parse(r["method"])
        switch = row.method == "ptuning_v2" or (row.method == PEER and row.variants)
        if r["shape"] != shape or not switch or r.get("train_ms") is None:
            continue
        pad = r.get("pad", 0.0)
        entry = {"train_ms": r["train_ms"], "mfu": r.get("mfu"), "build_s": r.get("build_s")}
        for ref in (PEER, OURS[0]):
            other = _find(rows, ref, shape, r["T"], r["m"], pad)
            entry[f"vs_{ref}"] = other["train_ms"] / r["train_ms"] if other else None
        label = f"T{r['T']}_m{r['m']}" + (f"_pad{pad:g}" if pad else "")
        out.setdefault(r["method"], {})[label] = entry
    return out


def write_payload(args, env: dict, rows: list[dict], started: float, final: bool) -> dict:
    """Ratios, table and targets of the rows so far, written to ``--out`` (after every group, and at the end)."""
    add_inference_ratios(rows)
    table = markdown_table(rows)
    targets = {shape: speed_targets(rows, shape) for shape in dict.fromkeys(r["shape"] for r in rows)}
    for shape, block in targets.items():
        levers = switch_speedups(rows, shape)
        if levers:
            block["levers"] = levers
    env["wall_s"] = time.perf_counter() - started
    payload = {
        "environment": env,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "complete": final,
        "rows": rows,
        "targets": targets,
        "noisy": [
            [r["method"], r["shape"], r["T"], r["m"], r.get("pad", 0.0)]
            for r in rows
            if (r.get("train_timing") or r.get("infer_timing") or {}).get("noisy")
        ],
        "table": table,
        "profiles": {
            f"{r['method']}:{r['shape']}:{r['T']}:{r['m']}" + (f":{r['pad']:g}" if r.get("pad") else ""): r[
                "profile"
            ]
            for r in rows
            if r.get("profile")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    return payload
