"""Seconds from starting `deepprompt-serve` (the given overrides) to its first 200 on /health, and /health's
buckets; one JSON object on stdout."""

import json
import subprocess
import sys
import time

import httpx

from deepprompt.serve.loadtest import free_port, wait_ready

port = free_port()
url = f"http://127.0.0.1:{port}"
t0 = time.monotonic()
proc = subprocess.Popen(
    [sys.executable, "-m", "deepprompt.serve.cli", *sys.argv[1:], f"port={port}", "log_level=warning"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.STDOUT,
)
try:
    wait_ready(url, proc)
    ready = time.monotonic() - t0
    health = httpx.get(f"{url}/health").json()
finally:
    proc.terminate()
    proc.wait(timeout=30)
print(json.dumps({"overrides": sys.argv[2:], "startup_s": round(ready, 1), "buckets": health.get("buckets")}))
