#!/usr/bin/env bash
# Rebuild .device/ (git-ignored) from nothing: what a GPU call carries besides the tree (see README.md here).
#   bash experiments/lab/build_device.sh
# - ../shared/tools/device-pack: hydra, omegaconf, datasets, seqeval, transformers 5.23 wheels, MiniLM (fp16), data;
# - peft 0.21.2 (the version the CPU tests use; the GPU image has an older one);
# - huggingface_hub 2.x's HTTP stack (httpx2, httpcore2, truststore, h11, anyio, idna, sniffio, click): without it
#   transformers 5.23 fails at import on the GPU image ("No module named 'httpx2'", 2026-12-03);
# - cloudpickle: hydra/launcher=parallel sends each job to its forked process with it (the GPU image lacks it);
# - pytest (+ pluggy, iniconfig): the GPU-only tests (tests/prompts/test_cuda_graphs.py) run on the device;
# - deepprompt-serve's stack (serve_wheels.sh: fastapi, starlette, pydantic + pydantic-core, uvicorn, for Python
#   3.12 manylinux x86_64), ~2.1 MiB once xz-packed;
# - MiniLM's weights xz-compressed and the wheels repacked as one xz archive (pack_device_site.sh), so that the
#   tree plus .device stays under the call's 64 MiB.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
rm -rf .device
../shared/tools/device-pack --with-transformers --data sst2 --data rte --data boolq --data cb --data conll2003 \
  --data squad_v1 2>&1 | grep -v "^WARNING" | tail -3
python3 -m pip download -q --no-deps -d .device/wheels peft==0.21.2 httpx2==2.16.2 httpcore2==2.16.2 \
  truststore h11 anyio idna sniffio click pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 cloudpickle 2>&1 | grep -v "^WARNING" || true
bash experiments/lab/serve_wheels.sh
xz -9 -T2 .device/minilm/model.safetensors
bash experiments/lab/pack_device_site.sh
du -sb .device | awk '{printf ".device: %.1f MiB (keep it under ~57 MiB: the call carries the tree too, 64 MiB in all)\n", $1 / 2^20}'
git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "tracked files: %.1f MiB\n", $1 / 2^20}'
