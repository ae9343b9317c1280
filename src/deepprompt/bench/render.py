"""Markdown from a `deepprompt-bench` JSON (for docs/performance.md; no number typed by hand).

    python -m deepprompt.bench.render results/methods_step.json

Prints the environment line, one row per case (median, and the spread the JSON has: p25-p75 where recorded,
else min-max over the timed steps) and the ``targets`` block; for the epoch mode's JSON, its environment line and
its own table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _timing(row: dict) -> dict | None:
    return row.get("train_timing") or row.get("infer_timing")


def spread(t: dict) -> str:
    """``p25-p75 (IQR/median %)``, or ``min-max (range/median %)`` for a JSON without quartiles."""
    if "p25_ms" in t:
        return f"{t['p25_ms']:.1f}-{t['p75_ms']:.1f} ({100 * t['iqr_rel']:.0f} % IQR)"
    return f"{t['min_ms']:.1f}-{t['max_ms']:.1f} ({100 * (t['max_ms'] - t['min_ms']) / t['median_ms']:.0f} % range)"


def render_epoch(payload: dict) -> str:
    """An epoch-mode JSON (``deepprompt-bench epoch``): its environment line and the table it wrote itself."""
    env = payload["environment"]
    state = "" if payload.get("complete") else " (incomplete: the run stopped before its last variant)"
    head = f"{env.get('gpu') or 'CPU'}, {env['date']}, torch {env['torch']}; `{env['command']}`{state}."
    return "\n".join([head, "", payload["table"]])


def render(payload: dict) -> str:
    if any("epoch_s" in r for r in payload.get("rows", [])):  # the epoch mode writes its own table
        return render_epoch(payload)
    env = payload["environment"]
    args = payload.get("args", {})
    proto = env.get("protocol") or {
        "warmup_steps_per_case": args.get("warmup"),
        "timed_steps_per_case": args.get("steps"),
        "rounds": 1,
    }
    lines = [
        f"{env.get('gpu') or env.get('cpu')}, {env['date']}, torch {env['torch']}, transformers "
        f"{env['transformers']}, peft {env['peft']}; bf16 matmul {env['matmul_tflops']['bf16']:.0f} TFLOP/s; "
        f"`{env['command']}`; {proto['warmup_steps_per_case']} warm-up + {proto['timed_steps_per_case']} timed "
        f"steps per case in {proto.get('rounds', 1)} round(s); wall {env['wall_s']:.0f} s.",
        "",
        "| method | shape | T | m | pad | train ms (median) | samples/s | peak GiB | MFU % | inference ms (median) "
        "| x bare | spread of the timed steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        t = _timing(r)
        mfu = r.get("mfu")
        peak = r.get("train_peak_gib", r.get("infer_peak_gib"))
        cells = [
            r["method"],
            r["shape"],
            str(r["T"]),
            str(r["m"]),
            _f(r.get("pad") or None, ".2f"),
            _f(r.get("train_ms"), ".1f"),
            _f(r.get("samples_per_s"), ".0f"),
            _f(peak, ".2f"),
            _f(None if mfu is None else 100 * mfu, ".1f"),
            _f(r.get("infer_ms"), ".1f"),
            _f(r.get("infer_vs_bare"), ".3f"),
            spread(t) if t else (r.get("error") or r.get("skipped") or "—")[:60],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| shape | target | value | wanted | met |", "|---|---|---|---|---|"]
    for shape, targets in payload.get("targets", {}).items():
        for name, v in targets.items():
            if not isinstance(v, dict) or "value" not in v:  # "levers": its own table below
                continue
            extra = ""
            if "peak_gib" in v:
                extra = f" (peak {v['peak_gib'][0]:.2f} vs {v['peak_gib'][1]:.2f} GiB, memory met: {v['memory_met']})"
            lines.append(f"| {shape} | {name} | {v['value']:.3f}{extra} | {v['target']} | {v['met']} |")
    lines += _lever_table(payload)
    return "\n".join(lines)


def _lever_table(payload: dict) -> list[str]:
    """Every speed switch's row against the rows the run compares it with (its ``vs_<row>`` ratios) at the same T
    and m."""
    rows, refs = [], []
    for targets in payload.get("targets", {}).values():
        for cases in (targets.get("levers") or {}).values():
            for v in cases.values():
                refs += [k for k in v if k.startswith("vs_") and k not in refs]
    for shape, targets in payload.get("targets", {}).items():
        for method, cases in (targets.get("levers") or {}).items():
            for label, v in cases.items():
                mfu = v.get("mfu")
                cells = [
                    shape,
                    method,
                    label,
                    _f(v.get("train_ms"), ".1f"),
                    *(_f(v.get(ref), ".2f") for ref in refs),
                    _f(None if mfu is None else 100 * mfu, ".1f"),
                    _f(v.get("build_s"), ".0f"),
                ]
                rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    columns = ["shape", "method", "case", "train ms", *(f"x {ref.removeprefix('vs_')}" for ref in refs)]
    columns += ["MFU %", "build s"]
    return ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m deepprompt.bench.render RESULTS.json", file=sys.stderr)
        return 2
    print(render(json.loads(Path(argv[0]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
