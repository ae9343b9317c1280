"""The tables of this study's README, from its JSON files (run from the repository root):

    python experiments/serve_h200/make_tables.py

prefix_copy_{large,minilm}.json: experiments/lab/prefix_copy_gpu.py (part 1: each layout of the prefix copy alone;
part 2: deepprompt.serve.latency once per layout, bare and prompted side by side); serve_load.json:
deepprompt.serve.loadtest (serve_gpu.sh, MiniLM).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
LAYOUTS = ["heads_first", "as_projected", "as_projected_strided", "two_copies"]


def copy_alone(result: dict) -> list[str]:
    rows = [r for r in result["copy_us_per_layer"] if not r["per_row_prefix"]]
    lines = [
        "| batch | T | " + " | ".join(LAYOUTS) + " |",
        "|---:|---:|" + "---:|" * len(LAYOUTS),
    ]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['T']} | " + " | ".join(f"{r[k]:.1f}" for k in LAYOUTS) + " |")
    return lines


def kernel_ms(rows: list[dict], batch: int, length: int, prompts: bool, part: str | None = None) -> float:
    (row,) = [
        r
        for r in rows
        if (r["batch"], r["length"], r["prompts"], r["graphs"]) == (batch, length, prompts, False)
    ]
    if part is None:
        return row["kernel_ms"]
    return sum(k["ms"] for k in row["top_kernels"] if part in k["name"])


def latency(result: dict, shape: str) -> list[str]:
    lines = [
        "| shape | layout | batch | T | prompts / bare, graphs p50 | prompts / bare, kernel time | graphs p50 / kernel"
        " time (prompts) | concatenation kernels ms | prefix copy kernels ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in result["latency"].items():
        for r in res["ratios"]:
            b, t = r["batch"], r["length"]
            bare, prompted = (kernel_ms(res["rows"], b, t, p) for p in (False, True))
            cat = kernel_ms(res["rows"], b, t, True, "CatArrayBatchedCopy")
            # the prefix's own copy: the strided elementwise copy the bare forward does not run (48 calls)
            extra = sum(
                k["ms"]
                for k in next(
                    x
                    for x in res["rows"]
                    if (x["batch"], x["length"], x["prompts"], x["graphs"]) == (b, t, True, False)
                )["top_kernels"]
                if k["name"].startswith("void at::native::elementwise_kernel<128, 4") and k["calls"] > 1
            )
            lines.append(
                f"| {shape} | {name} | {b} | {t} | {r['prompts_over_bare_graphs']:.2f} | {prompted / bare:.2f} | "
                f"{r['graphs_p50_over_kernel_time']:.2f} | {cat:.3f} | {extra:.3f} |"
            )
    return lines


def load(result: dict) -> list[str]:
    lines = [
        "| batching | clients | requests/s | p50 ms | p99 ms | rows/forward | worker busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['mode']} | {r['clients']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['rows_per_batch']:.1f} | {r['worker_busy']:.2f} |"
        )
    return lines


def main() -> None:
    large = json.loads((HERE / "prefix_copy_large.json").read_text())
    minilm = json.loads((HERE / "prefix_copy_minilm.json").read_text())
    out = [
        "## Each layout of the copy alone (µs per layer, keys + values, roberta-large's shape, one shared prefix)",
        "",
    ]
    out += copy_alone(large)
    out += [
        "",
        "## The served forward with each layout (one process per shape, bare and prompted side by side)",
        "",
    ]
    out += latency(large, "roberta-large") + latency(minilm, "MiniLM")[2:]
    out += ["", "## HTTP load test, MiniLM, 4 tasks", ""]
    out += load(json.loads((HERE / "serve_load.json").read_text()))
    print("\n".join(out))


if __name__ == "__main__":
    main()
