#!/usr/bin/env bash
# SmolLM2-135M on one GPU in one call (call 2 of smollm2_parts.sh), in this order, all within DEADLINE_S (540):
#   0. assemble: join the GGUF parts, check the sha256, write $SMOLLM2_DIR/hf once (~30 s; skipped when present);
#   1. the engine's training step on this decoder: ours vs peft prefix, eager and with the fast path's levers
#      (bench preset decoder_step, alone on the GPU, ~60 s);
#   2. two job queues side by side (gpu_queue.py; one process per run, a seed each):
#      - smollm2_cls (PARALLEL=9 at a time): SST-2, BoolQ, RTE, CB x ptuning_v2/prefix/lora/finetune x seeds 1-3,
#        the budget protocol of smollm2_plans.py, seed 1 of everything first;
#      - smollm2_e2e (GEN_PARALLEL=4 at a time): E2E, the four methods, E2E_STEPS (800) steps of batch 16 over the
#        full training set, then 5-beam search on the official test set (630 MRs, all references; E2E_TEST=N: the
#        first N); a job starts only if its estimate still fits, whatever runs at the deadline is stopped.
#   $OUT: env.txt, assemble.log, bench_decoder.json, summary.txt, runs_smollm2.tar.gz (every run's metrics.json,
#   .hydra/, csv logs, predictions; the queue logs and queue.json; the bench log; GPU utilisation; no checkpoints).
#
# GPU (call 2, at once after call 1 `smollm2_parts.sh stash`), from the repository root:
#   carry [".smol2", ".smoldata", ".device/site.tar.xz"]:  bash experiments/lab/smollm2_gpu.sh
# WebNLG alone (a later call to a machine that still has $SMOLLM2_DIR/hf: the assemble step is then a no-op; carry
# [".smoldata", ".device/site.tar.xz"], .smoldata with webnlg/ from `smollm2_parts.sh split`; ~300 s): no bench, no
# classification queue; smollm2_webnlg (GEN_PARALLEL=4 at a time): WebNLG 2017, the four methods, WEBNLG_STEPS (400)
# steps of batch 16, then 5-beam search on every WEBNLG_TEST_EVERY-th (2) test entry, scored all/seen/unseen:
#   PART=webnlg DEADLINE_S=300 bash experiments/lab/smollm2_gpu.sh
#   $OUT: env.txt, assemble.log, summary.txt, runs_webnlg.tar.gz (queue_webnlg/: each run's metrics.json, .hydra/,
#   predictions/test_epoch0.jsonl; the queue log; GPU utilisation). CPU smoke: SMOKE=1 PART=webnlg ... (~1 min).
# MiniLM's counterpart runs of the same budget protocol (a later call; carry [".device", ".smoldata"], ~4 min):
#   PART=minilm DEADLINE_S=300 bash experiments/lab/smollm2_gpu.sh
# CPU smoke test of this script (tiny random Llama, an offline word-level tokenizer, a few batches, no GGUF;
# needs .smoldata from `smollm2_parts.sh split`; ~5 min on 2 cores):
#   SMOKE=1 PYTHON=.venv/bin/python bash experiments/lab/smollm2_gpu.sh
set -u
cd "$(dirname "$0")/../.."
T0=$(date +%s)
DEADLINE=${DEADLINE_S:-540}
PART=${PART:-smollm2}
WARM=/tmp  # what a warm machine keeps between calls (not $TMPDIR)
export SMOLLM2_DIR=${SMOLLM2_DIR:-$WARM/smollm2}  # where call 1 left part 1 (smollm2_parts.sh)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

