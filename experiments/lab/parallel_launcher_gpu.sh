#!/usr/bin/env bash
# Sweep jobs forked from a preloaded server (hydra/launcher=parallel) on the GPU: a 4-job MiniLM SST-2 sweep of
# STEPS training steps each, one job at a time on one GPU (n_jobs=1: one GPU is one slot), after one new process
# that builds the tokenized data. Prints the server's preload time (paid once for the sweep) and, per job, its
# pid, CUDA_VISIBLE_DEVICES, startup_from, the start-up to the first training step (startup_s) and its phases,
# and the sweep's wall time; writes the same into $OUT/parallel_launcher.{md,json} with the runs' small files
# ($OUT/parallel_launcher_runs.tar.gz).
#
# On the GPU machine, from the repository root (the .device pack with wheels, data and MiniLM beside it):
#   source experiments/lab/device_env.sh && bash experiments/lab/parallel_launcher_gpu.sh
# Environment: TRAINER (default gpu), BACKBONE (default minilm), STEPS (default 100), MINILM (the backbone
# override; device_env.sh sets it), N_JOBS (default 1), GPUS_PER_JOB (default 1; 0 for CPU jobs), OUT (default
# ${TMPDIR:-/tmp}/parallel_launcher), EXTRA (more overrides).
# CPU smoke test: TRAINER=cpu BACKBONE=tiny MINILM= STEPS=2 GPUS_PER_JOB=0 bash experiments/lab/parallel_launcher_gpu.sh
# Expected on an H100: the server's preload ~5 s, then each job reaches its first step in ~1-2 s.
set -u
NAME=parallel_launcher
source "$(dirname "$0")/sst2_job_env.sh"  # OUT, RUNS (fresh, its own cache), ARGS
N_JOBS=${N_JOBS:-1} GPUS_PER_JOB=${GPUS_PER_JOB:-1}

python3 -c "import deepprompt.train, hydra_plugins.deepprompt_launcher.parallel_launcher" || exit 1
echo "== 1 new process: builds the tokenized data"
python3 -m deepprompt.train "${ARGS[@]}" "hydra.run.dir=$RUNS/warm" > "$RUNS/warm.log" 2>&1 \
  || { echo "the warm-up run failed:"; tail -n 30 "$RUNS/warm.log"; exit 1; }
grep -E "start-up:" "$RUNS/warm.log" | sed 's/^/   /'
echo "== a 4-job sweep under hydra/launcher=parallel (n_jobs=$N_JOBS, gpus_per_job=$GPUS_PER_JOB)"
t0=$(date +%s.%N)
python3 -m deepprompt.train -m hydra/launcher=parallel "hydra.launcher.n_jobs=$N_JOBS" \
  "hydra.launcher.gpus_per_job=$GPUS_PER_JOB" "${ARGS[@]}" method.prompt.length=8,16,32,64 \
  "hydra.sweep.dir=$RUNS/sweep" > "$RUNS/sweep.log" 2>&1
rc=$?
t1=$(date +%s.%N)
echo "   exit $rc, $(python3 -c "print(round($t1 - $t0, 2))") s"
grep -E "\]\[HYDRA\] (server|#[0-9]+ started)|start-up:" "$RUNS/sweep.log" | sed 's/^/   /'

python3 - "$RUNS" "$OUT" "$rc" "$(python3 -c "print(round($t1 - $t0, 2))")" <<'EOF'
import json, re, statistics, sys
from pathlib import Path

runs, out, rc, wall = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
log = (runs / "sweep.log").read_text(errors="replace")
server = re.search(r"server \(pid (\d+)\): preloaded (\d+) modules in ([\d.]+) s \(([\d.]+) s since its start\)", log)
started = {int(m[1]): (int(m[2]), m[3]) for m in re.finditer(r"#(\d+) started: pid (\d+)(?:, CUDA_VISIBLE_DEVICES=(\S*))?", log)}
rows = []
for folder in sorted((runs / "sweep").glob("*/metrics.json"), key=lambda p: int(p.parent.name)):
    s = json.loads(folder.read_text())
    job = int(folder.parent.name)
    pid, gpus = started.get(job, (None, None))
    rows.append({"job": job, "pid": pid, "cuda_visible_devices": gpus, "status": s.get("status"),
                 "startup_s": s.get("startup_s"), "startup_from": s.get("startup_from"),
                 "phases_s": s.get("startup_phases_s"), "inherited": s.get("startup_inherited"),
                 "run_wall_s": s.get("wall_time_s"), "steps": s.get("steps")})
warm = json.loads((runs / "warm" / "metrics.json").read_text())
lines = [f"new process (builds the data): start-up {warm.get('startup_s')} s, phases {warm.get('startup_phases_s')}"]
if server:
    lines.append(f"server pid {server[1]}: preloaded {server[2]} modules in {server[3]} s ({server[4]} s since its start)")
lines += [f"sweep: exit {rc}, {wall} s for {len(rows)} jobs", "",
          "| job | pid | CUDA_VISIBLE_DEVICES | status | from | start-up to 1st step s | run wall s | phases (s) |",
          "|---|---|---|---|---|---|---|---|"]
for r in rows:
    phases = ", ".join(f"{k} {v:.2f}" for k, v in (r["phases_s"] or {}).items())
    lines.append(f"| {r['job']} | {r['pid']} | {r['cuda_visible_devices']} | {r['status']} | {r['startup_from']} | "
                 f"{r['startup_s']} | {r['run_wall_s']} | {phases} |")
startups = [r["startup_s"] for r in rows if r["startup_s"] is not None]
summary = {"server_preload_s": float(server[3]) if server else None, "sweep_wall_s": wall,
           "job_startup_s_median": statistics.median(startups) if startups else None,
           "new_process_startup_s": warm.get("startup_s")}
lines += ["", f"start-up to the first step: forked job (median) {summary['job_startup_s_median']} s, "
          f"new process {summary['new_process_startup_s']} s"]
text = "\n".join(lines)
print(text)
(out / "parallel_launcher.md").write_text(text + "\n")
(out / "parallel_launcher.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
EOF
tar -C "$RUNS" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='cache' -czf "$OUT/parallel_launcher_runs.tar.gz" .
exit $rc
