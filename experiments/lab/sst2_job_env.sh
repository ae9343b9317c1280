# Sourced by the start-up scripts (startup_gpu.sh, parallel_launcher_gpu.sh) after they set NAME: the checks and
# environment of a MiniLM SST-2 job on the GPU machine. Sets OUT (default ${TMPDIR:-/tmp}/NAME), RUNS (a fresh
# folder that is also DEEPPROMPT_OUTPUT_DIR, with its own empty DEEPPROMPT_CACHE_DIR: the first job builds the
# tokenized data), TRAINER, BACKBONE, STEPS and ARGS (the job's overrides, with MINILM and EXTRA).
export OUT=${OUT:-${TMPDIR:-/tmp}/$NAME}
mkdir -p "$OUT"
if [[ -z ${DEEPPROMPT_DATA_DIR:-} ]]; then
  echo "DEEPPROMPT_DATA_DIR is not set (source experiments/lab/device_env.sh first)"; exit 1
fi
[[ -d $DEEPPROMPT_DATA_DIR/sst2 ]] || { echo "DEEPPROMPT_DATA_DIR=$DEEPPROMPT_DATA_DIR has no sst2/"; exit 1; }
export PYTHONPATH=${PYTHONPATH:-$PWD/src} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline \
  TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
TRAINER=${TRAINER:-gpu} BACKBONE=${BACKBONE:-minilm} STEPS=${STEPS:-100}
RUNS=${DEEPPROMPT_OUTPUT_DIR:-${TMPDIR:-/tmp}/dp_out}/$NAME
rm -rf "$RUNS" && mkdir -p "$RUNS"
export DEEPPROMPT_OUTPUT_DIR=$RUNS DEEPPROMPT_CACHE_DIR=$RUNS/cache
# shellcheck disable=SC2206  # MINILM, EXTRA: overrides split on spaces
ARGS=("trainer=$TRAINER" data=sst2 "backbone=$BACKBONE" ${MINILM:-} "+trainer.max_steps=$STEPS"
      extras.print_config=false ${EXTRA:-})