if [[ ${SMOKE:-0} == 1 ]]; then
  OUT=${OUT:-$(mktemp -d)}
  PY=${PYTHON:-python3}
  export PYTHONPATH=$PWD/src DEEPPROMPT_OUTPUT_DIR=$OUT/dp_out HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
  export WANDB_MODE=offline TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
  mkdir -p "$DEEPPROMPT_OUTPUT_DIR"
  $PY - "$OUT/tok" <<'EOF'
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
words = "the a of and to is in it that was film movie good bad not name eatType food area near pub".split()
vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2, **{w: i + 3 for i, w in enumerate(words)}}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                        bos_token="<eos>").save_pretrained(sys.argv[1])
EOF
  MODEL=(backbone=tiny_llama "backbone.name_or_path=$OUT/tok" trainer=cpu)
  CLS_PLAN=smollm2_cls_smoke GEN_PLAN=smollm2_e2e_smoke BENCH_PRESET=cpu_tiny_decoder
  if [[ $PART == webnlg ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg_smoke BENCH_PRESET=""; fi
  PARALLEL=${PARALLEL:-2} GEN_PARALLEL=${GEN_PARALLEL:-1}
else
  PY=python3
  source experiments/lab/device_env.sh  # site packages, env.txt, DEEPPROMPT_OUTPUT_DIR, pack_runs
  if [[ $PART == minilm ]]; then
    MODEL=("$MINILM" trainer=gpu)
    CLS_PLAN=minilm_budget GEN_PLAN="" BENCH_PRESET=""
  else
    bash experiments/lab/smollm2_parts.sh assemble > "$OUT/assemble.log" 2>&1
    rc=$?
    cat "$OUT/assemble.log" | grep -v "it/s\]"
    if (( rc != 0 )); then say "SmolLM2 is not ready (exit $rc): nothing ran"; exit $rc; fi
    MODEL=(backbone=smollm2 "backbone.name_or_path=$SMOLLM2_DIR/hf" trainer=gpu)
    CLS_PLAN=smollm2_cls GEN_PLAN=smollm2_e2e BENCH_PRESET=decoder_step
    if [[ $PART == webnlg ]]; then CLS_PLAN="" GEN_PLAN=smollm2_webnlg BENCH_PRESET=""; fi
  fi
  export PYTHONPATH=$SMOLLM2_DIR/site:$PYTHONPATH  # gguf, rouge-score, nltk (assemble installed them)
  PARALLEL=${PARALLEL:-9} GEN_PARALLEL=${GEN_PARALLEL:-4}
fi
export DEEPPROMPT_DATA_DIR=$PWD/.smoldata
if [[ ! -d .smoldata/rte && -z $GEN_PLAN && -d .device/data/rte ]]; then DEEPPROMPT_DATA_DIR=$PWD/.device/data; fi
NEEDS=rte; [[ $PART == webnlg ]] && NEEDS=webnlg/webnlg_challenge_2017/test
[[ -d $DEEPPROMPT_DATA_DIR/$NEEDS ]] || { echo "no .smoldata/$NEEDS (smollm2_parts.sh split; carry it)"; exit 2; }
LOGS=$DEEPPROMPT_OUTPUT_DIR/logs; mkdir -p "$LOGS"
# run plumbing shared by every job: no checkpoints (a fine-tuned SmolLM2 checkpoint is 1.6 GB), no progress bars
COMMON=("${MODEL[@]}" extras.print_config=false callbacks=none ++trainer.enable_checkpointing=false
  +trainer.enable_progress_bar=false)

if [[ -n $BENCH_PRESET ]]; then
  say "bench $BENCH_PRESET"
  timeout "${BENCH_S:-100}" $PY -m deepprompt.bench.cli --preset "$BENCH_PRESET" --out "$OUT/bench_decoder.json" \
    > "$LOGS/bench_decoder.log" 2>&1
  say "bench exit $?"; grep "^| \|^# lever" "$LOGS/bench_decoder.log" | head -24
fi

budget=$(( $(left) - ${PACK_S:-25} ))
say "queues: ${budget}s (${CLS_PLAN:-no classification} x$PARALLEL${GEN_PLAN:+, $GEN_PLAN x$GEN_PARALLEL})"
if command -v nvidia-smi > /dev/null && [[ ${SMOKE:-0} != 1 ]]; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$LOGS/gpu_util.csv" 2>&1 &
  UTIL=$!
fi
# --steps-per-s: a first guess of one job's optimizer steps per second while the queues share the GPU; each queue
# replaces it by its finished jobs' own rate (a slow quartile) once three have finished
if [[ -n $CLS_PLAN ]]; then
  $PY experiments/lab/gpu_queue.py --plan "$CLS_PLAN" --budget "$budget" --parallel "$PARALLEL" \
    --steps-per-s "${STEPS_PER_S:-6}" --startup-s 30 --root "$DEEPPROMPT_OUTPUT_DIR/queue_cls" "${COMMON[@]}" \
    > "$LOGS/queue_cls.log" 2>&1 &
  CLS=$!
fi
GEN_QUEUE=queue_e2e; [[ $PART == webnlg ]] && GEN_QUEUE=queue_webnlg
if [[ -n $GEN_PLAN ]]; then
  $PY experiments/lab/gpu_queue.py --plan "$GEN_PLAN" --budget "$budget" --parallel "$GEN_PARALLEL" \
    --steps-per-s "${GEN_STEPS_PER_S:-5}" --startup-s 60 --root "$DEEPPROMPT_OUTPUT_DIR/$GEN_QUEUE" "${COMMON[@]}" \
    > "$LOGS/$GEN_QUEUE.log" 2>&1 &
  GEN=$!
  wait $GEN
fi
[[ -n ${CLS:-} ]] && wait $CLS
[[ -n ${UTIL:-} ]] && kill "$UTIL" 2>/dev/null
say "queues done"
{
  echo "SmolLM2 GPU call ($PART), $(date -u +%FT%TZ), deadline ${DEADLINE}s"
  grep -h "^queue " "$LOGS"/queue_*.log
  for q in "$DEEPPROMPT_OUTPUT_DIR"/queue_*/; do
    for m in "$q"*/*/metrics.json; do
      [[ -f $m ]] || continue
      $PY -c "import json, sys; r = json.load(open(sys.argv[1])); b = r.get('best') or {}; print(r.get('status'), r.get('task'), r.get('method'), 'seed', r.get('seed'), {k: round(v, 4) for k, v in b.items() if k.startswith('val/') and isinstance(v, float)})" "$m"
    done
  done
} > "$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"
tar -C "$DEEPPROMPT_OUTPUT_DIR" --exclude='*.ckpt' --exclude='*.safetensors' --exclude='*.pt' \
  -czf "$OUT/runs_$PART.tar.gz" .
say "packed $(du -h "$OUT/runs_$PART.tar.gz" | cut -f1) into $OUT"
ls -la "$OUT"
