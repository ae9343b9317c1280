"""Load benchmark of `deepprompt-serve`: requests/s and p50/p99 latency per number of concurrent clients,
mixed-task batching against one task per batch, each against a real server process over HTTP.

    python -m deepprompt.serve.loadtest "prompts={sst2: runs/sst2, rte: runs/rte, boolq: runs/boolq, cb: runs/cb}" \\
        backbone=minilm clients=[1,4,16] requests=200 device=cpu out=serve_load.json

For each batching mode (``modes``: ``mixed``, ``per_task``) a server is started (``deepprompt-serve`` with
``batching.mixed`` set accordingly, the other options passed through ``server``), warmed up, and driven by
``clients`` closed-loop clients (httpx, asynchronous): each sends one request of one input, waits for the
answer and sends the next, cycling through the tasks (client ``c`` starts at task ``c mod tasks``), until
``requests`` requests per client count are answered, after ``warmup`` requests at the same concurrency.

The clients run in ``client_processes`` processes (``auto``: one per 8 clients, at most half the CPUs), each an
asyncio loop with its share of the clients and of the requests, started together: one Python process drives a
few hundred requests/s at most, and a benchmark whose client is the bottleneck measures the client. Each row says
where the time went: ``client_cpu`` (the client processes' CPU time over the wall time, in cores; with one process
near 1.0 the client is the bottleneck), ``server_cpu`` (the server process's, in cores), ``worker_busy`` (the
fraction of the time the batcher's worker spent in batches: near 1.0 the model is the bottleneck) and
``queued_ms`` (a request's mean wait from its arrival at the batcher to its batch). Inputs are the first
``inputs_per_task`` examples of each task's validation file (the run's data folder; classification tasks).
Prints a markdown table and writes the rows to ``out``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from omegaconf import OmegaConf

DEFAULTS = {
    "prompts": None,
    "backbone": "minilm",
    "clients": [1, 4, 16],
    "modes": ["mixed", "per_task"],
    "requests": 200,
    "warmup": 20,
    "inputs_per_task": 64,
    "device": "auto",
    "dtype": "auto",
    "max_batch": 32,
    "max_wait_ms": 5.0,
    "threads": None,
    "client_processes": "auto",
    "server": [],  # extra deepprompt-serve overrides
    "out": None,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_inputs(prompts: dict[str, str], n: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``n`` validation examples of each task, as request items (its JSON-lines fields)."""
    from deepprompt.runs.restore import load_run_config
    from deepprompt.serve.registry import find_run

    out = {}
    for task, path in prompts.items():
        run, _ = find_run(Path(path))
        cfg = load_run_config(run)
        from deepprompt.tasks.classification.tasks import get_task

        spec = get_task(str(cfg.data.task))
        from deepprompt.data.readers import read_jsonl, read_tsv, resolve_split_file

        file = resolve_split_file(cfg.data.data_dir, spec.local_folder, spec.local_files["validation"])
        reader = read_tsv if spec.local_format == "tsv" else read_jsonl
        rows = []
        for _, row in reader(file):
            rows.append({f: row[f] for f in spec.text_fields})
            if len(rows) >= n:
                break
        out[task] = rows
    return out


def start_server(cfg, mixed: bool, port: int, log: Path) -> subprocess.Popen:
    prompts = ", ".join(f"{t}: {p}" for t, p in cfg.prompts.items())
    args = [
        sys.executable,
        "-m",
        "deepprompt.serve.cli",
        f"prompts={{{prompts}}}",
        f"backbone={cfg.backbone}",
        f"port={port}",
        f"device={cfg.device}",
        f"dtype={cfg.dtype}",
        f"batching.max_batch={cfg.max_batch}",
        f"batching.max_wait_ms={cfg.max_wait_ms}",
        f"batching.mixed={str(mixed).lower()}",
        "log_level=warning",
        *([f"threads={cfg.threads}"] if cfg.threads else []),
        *cfg.server,
    ]
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before answering /health")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url}/health in {timeout:.0f} s")


def cpu_seconds(pid: int) -> float | None:
    """A process's user + system CPU time (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def _clients(url: str, inputs: dict[str, list], ids: list[int], total: int) -> dict[str, Any]:
    """Closed-loop clients ``ids`` until ``total`` requests are answered: latencies (s), start and end times."""
    tasks = list(inputs)
    latencies: list[float] = []
    sent = 0

    tls = ssl.create_default_context()  # unused over http://, but each client would load the CA bundle again

    async def client(c: int) -> None:
        # a connection of its own, as separate users have (one pool of many connections is scanned by httpx on
        # every request)
        nonlocal sent
        k = 0
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits, verify=tls) as http:
            while sent < total:
                sent += 1
                task = tasks[(c + k) % len(tasks)]
                item = inputs[task][(c * 7 + k) % len(inputs[task])]
                k += 1
                start = time.perf_counter()
                r = await http.post(f"/v1/{task}/predict", json={"inputs": [item]})
                latencies.append(time.perf_counter() - start)
                r.raise_for_status()

    cpu = time.process_time()
    began = time.monotonic()
    await asyncio.gather(*(client(c) for c in ids))
    ended = time.monotonic()
    return {"latencies": latencies, "began": began, "ended": ended, "cpu_s": time.process_time() - cpu}


def _summary(parts: list[dict[str, Any]]) -> dict[str, float]:
    latencies = [x for p in parts for x in p["latencies"]]
    wall = max(p["ended"] for p in parts) - min(p["began"] for p in parts)
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "wall_s": wall,
        "client_processes": len(parts),
        "client_cpu": sum(p["cpu_s"] for p in parts) / wall,  # cores
        "client_cpu_max_process": max(p["cpu_s"] for p in parts) / wall,
    }


async def drive(url: str, inputs: dict[str, list], clients: int, total: int) -> dict[str, float]:
    """``clients`` closed-loop clients in this process until ``total`` requests are answered: requests/s,
    p50/p99 (ms), the client's CPU (cores)."""
    return _summary([await _clients(url, inputs, list(range(clients)), total)])


