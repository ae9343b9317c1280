"""The tables of this study's README, from its JSON files (run from the repository root):

    python experiments/serve_prompt_cost_h100/make_tables.py

serve_latency_{large,minilm}.json: deepprompt.serve.latency (serve_gpu.sh); serve_load_*.json:
deepprompt.serve.loadtest (serve_gpu.sh): serve_load_large_one_call.json with each batch run as one backbone call,
the others with the timed split and the tokenizer thread (the server's defaults), graphs or eager.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
LOADS = {  # file -> (backbone, what the servers did)
    "serve_load_large_one_call.json": ("roberta-large shape", "graphs, one call per batch"),
    "serve_load_large_split.json": ("roberta-large shape", "graphs, split, tokenizer thread"),
    "serve_load_minilm_graphs.json": ("MiniLM", "graphs, split, tokenizer thread"),
    "serve_load_minilm_eager.json": ("MiniLM", "eager, tokenizer thread"),
}


def latency(shape: str, result: dict) -> list[str]:
    rows = {(r["batch"], r["length"], r["prompts"], r["graphs"]): r for r in result["rows"]}
    lines = []
    for r in result["ratios"]:
        b, t = r["batch"], r["length"]
        bare, prompted = rows[(b, t, False, True)], rows[(b, t, True, True)]
        kernel = rows[(b, t, True, False)]["kernel_ms"] / rows[(b, t, False, False)]["kernel_ms"]
        lines.append(
            f"| {shape} | {b} | {t} | {bare['p50_ms']:.3f} | {prompted['p50_ms']:.3f} | "
            f"{r['prompts_over_bare_graphs']:.2f} | {kernel:.2f} | {r['graphs_p50_over_kernel_time']:.2f} |"
        )
    return lines


def load(name: str, result: dict, backbone: str, variant: str) -> list[str]:
    lines = []
    for r in result["rows"]:
        forwards, cpu = r.get("forwards_per_batch"), r["server_cpu"]
        lines.append(
            f"| {backbone} | {variant} | {r['mode']} | {r['clients']} | {r['requests_per_s']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rows_per_batch']:.1f} | "
            f"{'-' if forwards is None else f'{forwards:.2f}'} | {r['worker_busy']:.2f} | "
            f"{'-' if cpu is None else f'{cpu:.2f}'} | {r['wall_s']:.2f} |"
        )
    return lines


def main() -> None:
    out = [
        "| shape | batch | T | bare p50 ms | prompts p50 ms | prompts / bare, graphs p50 | prompts / bare, kernel"
        " time | graphs p50 / kernel time (prompts) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, name in (("roberta-large", "serve_latency_large.json"), ("MiniLM", "serve_latency_minilm.json")):
        out += latency(shape, json.loads((HERE / name).read_text()))
    out += [
        "",
        "| backbone | server | batching | clients | requests/s | p50 ms | p99 ms | rows/batch | forwards/batch |"
        " worker busy | server CPU | s timed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (backbone, variant) in LOADS.items():
        if (HERE / name).is_file():
            out += load(name, json.loads((HERE / name).read_text()), backbone, variant)
    print("\n".join(out))


if __name__ == "__main__":
    main()
