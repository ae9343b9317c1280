"""The table of README.md from run.sh's load tests: per batching mode, clients and eager_buckets setting, each
round's requests/s, and the medians over rounds of requests/s, p50, p99, rows and backbone calls per batch.
    python summary.py <work folder> [results.json]
Prints markdown; writes the per-round rows (without latencies) and the start-up times to results.json."""

import json
import statistics
import sys
from pathlib import Path

work = Path(sys.argv[1])
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("results.json")
rows = []
for f in sorted(work.glob("r*_*_*/load.json")):
    rnd, setting, _ = f.parent.name.split("_", 2)
    data = json.loads(f.read_text())
    for r in data["rows"]:
        keep = (
            "mode",
            "clients",
            "requests",
            "wall_s",
            "requests_per_s",
            "p50_ms",
            "p99_ms",
            "rows_per_batch",
        )
        keep += ("forwards_per_batch", "worker_busy", "queued_ms", "server_cpu", "client_cpu")
        row = {k: r.get(k) for k in keep}
        row |= {"round": int(rnd[1:]), "eager_buckets": setting == "true"}
        row["load_average_before_after"] = data["meta"]["load_average_before_after"]
        rows.append(row)
startup = [json.loads(f.read_text()) for f in sorted(work.glob("startup_*.json"))]
out.write_text(json.dumps({"rows": rows, "startup": startup}, indent=1) + "\n")

print(
    "| batching | clients | eager_buckets | req/s per round | req/s | p50 ms | p99 ms | rows/batch | calls/batch |"
)
print("|---|---:|---|---|---:|---:|---:|---:|---:|")
keys = sorted({(r["mode"], r["clients"]) for r in rows}, key=lambda k: (k[0], -k[1]))
for mode, clients in keys:
    for setting in (False, True):
        these = sorted(
            (r for r in rows if (r["mode"], r["clients"], r["eager_buckets"]) == (mode, clients, setting)),
            key=lambda r: r["round"],
        )
        if not these:
            continue

        def med(k, these=these):
            return statistics.median(r[k] for r in these)

        per_round = ", ".join(f"{r['requests_per_s']:.1f}" for r in these)
        print(
            f"| {mode} | {clients} | {str(setting).lower()} | {per_round} | {med('requests_per_s'):.1f} "
            f"| {med('p50_ms'):.0f} | {med('p99_ms'):.0f} | {med('rows_per_batch'):.1f} "
            f"| {med('forwards_per_batch'):.2f} |"
        )
for s in startup:
    print(f"\nstart-up to /health, {' '.join(s['overrides'])}: {s['startup_s']} s, buckets {s['buckets']}")
