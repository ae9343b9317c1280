#!/usr/bin/env bash
# One SST-2 epoch of `deepprompt-train trainer=gpu` with MiniLM, as a user runs it: the new defaults (the fast
# path) against the old ones (fast_path=false), each run a new process. Prints, side by side, each process's wall
# time end to end (start of python to its exit), the run's own wall time (metrics.json), the fast-path line the run
# printed and the final dev accuracy; writes the same into $OUT/fast_path_epoch.{md,json} with the runs' small files.
#
# On the GPU machine, from the repository root (the .device pack with wheels, data and MiniLM beside it):
#   bash experiments/lab/fast_path_epoch.sh
# Environment: MINILM_PATH (the backbone folder; default .device/minilm), ORDER (default "off on off on": two
# processes per setting, alternating, so that a drift of the host hits both), OUT (default ${TMPDIR:-/tmp}/fast_path_epoch);
# for a smoke test on a CPU: TRAINER=cpu BACKBONE=tiny EXTRA="debug=limit" (EXTRA: more overrides).
# Expected on an H100: ~75-90 s a process with fast_path=false (~2105 eager steps at 22-30 ms, start-up ~17 s,
# validation), ~35-45 s with the fast path (~6 ms steps); ~4.5 min in all, under a 10-minute call.
set -u
export OUT=${OUT:-${TMPDIR:-/tmp}/fast_path_epoch}
mkdir -p "$OUT"
env_script=$(ls experiments/lab/device_env.sh experiments/scripts/device_env.sh 2>/dev/null | head -n1)
if [[ -n $env_script && -d .device ]]; then
  source "$env_script"  # the wheels, MiniLM, DEEPPROMPT_DATA_DIR=.device/data, $OUT/env.txt
else
  export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 WANDB_MODE=offline
fi
MINILM_PATH=${MINILM_PATH:-$PWD/.device/minilm}
ORDER=${ORDER:-off on off on}
TRAINER=${TRAINER:-gpu} BACKBONE=${BACKBONE:-minilm}
RUNS=${DEEPPROMPT_OUTPUT_DIR:-${TMPDIR:-/tmp}/dp_out}/fast_path_epoch
rm -rf "$RUNS" && mkdir -p "$RUNS"
[[ -d $MINILM_PATH ]] || { echo "MINILM_PATH=$MINILM_PATH is not a folder"; exit 1; }
[[ -n ${DEEPPROMPT_DATA_DIR:-} && -d $DEEPPROMPT_DATA_DIR/sst2 ]] || { echo "DEEPPROMPT_DATA_DIR has no sst2/"; exit 1; }

python3 -c "import deepprompt.train" || exit 1  # warms the file cache for the first timed process
i=0
for mode in $ORDER; do
  i=$((i + 1))
  run=$RUNS/$i-$mode
  switch=$([[ $mode == on ]] && echo true || echo false)
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086  # EXTRA: overrides split on spaces
  python3 -m deepprompt.train "trainer=$TRAINER" data=sst2 "backbone=$BACKBONE" "backbone.name_or_path=$MINILM_PATH" \
    trainer.max_epochs=1 "fast_path=$switch" "hydra.run.dir=$run" ${EXTRA:-} > "$RUNS/$i-$mode.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  echo "$i $mode $rc $(python3 -c "print(round($t1 - $t0, 2))")" >> "$RUNS/times.txt"
  echo "== $i fast_path=$switch: exit $rc, $(tail -n1 "$RUNS/times.txt" | cut -d' ' -f4) s"
  grep -m1 "fast path:" "$RUNS/$i-$mode.log"
done

python3 - "$RUNS" "$OUT" <<'EOF'
import json, statistics, sys
from pathlib import Path

runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for line in (runs / "times.txt").read_text().split("\n"):
    if not line.strip():
        continue
    i, mode, rc, wall = line.split()
    m = runs / f"{i}-{mode}" / "metrics.json"
    s = json.loads(m.read_text()) if m.is_file() else {}
    log = (runs / f"{i}-{mode}.log").read_text(errors="replace")
    fast = next((ln[ln.index("fast path:"):] for ln in log.splitlines() if "fast path:" in ln), "")
    rows.append({
        "process": int(i), "fast_path": mode == "on", "exit": int(rc), "process_wall_s": float(wall),
        "run_wall_s": s.get("wall_time_s"), "steps": s.get("steps"), "status": s.get("status"),
        "dev_acc_final": (s.get("last") or {}).get("val/acc"), "fast_path_line": s.get("fast_path", fast),
        "config": {k: (s.get("config") or {}).get(k) for k in ("method", "data")},
    })
head = "| process | fast_path | exit | process wall s | run wall s | steps | final dev acc | line printed |"
lines = [head, "|" + "---|" * 8]
for r in rows:
    acc = f"{r['dev_acc_final']:.4f}" if r["dev_acc_final"] is not None else "-"
    lines.append(f"| {r['process']} | {str(r['fast_path']).lower()} | {r['exit']} | {r['process_wall_s']:.1f} | "
                 f"{r['run_wall_s']} | {r['steps']} | {acc} | {r['fast_path_line']} |")
def med(on, key):
    vals = [r[key] for r in rows if r["fast_path"] == on and r["exit"] == 0 and r[key] is not None]
    return statistics.median(vals) if vals else None
summary = {k: {"on": med(True, k), "off": med(False, k)} for k in ("process_wall_s", "run_wall_s", "dev_acc_final")}
w = summary["process_wall_s"]
if w["on"] and w["off"]:
    summary["speedup_end_to_end"] = round(w["off"] / w["on"], 2)
lines += ["", "medians (fast path on / off): " + ", ".join(f"{k} {v['on']} / {v['off']}" for k, v in summary.items()
          if isinstance(v, dict)) + f"; end to end x{summary.get('speedup_end_to_end')}"]
text = "\n".join(lines)
print(text)
(out / "fast_path_epoch.md").write_text(text + "\n")
(out / "fast_path_epoch.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
EOF
tar -C "$RUNS" --exclude='*.ckpt' --exclude='*.safetensors' -czf "$OUT/fast_path_epoch_runs.tar.gz" .
