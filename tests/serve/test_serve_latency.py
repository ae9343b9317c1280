"""`python -m deepprompt.serve.latency` on the CPU: what it measures and writes (the GPU rows are left out here)."""

import json

import torch

from deepprompt.runs.restore import load_run_config
from deepprompt.serve import latency


def test_latency_rows_ratios_and_the_backbones_shape(serve_runs, tmp_path, capsys):
    out = tmp_path / "latency.json"
    result = latency.main(
        [
            f"prompts={{rte: {serve_runs['rte']}, sst2: {serve_runs['sst2']}}}",
            "batches=[1,3]",
            "lengths=[8]",
            "iters=4",
            "warmup=1",
            "rounds=2",
            f"out={out}",
        ]
    )
    assert json.loads(out.read_text()) == result
    meta = result["meta"]
    assert meta["tasks"] == {t: load_run_config(serve_runs[t]).method.prompt.length for t in ("rte", "sst2")}
    # the tiny backbone's shape (conf/backbone/tiny.yaml): what a reader needs to compare latencies
    assert meta["shape"] == {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "intermediate_size": 64,
    }
    # the CPU has no graphs: bare and prompted eager rows per shape, each from iters calls
    rows = {(r["batch"], r["length"], r["prompts"], r["graphs"]): r for r in result["rows"]}
    assert set(rows) == {(b, 8, p, False) for b in (1, 3) for p in (False, True)}
    for r in rows.values():
        assert r["calls"] == 4 and 0 < r["p50_ms"] <= r["p99_ms"]
    ratio = {(r["batch"], r["length"]): r for r in result["ratios"]}
    for (b, t), r in ratio.items():
        want = rows[(b, t, True, False)]["p50_ms"] / rows[(b, t, False, False)]["p50_ms"]
        assert r["prompts_over_bare_eager"] == want and "graphs_speedup" not in r
    printed = capsys.readouterr().out
    assert "num_hidden_layers 2, hidden_size 32" in printed and "| 3 | 8 | yes | no |" in printed


def test_kernel_breakdown_ranks_the_ops_of_a_call():
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    total, top = latency.kernel_ms(lambda: (a @ b).relu_(), n=3, top=2, device="cpu")
    assert total is not None and total > 0
    assert len(top) == 2 and top[0]["ms"] >= top[1]["ms"] > 0
    assert any("mm" in k["name"] for k in top) and all(k["calls"] == 1 for k in top if "mm" in k["name"])
