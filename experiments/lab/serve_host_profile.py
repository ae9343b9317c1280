"""Where a served request's host time goes: per request (event loop) and per forward (the batcher's worker).

Starts a real `deepprompt-serve` server process (the app of `serve/cli.py` under uvicorn, on a socket) with timers
around each step of the worker, drives it with the load test's closed-loop clients (`serve/loadtest.py`) and
prints, per batching mode and number of clients:

- the event loop's CPU per request (the server's main thread, from /proc): HTTP parsing, routing, the request's
  validation, turning its items into examples, the hand-off to the worker, the response;
- the worker's time per forward in each step (wall and CPU): tokenizing, collating, the forward, the heads'
  scores, fetching them, decoding, answering the requests (the hand-off back to the event loop);
- a fit of the worker's time to ``a + b * rows`` per forward over the client counts (per-forward and per-row
  host costs).

``forward=null`` (default) replaces the backbone's forward by a stand-in CUDA-graph capture whose replay does
nothing (as `serve_host_cpu.py`): batches are padded to the GPU's shape buckets and copied into static buffers as
on a GPU, but no model runs, so what is measured is the host path alone, the part a GPU does not take.
``forward=eager`` runs the backbone (the CPU server as it is).

    PYTHONPATH=src python experiments/lab/serve_host_profile.py <runs dir with sst2/ rte/ boolq/ cb/> \\
        [backbone=tiny] [forward=null|eager] [clients=1,4,16,64] [requests=400] [modes=mixed,per_task]
        [spy=<prefix>] [tokenize_ahead=true|false]
    PYTHONPATH=src python experiments/lab/serve_host_profile.py --micro <runs dir> [rows=1,8,29,64] [rounds=30]

``--micro``: the worker's steps for one batch of ``rows`` requests in process, no HTTP and nothing else running
(median over ``rounds`` batches; the stand-in forward): the per-forward and per-row host work by itself.

``spy=<prefix>``: also samples the server with py-spy (``--gil``: the thread that holds the GIL) during each
timed drive, into ``<prefix>_<mode>_<clients>.txt`` (collapsed stacks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

STEPS = ("tokenize", "collate", "forward", "scores", "fetch", "decode", "answer")


def thread_cpu(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def no_replay(fn, inputs, warmup, pool):
    """A capture whose replay launches nothing: the static outputs of one eager call."""
    return (lambda: None), fn(**inputs)


def build(args: dict[str, str], max_wait_ms: float = 5.0):
    """``(registry, batcher, app, totals)``: `build_server` with timers around the worker's steps (``totals``:
    step -> [wall s, CPU s, calls])."""
    from concurrent.futures import Future

    import torch
    from omegaconf import OmegaConf

    from deepprompt.inference import engine
    from deepprompt.inference.families import TaskRunner
    from deepprompt.serve import cli
    from deepprompt.serve import registry as registry_module

    sys.setswitchinterval(0.0005)  # the server's gil_switch_ms
    torch.set_num_threads(1)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])  # wall s, cpu s, calls

    def timed(step, fn):
        def wrapper(*a, **kw):
            if threading.current_thread().name != "deepprompt-batcher":
                return fn(*a, **kw)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                t = totals[step]
                t[0] += time.perf_counter() - wall
                t[1] += time.thread_time() - cpu
                t[2] += 1

        return wrapper

    engine.tokenize = timed("tokenize", engine.tokenize)
    engine.collate = timed("collate", engine.collate)
    engine.to_host = timed("fetch", engine.to_host)
    TaskRunner.scores = timed("scores", TaskRunner.scores)
    TaskRunner.decode = timed("decode", TaskRunner.decode)
    from deepprompt.serve.batcher import Batcher

    if hasattr(Batcher, "_answer"):  # a batch's answers handed back to the event loop together
        Batcher._answer = staticmethod(timed("answer", Batcher._answer))
    else:  # one future a request
        Future.set_result = timed("answer", Future.set_result)
    if args.get("forward", "null") == "null":
        original = registry_module.TaskRegistry.__init__

        def init(self, *a, **kw):
            original(self, *a, **{**kw, "graphs": True, "capture": no_replay})

        registry_module.TaskRegistry.__init__ = init
    cfg = OmegaConf.merge(
        OmegaConf.load(Path(cli.__file__).parent.parent / "conf" / "serve.yaml"),
        {
            "backbone": OmegaConf.load(
                Path(cli.__file__).parent.parent / "conf" / "backbone" / f"{args['backbone']}.yaml"
            )
        },
        {"prompts": json.loads(args["prompts"]), "device": "cpu", "dtype": "float32", "threads": 1},
        {
            "batching": {
                "max_batch": 64,
                "max_wait_ms": max_wait_ms,
                "mixed": args["mode"] == "mixed",
                "tokenize_ahead": args.get("tokenize_ahead", "true") == "true",
            }
        },
    )
    cfg.pop("defaults", None)
    cfg.pop("hydra", None)
    registry, batcher, app = cli.build_server(cfg)
    registry.forward = timed("forward", registry.forward)
    return registry, batcher, app, totals


def serve(args: dict[str, str]) -> None:
    """The server process: `build` plus ``GET /_profile``."""
    import uvicorn

    registry, batcher, app, totals = build(args)

    @app.get("/_profile")
    def profile():
        return {
            "steps": {k: list(v) for k, v in totals.items()},
            "batcher": batcher.stats(),
            "main_cpu": thread_cpu(threading.main_thread().native_id),
            "worker_cpu": thread_cpu(batcher.thread.native_id),
            "process_cpu": sum(os.times()[:2]),
        }

    uvicorn.run(app, host="127.0.0.1", port=int(args["port"]), log_level="warning")


def micro(argv: list[str]) -> None:
    """The worker's steps for one batch of ``rows`` one-input requests (mixed over the four tasks), in process and
    without HTTP: the event loop only submits them and awaits the answers. Median over ``rounds`` batches."""
    import asyncio

    from deepprompt.serve import loadtest

    runs = Path(argv[0])
    args = {"backbone": "tiny", "mode": "mixed", **dict(a.split("=", 1) for a in argv[1:])}
    prompts = {t: str(runs / t) for t in ("sst2", "rte", "boolq", "cb")}
    args["prompts"] = json.dumps(prompts)
    registry, batcher, _, totals = build(args, max_wait_ms=60_000)  # a batch starts once all its rows are in
    from deepprompt.inference.inputs import example_from_fields

    inputs = loadtest.task_inputs(prompts, 64)
    tasks = list(prompts)

    async def batch(n: int, offset: int):
        jobs = []
        batcher.last_rows = n
        for i in range(n):
            task = tasks[i % len(tasks)]
            runner = registry.tasks[task].runner
            example = example_from_fields(runner, inputs[task][(i + offset) % len(inputs[task])], "x:1")
            if hasattr(batcher, "submit_async"):
                jobs.append(batcher.submit_async(task, [example]))
            else:
                jobs.append(asyncio.wrap_future(batcher.submit(task, [example])))
        await asyncio.gather(*jobs)

    print(f"load average {os.getloadavg()[0]:.2f}; in process, forward={args.get('forward', 'null')}")
    print("| rows | worker ms/fwd | steps' CPU ms/fwd | " + " | ".join(f"{s} CPU ms" for s in STEPS) + " |")
    print("|---:|---:|---:|" + "---:|" * len(STEPS))
    for n in [int(r) for r in args.get("rows", "1,8,29,64").split(",")]:
        samples = []
        for k in range(int(args.get("rounds", 30)) + 3):
            before = {s: list(v) for s, v in totals.items()}
            busy = batcher.busy_s
            asyncio.run(batch(n, k))
            step = {s: totals[s][1] - before.get(s, [0, 0, 0])[1] for s in STEPS}
            if k >= 3:
                samples.append((batcher.busy_s - busy, sum(step.values()), step))
        med = lambda xs: float(np.median(xs)) * 1000  # noqa: E731
        print(
            f"| {n} | {med([b for b, _, _ in samples]):.2f} | {med([c for _, c, _ in samples]):.2f} | "
            + " | ".join(f"{med([st[s] for _, _, st in samples]):.2f}" for s in STEPS)
            + " |",
            flush=True,
        )
    batcher.stop()


def diff(after: dict, before: dict) -> dict:
    steps = {
        k: [a - b for a, b in zip(v, before["steps"].get(k, [0, 0, 0]), strict=True)]
        for k, v in after["steps"].items()
    }
    keys = ("batches", "rows", "jobs", "busy_s")
    return {
        "steps": steps,
        **{k: after["batcher"][k] - before["batcher"][k] for k in keys},
        **{k: after[k] - before[k] for k in ("main_cpu", "worker_cpu", "process_cpu")},
    }


def main(argv: list[str]) -> None:
    from deepprompt.serve import loadtest

    runs = Path(argv[0])
    args = dict(a.split("=", 1) for a in argv[1:])
    clients = [int(c) for c in args.get("clients", "1,4,16,64").split(",")]
    requests = int(args.get("requests", 400))
    prompts = {t: str(runs / t) for t in ("sst2", "rte", "boolq", "cb")}
    inputs = loadtest.task_inputs(prompts, 64)
    print(f"load average {os.getloadavg()[0]:.2f}; forward={args.get('forward', 'null')}", flush=True)
    print(
        "| batching | clients | req/s | p50 ms | p99 ms | rows/fwd | loop CPU ms/req | worker ms/fwd (cpu) | "
        + " | ".join(f"{s} ms/fwd (cpu)" for s in STEPS)
        + " |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(STEPS))
    fits = {}
    for mode in args.get("modes", "mixed,per_task").split(","):
        port = loadtest.free_port()
        url = f"http://127.0.0.1:{port}"
        child = {**args, "mode": mode, "port": str(port), "prompts": json.dumps(prompts)}
        child.setdefault("backbone", "tiny")
        cmd = [sys.executable, __file__, "--serve", *(f"{k}={v}" for k, v in child.items())]
        log = Path(f"profile_server_{mode}.log").open("w")  # noqa: SIM115  (the server's, until it stops)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        points = []
        try:
            loadtest.wait_ready(url, proc)
            for n in clients:
                loadtest.load(url, inputs, n, max(20, n))
                before = httpx.get(f"{url}/_profile").json()
                spy = args.get("spy") and subprocess.Popen(
                    ["py-spy", "record", "--pid", str(proc.pid), "--rate", "500", "--threads", "--gil"]
                    + ["--format", "raw", "--nonblocking", "--output", f"{args['spy']}_{mode}_{n}.txt"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                r = loadtest.load(url, inputs, n, requests)
                if spy:
                    spy.send_signal(signal.SIGINT)
                    spy.wait()
                d = diff(httpx.get(f"{url}/_profile").json(), before)
                fwd = max(d["batches"], 1)
                per = {s: [1000 * x / fwd for x in d["steps"].get(s, [0, 0, 0])[:2]] for s in STEPS}
                worker = 1000 * d["busy_s"] / fwd
                points.append((d["rows"] / fwd, worker, 1000 * d["worker_cpu"] / fwd))
                print(
                    f"| {mode} | {n} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                    f"| {d['rows'] / fwd:.1f} | {1000 * d['main_cpu'] / r['requests']:.2f} "
                    f"| {worker:.2f} ({1000 * d['worker_cpu'] / fwd:.2f}) | "
                    + " | ".join(f"{per[s][0]:.2f} ({per[s][1]:.2f})" for s in STEPS)
                    + " |",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if len(points) >= 2:
            rows, wall, cpu = (np.array(x) for x in zip(*points, strict=True))
            b, a = np.polyfit(rows, wall, 1)
            bc, ac = np.polyfit(rows, cpu, 1)
            fits[mode] = (a, b, ac, bc)
    for mode, (a, b, ac, bc) in fits.items():
        print(
            f"{mode}: worker time per forward = {a:.2f} ms + {b:.3f} ms/row (wall; CPU {ac:.2f} ms + {bc:.3f} ms/row)"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(dict(a.split("=", 1) for a in sys.argv[2:]))
    elif sys.argv[1:2] == ["--micro"]:
        micro(sys.argv[2:])
    else:
        main(sys.argv[1:])
