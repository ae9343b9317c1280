#!/usr/bin/env bash
# Start-up of a sweep job on the GPU: MiniLM, SST-2, each job a new process (as the submitit and SLURM launchers
# run them), a few training steps each. Process 1 finds no tokenized data (a fresh cache folder) and builds it;
# processes 2 and 3 reuse it; process 4 is a 2-job multirun (Hydra's basic launcher: its second job runs in the
# same process and counts from its own start). Prints, per job: the process's wall time (start of python to its
# exit), the run's own wall time (metrics.json), their difference, the start-up to the first training step
# (startup_s) and its phases, and whether the tokenized data was built or reused; writes the same into
# $OUT/startup.{md,json} with the runs' small files ($OUT/startup_runs.tar.gz).
#
# On the GPU machine, from the repository root (the .device pack with wheels, data and MiniLM beside it):
#   source experiments/lab/device_env.sh && bash experiments/lab/startup_gpu.sh
# Environment: TRAINER (default gpu), BACKBONE (default minilm), STEPS (training steps per job, default 100),
# MINILM (the backbone override; device_env.sh sets it), OUT (default ${TMPDIR:-/tmp}/startup), IMPORTTIME=1 (one
# more warm process under `python -X importtime`, written to $OUT/importtime.txt), EXTRA (more overrides).
# CPU smoke test: TRAINER=cpu BACKBONE=tiny MINILM= STEPS=2 bash experiments/lab/startup_gpu.sh
# Expected on an H100: 4 processes of ~10-20 s each (imports, then ~1 s of steps), ~60-80 s in all.
set -u
NAME=startup
source "$(dirname "$0")/sst2_job_env.sh"  # OUT, RUNS (fresh, its own cache), ARGS

python3 -c "import deepprompt.train" || exit 1  # warms the file cache for the first timed process
run() {  # run NAME [python options] -- overrides...
  local name=$1; shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  python3 "$@" > "$RUNS/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  echo "$name $rc $(python3 -c "print(round($t1 - $t0, 2))")" >> "$RUNS/times.txt"
  echo "== $name: exit $rc, $(tail -n1 "$RUNS/times.txt" | cut -d' ' -f3) s"
  grep -E "tokenized data:|start-up:" "$RUNS/$name.log" | sed 's/^/   /'
}
run 1-cold -m deepprompt.train "${ARGS[@]}" "hydra.run.dir=$RUNS/1-cold"
run 2-warm -m deepprompt.train "${ARGS[@]}" "hydra.run.dir=$RUNS/2-warm"
run 3-warm -m deepprompt.train "${ARGS[@]}" "hydra.run.dir=$RUNS/3-warm"
run 4-sweep -m deepprompt.train -m "${ARGS[@]}" method.prompt.length=8,16 "hydra.sweep.dir=$RUNS/4-sweep"
if [[ ${IMPORTTIME:-0} == 1 ]]; then
  python3 -X importtime -m deepprompt.train "${ARGS[@]}" "hydra.run.dir=$RUNS/5-importtime" \
    > "$RUNS/5-importtime.log" 2> "$OUT/importtime.txt"
fi

python3 - "$RUNS" "$OUT" <<'EOF'
import json, statistics, sys
from pathlib import Path

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for line in (runs / "times.txt").read_text().split("\n"):
    if not line.strip():
        continue
    name, rc, wall = line.split()
    folders = sorted(p.parent for p in (runs / name).rglob("metrics.json"))
    log = (runs / f"{name}.log").read_text(errors="replace")
    for job, folder in enumerate(folders):
        s = json.loads((folder / "metrics.json").read_text())
        train_log = (folder / "train.log").read_text(errors="replace") if (folder / "train.log").is_file() else log
        data = "reused" if "tokenized data: reused" in train_log else "built" if "tokenized data: built" in train_log else "-"
        rows.append({
            "process": name, "job": job, "exit": int(rc), "status": s.get("status"),
            "process_wall_s": float(wall) if job == 0 else None,  # a multirun's second job shares the process
            "run_wall_s": s.get("wall_time_s"), "startup_s": s.get("startup_s"),
            "startup_from": s.get("startup_from"), "phases_s": s.get("startup_phases_s"),
            "tokenized_data": data, "steps": s.get("steps"),
        })
head = "| process | job | exit | process wall s | run wall s | process - run s | start-up to 1st step s | from | data | phases (s) |"
lines = [head, "|" + "---|" * 10]
for r in rows:
    diff = round(r["process_wall_s"] - r["run_wall_s"], 2) if r["process_wall_s"] and r["run_wall_s"] else "-"
    phases = ", ".join(f"{k} {v:.2f}" for k, v in (r["phases_s"] or {}).items())
    lines.append(f"| {r['process']} | {r['job']} | {r['exit']} | {r['process_wall_s'] or '-'} | {r['run_wall_s']} | "
                 f"{diff} | {r['startup_s']} | {r['startup_from']} | {r['tokenized_data']} | {phases} |")
warm = [r["startup_s"] for r in rows if r["tokenized_data"] == "reused" and r["startup_from"] == "process" and r["startup_s"]]
summary = {"warm_process_startup_s_median": statistics.median(warm) if warm else None,
           "cold_process_startup_s": next((r["startup_s"] for r in rows if r["tokenized_data"] == "built"), None)}
lines += ["", f"start-up to the first step, new process: cold cache {summary['cold_process_startup_s']} s, "
          f"reused data (median) {summary['warm_process_startup_s_median']} s"]
text = "\n".join(lines)
print(text)
(out / "startup.md").write_text(text + "\n")
(out / "startup.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
EOF
tar -C "$RUNS" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='cache' -czf "$OUT/startup_runs.tar.gz" .
