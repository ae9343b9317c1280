"""How the prefix keys/values are put in front of a layer's keys/values, compared on the GPU.

The prompted forward's only extra kernels per layer are the two concatenations (prefix + keys, prefix + values).
At batch 32 on roberta-large's shape they cost more than the attention (serve.latency's ``top_kernels``:
CatArrayBatchedCopy 1.4 ms of the 1.6 ms that prompts add to a 5.6 ms forward). Variants of the copy:

- ``heads_first``: ``cat([prefix.expand(B), key], dim=2)`` in (B, H, n, d), the keys being a transposed view of the
  projection's (B, n, H*d) output: both inputs strided, so the cat takes its element-by-element kernel;
- ``heads_first`` is deepprompt's `prompts.attention.with_prefix` today;
- ``as_projected``: the prefix made contiguous in (B, m, H, d), then ``cat(dim=1)`` with the keys' own (B, n, H, d)
  memory: both inputs contiguous, so the cat can take its vectorised kernel (one small extra copy of the prefix);
- ``as_projected_strided``: the same layout without making the prefix contiguous (one strided input);
- ``two_copies``: an empty (B, m + n, H, d) buffer and two ``copy_``.

Part 1 times each variant alone (keys and values of 24 layers replayed in one CUDA graph). Part 2 (with
``prompts=``) runs ``deepprompt.serve.latency`` once per variant, the variant patched into the attention.

    python experiments/lab/prefix_copy_gpu.py [prompts={a: run_a, b: run_b}] [out=prefix_copy.json]
        [variants=[heads_first,as_projected]] [iters=100] [rounds=2]

On the GPU machine (one call, ~3 min on an H100; the prompts of `serve_gpu.sh SHAPE=large`, roberta-large's shape):

    export DEEPPROMPT_OUTPUT_DIR=$PWD/runs && source experiments/lab/device_env.sh
    SHAPE=large bash experiments/lab/serve_gpu.sh && R=$DEEPPROMPT_OUTPUT_DIR/serve_gpu-large
    python3 experiments/lab/prefix_copy_gpu.py "prompts={sst2: $R/sst2, rte: $R/rte}" out=$OUT/prefix_copy.json

The variant that wins both parts replaces `with_prefix` (the attention tests count its kernels: update them).
"""

from __future__ import annotations

import json
import sys

import torch
from omegaconf import OmegaConf


def heads_first(prefix, states):
    batch = states.shape[0]
    return torch.cat([prefix.to(states.dtype).expand(batch, -1, -1, -1), states], dim=2)


def as_projected(prefix, states):
    batch = states.shape[0]
    prefix = prefix.to(states.dtype).expand(batch, -1, -1, -1)
    return torch.cat([prefix.transpose(1, 2).contiguous(), states.transpose(1, 2)], dim=1).transpose(1, 2)


def as_projected_strided(prefix, states):
    batch = states.shape[0]
    prefix = prefix.to(states.dtype).expand(batch, -1, -1, -1)
    return torch.cat([prefix.transpose(1, 2), states.transpose(1, 2)], dim=1).transpose(1, 2)


def two_copies(prefix, states):
    batch, heads, n, d = states.shape
    m = prefix.shape[2]
    out = states.new_empty(batch, m + n, heads, d)
    out[:, :m].copy_(prefix.transpose(1, 2).expand(batch, -1, -1, -1))
    out[:, m:].copy_(states.transpose(1, 2))
    return out.transpose(1, 2)


VARIANTS = {f.__name__: f for f in (heads_first, as_projected, as_projected_strided, two_copies)}


def copy_alone(batch: int, length: int, layers=24, heads=16, d=64, m=16, per_row=False, reps=50) -> dict:
    """Microseconds per layer (keys + values) of each variant, replayed in one CUDA graph of ``layers`` layers."""
    dev = torch.device("cuda")
    projected = torch.randn(layers, 2, batch, length, heads * d, device=dev, dtype=torch.bfloat16)
    states = [
        [projected[i, j].view(batch, length, heads, d).transpose(1, 2) for j in range(2)]
        for i in range(layers)
    ]
    rows = batch if per_row else 1
    prefix = torch.randn(layers, 2, rows, heads, m, d, device=dev, dtype=torch.bfloat16)
    out = {}
    for name, fn in VARIANTS.items():
        ref = heads_first(prefix[0, 0], states[0][0])
        assert torch.equal(fn(prefix[0, 0], states[0][0]), ref), name
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                [fn(prefix[i, j], states[i][j]) for i in range(layers) for j in range(2)]
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            keep = [fn(prefix[i, j], states[i][j]) for i in range(layers) for j in range(2)]
        for _ in range(5):
            graph.replay()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        out[name] = round(start.elapsed_time(end) / reps / layers * 1000, 2)
        del keep, graph
    return out


def main(argv: list[str]) -> dict:
    defaults = {
        "prompts": None,
        "out": None,
        "variants": list(VARIANTS),
        "iters": 100,
        "rounds": 2,
        "batches": [1, 32],
        "lengths": [128, 256],
    }
    cfg = OmegaConf.merge(OmegaConf.create(defaults), OmegaConf.from_dotlist(argv))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {"device": device, "torch": torch.__version__, "copy_us_per_layer": []}
    for batch in (1, 32) if torch.cuda.is_available() else ():
        for length in (128, 256):
            for per_row in (False, True):
                row = {
                    "batch": batch,
                    "T": length,
                    "per_row_prefix": per_row,
                    **copy_alone(batch, length, per_row=per_row),
                }
                result["copy_us_per_layer"].append(row)
                print(json.dumps(row), flush=True)
    if cfg.prompts:
        from deepprompt.prompts import attention
        from deepprompt.serve import latency

        result["latency"] = {}
        for name in cfg.variants:
            attention.with_prefix = VARIANTS[name]
            prompts = ", ".join(f"{task}: {run}" for task, run in cfg.prompts.items())
            res = latency.main(
                [
                    f"prompts={{{prompts}}}",
                    f"iters={cfg.iters}",
                    f"rounds={cfg.rounds}",
                    "warmup=10",
                    f"batches={list(cfg.batches)}",
                    f"lengths={list(cfg.lengths)}",
                ]
            )
            result["latency"][name] = res
    if cfg.out:
        with open(cfg.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
