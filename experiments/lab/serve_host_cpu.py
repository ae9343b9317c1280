"""Host work per call of the server's graph forward (serve/forward.py `BucketedForward`), measured on a CPU.

A CUDA-graph replay is one launch; what the host does around it (padding, copying the inputs into the graph's
static buffers, cutting or copying the outputs back) is the rest of batch-1 latency. Here the capture is a
stand-in whose replay does nothing, so the time per call is that host work alone, and the aten ops it runs are
the kernels (or copies) it would launch on a GPU. MiniLM's shape (6 layers, hidden 384, 12 heads), random
weights, four tasks of 16 prompt tokens, as in experiments/serve_h100.

    PYTHONPATH=src python experiments/lab/serve_host_cpu.py [iters]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import BertConfig, BertModel

from deepprompt.prompts import DeepPromptConfig
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel
from deepprompt.serve.forward import BucketedForward, PrefixTable
from deepprompt.serve.registry import CachedPrompts


class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def no_replay(fn, inputs, warmup, pool):
    """A capture whose replay launches nothing: the static outputs of one eager call."""
    return (lambda: None), fn(**inputs)


def main(iters: int = 2000) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    config._attn_implementation = "sdpa"
    tasks = {f"t{i}": DeepPromptConfig(length=16, dropout=0.0) for i in range(4)}
    multi = MultiTaskDeepPromptModel(BertModel(config).eval(), tasks).eval()
    table = PrefixTable(torch.device("cpu"), torch.float32)
    table.rebuild([CachedPrompts(multi.encoders[t], torch.float32, torch.device("cpu"))() for t in tasks])
    engine = BucketedForward(multi.model, table, 32, pad_rows=True, graphs=True, capture=no_replay)
    copy = (
        "copy_outputs" in BucketedForward.__call__.__code__.co_varnames
    )  # the server's call, where it has one
    print("| batch | T | prompts | host us/call (p50) | aten ops/call | ops |")
    print("|---:|---:|---|---:|---:|---|")
    for rows in (1, 32):
        for length in (128, 256):
            batch = {
                "input_ids": torch.randint(1000, 30000, (rows, length)),
                "attention_mask": torch.ones(rows, length, dtype=torch.long),
                "token_type_ids": torch.zeros(rows, length, dtype=torch.long),
            }
            for prompts in (False, True):
                ids = torch.arange(rows) % len(tasks) if prompts else None
                kw = {"copy_outputs": False} if copy else {}
                with torch.inference_mode():
                    engine(ids, batch, **kw)  # the capture
                    for _ in range(50):
                        engine(ids, batch, **kw)
                    times = []
                    for _ in range(iters):
                        start = time.perf_counter()
                        engine(ids, batch, **kw)
                        times.append(time.perf_counter() - start)
                    with Ops() as ops:
                        engine(ids, batch, **kw)
                count = sum(ops.ops.values())
                names = ", ".join(f"{k} {v}" for k, v in sorted(ops.ops.items()))
                p50 = statistics.median(times) * 1e6
                print(f"| {rows} | {length} | {'yes' if prompts else 'no'} | {p50:.1f} | {count} | {names} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