def _client_process(url, inputs, ids, total, ready, go, results) -> None:
    import gc

    gc.disable()  # the client's pauses would count as the server's latency
    ready.release()
    go.wait()
    results.put(asyncio.run(_clients(url, inputs, ids, total)))


def load(url: str, inputs: dict[str, list], clients: int, total: int, processes: int = 1) -> dict[str, float]:
    """`drive` with the clients spread over ``processes`` processes (client ``c`` in process ``c mod
    processes``, the requests split evenly), started together; one process: in this one."""
    processes = max(1, min(processes, clients, total))
    if processes == 1:
        return asyncio.run(drive(url, inputs, clients, total))
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_client_process,
            args=(
                url,
                inputs,
                list(range(p, clients, processes)),
                total // processes + (p < total % processes),
                ready,
                go,
                results,
            ),
            daemon=True,
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:  # every process imported and waiting: start them together
        if not ready.acquire(timeout=120):
            raise RuntimeError("a load-test client process did not start")
    go.set()
    parts = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    return _summary(parts)


def client_processes(option, clients: int) -> int:
    if option in (None, "auto"):
        return max(1, min(-(-clients // 8), (os.cpu_count() or 2) // 2))
    return int(option)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    cfg = OmegaConf.merge(
        OmegaConf.create(DEFAULTS), OmegaConf.from_dotlist(argv if argv is not None else sys.argv[1:])
    )
    if not cfg.prompts:
        raise SystemExit('loadtest: pass prompts="{<task>: <run folder>, ...}"')
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    inputs = task_inputs(dict(cfg.prompts), int(cfg.inputs_per_task))
    rows = []
    print(
        "| batching | clients | requests/s | p50 ms | p99 ms | rows/batch | forwards/batch | worker busy | queued ms "
        "| server CPU | client CPU (processes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    load_before = os.getloadavg()
    for mode in cfg.modes:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(cfg, mode == "mixed", port, Path(f".loadtest_server_{mode}.log"))
        try:
            wait_ready(url, proc)
            for clients in cfg.clients:
                processes = client_processes(cfg.client_processes, int(clients))
                load(url, inputs, int(clients), int(cfg.warmup), processes)  # connections, caches
                health = httpx.get(f"{url}/health").json()
                cpu = cpu_seconds(proc.pid)
                result = load(url, inputs, int(clients), int(cfg.requests), processes)
                cpu = None if cpu is None else (cpu_seconds(proc.pid) - cpu) / result["wall_s"]
                after = httpx.get(f"{url}/health").json()
                before, graphs, now = health["batcher"], health.get("graphs"), after["batcher"]
                batches = now["batches"] - before["batches"]
                result |= {
                    "mode": mode,
                    "clients": int(clients),
                    "rows_per_batch": (now["rows"] - before["rows"]) / max(batches, 1),
                    # backbone calls per batch: more than 1 where short and long rows ran apart (serve.planning)
                    "forwards_per_batch": (now["forwards"] - before["forwards"]) / max(batches, 1),
                    "server_cpu": cpu,  # cores
                    "worker_busy": (now["busy_s"] - before["busy_s"]) / result["wall_s"],
                    "queued_ms": 1000
                    * (now["queued_s"] - before["queued_s"])
                    / max(now["jobs"] - before["jobs"], 1),
                    # during the timed requests: graph captures, replays and eager forwards (null: no graphs)
                    "graphs": graphs
                    and {k: after["graphs"][k] - graphs[k] for k in ("captures", "replays", "eager_calls")},
                    # the shape buckets: rows padded, length multiple, buckets warmed and timed at start-up
                    "buckets": after.get("buckets"),
                }
                rows.append(result)
                print(
                    f"| {mode:8s} | {clients:3d} | {result['requests_per_s']:8.1f} | {result['p50_ms']:8.1f} "
                    f"| {result['p99_ms']:8.1f} | {result['rows_per_batch']:5.1f} "
                    f"| {result['forwards_per_batch']:4.2f} | {result['worker_busy']:4.2f} "
                    f"| {result['queued_ms']:6.1f} | {'-' if cpu is None else f'{cpu:4.2f}'} "
                    f"| {result['client_cpu']:4.2f} ({result['client_processes']}) |",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if cfg.out:
        meta = {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "backbone": cfg.backbone,
            "device": cfg.device,
            "tasks": list(cfg.prompts),
            "load_average_before_after": [load_before[0], os.getloadavg()[0]],  # other work on the machine
            "client_processes": str(cfg.client_processes),
            "command": " ".join(sys.argv),
        }
        Path(cfg.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
