"""Where a served request's time goes, in one process on the CPU (tiny backbone): the FastAPI app per request
without socket or model, tokenizing one by one vs one call per batch, and a batch's forward beside a busy
Python thread (the event loop under load) at several GIL switch intervals.

    python experiments/serve_overheads_cpu/overheads.py "prompts={sst2: runs/sst2, rte: runs/rte, ...}"
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import torch
from omegaconf import OmegaConf

from deepprompt.inference.engine import predict
from deepprompt.inference.inputs import example_from_fields
from deepprompt.runs.restore import load_run_config
from deepprompt.serve.app import create_app
from deepprompt.serve.loadtest import task_inputs
from deepprompt.serve.registry import TaskRegistry


def median_ms(fn, n: int = 20) -> float:
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[n // 2]


class InstantBatcher:
    """Answers at once (the app's own cost); ``tokenize``: the examples are tokenized in the handler first."""

    def __init__(self, registry, tokenize: bool):
        self.registry, self.tokenize = registry, tokenize

    def submit(self, task, examples):
        if self.tokenize:
            for e in examples:
                self.registry.tasks[task].runner.rows(e)
        future = Future()
        future.set_result([{"label": "x", "probabilities": {"x": 0.5, "y": 0.5}}] * len(examples))
        return future

    def stats(self):
        return {}


def app_us_per_request(registry, inputs, tokenize: bool, n: int = 2000) -> float:
    app = create_app(registry, InstantBatcher(registry, tokenize))
    tasks = list(inputs)

    async def call(task, item):
        body = json.dumps({"inputs": [item]}).encode()
        path = f"/v1/{task}/predict"
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            return messages.pop() if messages else await asyncio.sleep(60)

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    async def run():
        for i in range(50):
            await call(tasks[i % len(tasks)], inputs[tasks[i % len(tasks)]][i % 8])
        start = time.perf_counter()
        for i in range(n):
            await call(tasks[i % len(tasks)], inputs[tasks[i % len(tasks)]][i % 8])
        return (time.perf_counter() - start) / n * 1e6

    return asyncio.run(run())


def spin(stop: threading.Event) -> None:
    """A thread that keeps the GIL busy with Python, as the event loop does under load."""
    while not stop.is_set():
        sum(range(100))


def main() -> None:
    cfg = OmegaConf.from_dotlist(sys.argv[1:])
    prompts = {str(k): str(v) for k, v in cfg.prompts.items()}
    torch.set_num_threads(1)
    registry = TaskRegistry(load_run_config(Path(next(iter(prompts.values())))).backbone, "cpu", "float32")
    for name, path in prompts.items():
        registry.load(name, path)
    inputs = task_inputs(prompts, 32)

    print("## The FastAPI app per request (no socket, no model)\n")
    print(f"- answers at once: {app_us_per_request(registry, inputs, False):.0f} us")
    print(f"- tokenizing in the handler first: {app_us_per_request(registry, inputs, True):.0f} us\n")

    print(
        "## Tokenizing 32 examples of a task (us per example)\n\n| task | one by one | one call |\n|---|---:|---:|"
    )
    for task in prompts:
        runner = registry.tasks[task].runner
        examples = [example_from_fields(runner, f, "x:1") for f in inputs[task]]
        assert runner.rows_many(examples) == [runner.rows(e) for e in examples]
        one = median_ms(lambda r=runner, ex=examples: [r.rows(e) for e in ex]) * 1000 / len(examples)
        many = median_ms(lambda r=runner, ex=examples: r.rows_many(ex)) * 1000 / len(examples)
        print(f"| {task} | {one:.0f} | {many:.0f} |")

    task = next(iter(prompts))
    runner = registry.tasks[task].runner

    def batch():
        work = [
            (registry.index(task), runner, example_from_fields(runner, f, "x:1")) for f in inputs[task][:16]
        ]
        predict(registry.forward, work, 64, "cpu")

    print(f"\n## A batch of 16 {task} rows (tokenize, forward, decode), median ms\n")
    print("| GIL switch interval | alone | beside a busy Python thread |\n|---|---:|---:|")
    for interval in (0.005, 0.001, 0.0005, 0.0001):
        sys.setswitchinterval(interval)
        alone = median_ms(batch)
        stop = threading.Event()

        thread = threading.Thread(target=spin, args=(stop,))
        thread.start()
        busy = median_ms(batch)
        stop.set()
        thread.join()
        print(f"| {interval * 1000:g} ms | {alone:.1f} | {busy:.1f} |")


if __name__ == "__main__":
    main()
