#!/usr/bin/env bash
# SmolLM2-135M on one GPU in short calls that survive losing the machine. Every call after the GGUF's assembly runs
# the queues until DEADLINE_S and returns what has finished so far; the queue state stays on the machine
# ($SMOLLM2_DIR/out, under the warm machine's /tmp), so the next call continues it and never reruns a finished job.
# If the machine is lost, a fresh one skips what the local record (.smoldata/done.txt, written by
# smollm2_collect.sh from the returned tarballs) says is done.
#
# The call sequence (the lead's `device` calls, back to back: each next call within the 30 s warm window):
#   call 1   carry [".smol1"]
#            bash experiments/lab/smollm2_parts.sh stash                                  -> part 1 in /tmp (s)
#   call 2   carry [".smol2", ".smoldata", ".device/site.tar.xz"]
#            DEADLINE_S=280 bash experiments/lab/smollm2_gpu.sh        -> assemble (~30 s) + the first slice
#   call 3.. carry [".smoldata", ".device/site.tar.xz"]
#            DEADLINE_S=240 bash experiments/lab/smollm2_gpu.sh        -> the next slice (assemble is a no-op)
#            DEADLINE_S=360 for the slice that should start E2E: its jobs need ~280 s of queue budget until a
#            finished one measured the real rate (summary.txt: "next ... needs ~N s"; a call's queue budget is
#            DEADLINE_S minus ~30 s of set-up and PACK_S=25)
#   after any call, here (also later: each tarball holds every job finished so far):
#            bash experiments/lab/smollm2_collect.sh <files_at>          -> outputs/smollm2/, .smoldata/done.txt
#   machine lost (a call fails, or `assemble` exits 3): collect the last returned tarball, start again at call 1;
#            call 2 carries the updated .smoldata/done.txt and skips those jobs.
# Priority: SmolLM2 classification seed 1 of every task and method, E2E (the four methods), classification seeds
# 2-3, WebNLG (the four methods), then the decoder step bench (alone on the GPU, once both queues have nothing
# left; BENCH=1 forces it first, BENCH=0 never). Two queues share the GPU (gpu_queue.py, one process per run):
#   - classification (smollm2_cls, PARALLEL=9 at a time): SST-2, BoolQ, RTE, CB x ptuning_v2/prefix/lora/finetune x
#     seeds 1-3, the budget protocol of smollm2_plans.py, seed 1 of everything first; a smaller job may start ahead
#     of one that no longer fits the call;
#   - generation (smollm2_gen, GEN_PARALLEL=4 at a time, strictly in order): E2E, E2E_STEPS (800) steps of batch 16
#     over the full training set, then 5-beam search on the official test set (630 MRs, all references); then
#     WebNLG 2017, WEBNLG_STEPS (400) steps, 5-beam search on every WEBNLG_TEST_EVERY-th (2) test entry.
#   A job starts only if its estimate fits the call; whatever runs at the deadline is stopped and runs again,
#   from its start, in the next call.
# $OUT (5 files at most): env.txt, assemble.log, summary.txt (this call's queue lines, every finished run's best
# scores, what is left), runs_smollm2.tar.gz (every FINISHED run so far: metrics.json, .hydra/, csv logs,
# predictions; the queue logs, queue.json, done.txt; no checkpoints), bench_decoder.json (once the bench ran).
#
# PART=e2e_lr: E2E's learning rate per method on its dev set (3 rates x 4 methods), then the test runs of seeds 1-3 at
# each method's best rate (smollm2_plans.e2e_tuned; carry .smoldata/e2e and .smoldata/done.txt).
# PART=webnlg_lr: the same for WebNLG (smollm2_plans.webnlg_tuned: the grid on 200 dev entries, then seeds 1-3 on
# every test entry; carry .smoldata/webnlg and .smoldata/done.txt); measured for E2E: 12 grid runs in one ~410 s
# call with GEN_PARALLEL=6, the 12 test runs in one ~430 s call with GEN_PARALLEL=8 (H100).
# PART=webnlg: only WebNLG's four jobs (same state, same tarball layout). PART=minilm: MiniLM's counterpart runs of
# the same budget protocol (carry [".device", ".smoldata"]; state $SMOLLM2_DIR/out_minilm, runs_minilm.tar.gz).
# CPU smoke test (tiny random Llama, an offline word-level tokenizer, a few batches, no GGUF; needs .smoldata from
# `smollm2_parts.sh split`): two calls on one SMOLLM2_DIR continue one queue; a fresh SMOLLM2_DIR is a lost machine:
#   SMOKE=1 SMOLLM2_DIR="$TMPDIR/smol" DEADLINE_S=120 PYTHON=.venv/bin/python bash experiments/lab/smollm2_gpu.sh
set -u
cd "$(dirname "$0")/../.."
T0=$(date +%s)
DEADLINE=${DEADLINE_S:-280}
PART=${PART:-smollm2}
WARM=/tmp  # what a warm machine keeps between calls (not $TMPDIR)
export SMOLLM2_DIR=${SMOLLM2_DIR:-$WARM/smollm2}  # where call 1 left part 1 (smollm2_parts.sh)
STATE=$SMOLLM2_DIR/out  # the queues' state: kept between calls on a warm machine
[[ $PART == minilm ]] && STATE=$SMOLLM2_DIR/out_minilm
DONE_LIST=${DONE_LIST:-.smoldata/done.txt}  # jobs finished on a machine since lost (smollm2_collect.sh)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
mkdir -p "$STATE"
export DEEPPROMPT_OUTPUT_DIR=$STATE

if [[ ${SMOKE:-0} == 1 ]]; then
  OUT=${OUT:-$(mktemp -d)}
  PY=${PYTHON:-python3}
  export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
  export WANDB_MODE=offline TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
  [[ -f $SMOLLM2_DIR/tok/tokenizer.json ]] || $PY - "$SMOLLM2_DIR/tok" <<'PYEOF'
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
words = "the a of and to is in it that was film movie good bad not name eatType food area near pub".split()
vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, **{w: i + 3 for i, w in enumerate(words)}}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                        bos_token="<eos>").save_pretrained(sys.argv[1])
PYEOF
  MODEL=(backbone=tiny_llama "backbone.name_or_path=$SMOLLM2_DIR/tok" trainer=cpu)
  CLS_PLAN=smollm2_cls_smoke GEN_PLAN=smollm2_gen_smoke BENCH_PRESET=cpu_tiny_decoder
  if [[ $PART == webnlg ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg_smoke BENCH_PRESET=""; fi
  if [[ $PART == e2e_lr ]]; then CLS_PLAN="" GEN_PLAN=smollm2_e2e_lr_smoke BENCH_PRESET=""; fi
  if [[ $PART == webnlg_lr ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg_lr_smoke BENCH_PRESET=""; fi
  PARALLEL=${PARALLEL:-2} GEN_PARALLEL=${GEN_PARALLEL:-1} STEPS_PER_S=${STEPS_PER_S:-100} GEN_STEPS_PER_S=${GEN_STEPS_PER_S:-100}
else
  PY=python3
  export DEVICE_SITE=$SMOLLM2_DIR/device_site  # unpacked once per pack, kept between calls like the queue state
  source experiments/lab/device_env.sh  # site packages, env.txt, data/output folders
  export DEEPPROMPT_OUTPUT_DIR=$STATE
  if [[ $PART == minilm ]]; then
    MODEL=("$MINILM" trainer=gpu)
    CLS_PLAN=minilm_budget GEN_PLAN="" BENCH_PRESET=""
  else
    bash experiments/lab/smollm2_parts.sh assemble > "$OUT/assemble.log" 2>&1
    rc=$?
    grep -v "it/s\]" "$OUT/assemble.log"
    if (( rc != 0 )); then say "SmolLM2 is not ready (exit $rc): nothing ran"; exit $rc; fi
    MODEL=(backbone=smollm2 "backbone.name_or_path=$SMOLLM2_DIR/hf" trainer=gpu)
    CLS_PLAN=smollm2_cls GEN_PLAN=smollm2_gen BENCH_PRESET=decoder_step
    if [[ $PART == webnlg ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg BENCH_PRESET=""; fi
    if [[ $PART == e2e_lr ]]; then CLS_PLAN="" GEN_PLAN=smollm2_e2e_tuned BENCH_PRESET=""; fi
    if [[ $PART == webnlg_lr ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg_tuned BENCH_PRESET=""; fi
  fi
  export PYTHONPATH=$SMOLLM2_DIR/site:$PYTHONPATH  # gguf, rouge-score, nltk (assemble installed them)
  PARALLEL=${PARALLEL:-9} GEN_PARALLEL=${GEN_PARALLEL:-4}
fi
export DEEPPROMPT_DATA_DIR=$PWD/.smoldata
if [[ ! -d .smoldata/rte && -z $GEN_PLAN && -d .device/data/rte ]]; then DEEPPROMPT_DATA_DIR=$PWD/.device/data; fi
NEEDS=rte; [[ $PART == webnlg || $PART == webnlg_lr ]] && NEEDS=webnlg/webnlg_challenge_2017/test
[[ $PART == e2e_lr ]] && NEEDS=e2e
[[ -d $DEEPPROMPT_DATA_DIR/$NEEDS ]] || { echo "no .smoldata/$NEEDS (smollm2_parts.sh split; carry it)"; exit 2; }
CALL=call_$(date -u +%Y%m%dT%H%M%SZ)
LOGS=$STATE/logs/$CALL; mkdir -p "$LOGS"
SKIP=(); [[ -f $DONE_LIST ]] && SKIP=(--skip-done "$DONE_LIST") && say "done list: $(grep -cv '^#' "$DONE_LIST") jobs"
# run plumbing shared by every job: no checkpoints (a fine-tuned SmolLM2 checkpoint is 1.6 GB), no progress bars;
# the NaN guard stays (a diverged run stops at its first non-finite loss instead of spending the call)
COMMON=("${MODEL[@]}" extras.print_config=false callbacks=nan_guard ++trainer.enable_checkpointing=false
  +trainer.enable_progress_bar=false)
BENCH_JSON=$STATE/bench_decoder.json
bench() {
  [[ -n $BENCH_PRESET && ! -s $BENCH_JSON ]] || return 0
  say "bench $BENCH_PRESET"
  timeout "${BENCH_S:-100}" $PY -m deepprompt.bench.cli --preset "$BENCH_PRESET" --out "$BENCH_JSON.partial" \
    > "$LOGS/bench_decoder.log" 2>&1
  local rc=$?
  say "bench exit $rc"; grep "^| \|^# lever" "$LOGS/bench_decoder.log" | head -24
  (( rc == 0 )) && mv "$BENCH_JSON.partial" "$BENCH_JSON"
}
[[ ${BENCH:-auto} == 1 ]] && bench

queue_left() { $PY -c "import json, sys; print(json.load(open(sys.argv[1])).get('left', 1))" "$1" 2>/dev/null || echo 1; }
budget=$(( $(left) - ${PACK_S:-25} ))
say "queues: ${budget}s (${CLS_PLAN:-no classification} x$PARALLEL${GEN_PLAN:+, $GEN_PLAN x$GEN_PARALLEL}), state $STATE"
if command -v nvidia-smi > /dev/null && [[ ${SMOKE:-0} != 1 ]]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$LOGS/gpu_util.csv" 2>&1 &
  UTIL=$!
fi
CLS_ROOT=$STATE/queue_cls; [[ $PART == minilm ]] && CLS_ROOT=$STATE/queue_minilm
GEN_ROOT=$STATE/queue_gen
# --steps-per-s: a first guess of one job's optimizer steps per second while the queues share the GPU; each queue
# replaces it by its finished jobs' own rate (a slow quartile, kept across calls) once three have finished.
# --min-free-gib/--launch-gap-s: a job starts only while the GPU has MIN_FREE_GIB free, 8 s after the last start
# (13 jobs at once once filled an 80 GB GPU: two jobs ran out of memory); one that still does goes back in line.
MEMORY=(--min-free-gib "${MIN_FREE_GIB:-12}" --launch-gap-s "${LAUNCH_GAP_S:-8}")
[[ ${SMOKE:-0} == 1 ]] && MEMORY=()
if [[ -n $CLS_PLAN ]] && (( budget > 0 )); then
  $PY experiments/lab/gpu_queue.py --plan "$CLS_PLAN" --budget "$budget" --parallel "$PARALLEL" "${MEMORY[@]}" \
    --steps-per-s "${STEPS_PER_S:-6}" --startup-s 30 --root "$CLS_ROOT" "${SKIP[@]}" "${COMMON[@]}" \
    > "$LOGS/queue_cls.log" 2>&1 &
  CLS=$!
fi
if [[ -n $GEN_PLAN ]] && (( budget > 0 )); then
  $PY experiments/lab/gpu_queue.py --plan "$GEN_PLAN" --budget "$budget" --parallel "$GEN_PARALLEL" --in-order \
    "${MEMORY[@]}" --steps-per-s "${GEN_STEPS_PER_S:-5}" --startup-s 60 --root "$GEN_ROOT" "${SKIP[@]}" "${COMMON[@]}" \
    > "$LOGS/queue_gen.log" 2>&1 &
  GEN=$!
fi
[[ -n ${GEN:-} ]] && wait $GEN
[[ -n ${CLS:-} ]] && wait $CLS
[[ -n ${UTIL:-} ]] && kill "$UTIL" 2>/dev/null
say "queues done"
LEFT=0
for q in ${CLS:+$CLS_ROOT} ${GEN:+$GEN_ROOT}; do LEFT=$(( LEFT + $(queue_left "$q/queue.json") )); done
if [[ ${BENCH:-auto} == auto && -n ${CLS:-}${GEN:-} ]] && (( LEFT == 0 && $(left) > ${BENCH_S:-100} + ${PACK_S:-25} )); then
  bench
fi

# every finished run so far (never an unfinished one), the queues' logs and state, the done list
$PY - "$STATE" <<'PYEOF' > "$LOGS/summary.txt"
import json, sys
from pathlib import Path
state = Path(sys.argv[1])
finished, lines = [], []
for m in sorted(state.glob("queue_*/*/*/metrics.json")):
    try:
        r = json.loads(m.read_text())
    except ValueError:
        continue
    if r.get("status") != "finished":
        continue
    finished.append(m.parent)
    best = {k: round(v, 4) for k, v in (r.get("best") or {}).items() if k.startswith("val/") and isinstance(v, float)}
    lines.append(f"{m.parent.parent.name}/{m.parent.name} {best}")
for q in sorted(state.glob("queue_*/queue.json")):
    s = json.loads(q.read_text())
    nxt = s.get("next")
    hint = f", next {nxt['job']} needs ~{nxt['estimate_s']} s of queue budget" if nxt else ""
    print(f"{q.parent.name}: {s['plan']}, {s['left']} jobs left{hint}")
print(f"{len(finished)} runs finished so far:")
print("\n".join(lines))
(state / "done.txt").write_text("".join(f"{p.parent.name}/{p.name}\n" for p in finished))
(state / "finished.list").write_text(
    "".join(f"{p.relative_to(state)}\n" for p in finished)
    + "".join(f"{p.relative_to(state)}\n" for p in state.glob("queue_*/*.json"))
)
PYEOF
{
  echo "SmolLM2 GPU call ($PART) $CALL, deadline ${DEADLINE}s, state $STATE"
  grep -h "^queue \|jobs finished in an earlier call" "$LOGS"/queue_*.log 2>/dev/null
  cat "$LOGS/summary.txt"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
[[ -s $BENCH_JSON ]] && cp "$BENCH_JSON" "$OUT/"
TAR=runs_$PART; [[ $PART == webnlg ]] && TAR=runs_smollm2
(cd "$STATE" && ls -d done.txt logs queue_*/logs bench_decoder.json 2>/dev/null >> finished.list)
tar -C "$STATE" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='*.pt' -T "$STATE/finished.list" \
  -czf "$OUT/$TAR.tar.gz"
say "packed $(du -h "$OUT/$TAR.tar.gz" | cut -f1) into $OUT"
ls -la "$OUT"
