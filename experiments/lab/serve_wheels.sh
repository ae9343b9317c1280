#!/usr/bin/env bash
# deepprompt-serve's stack as wheels in .device/wheels, for the device's Python 3.12 on manylinux x86_64 (the GPU
# image has anyio, h11, httpx and click, none of fastapi, starlette, pydantic, pydantic-core, uvicorn): the
# versions the CPU tests use. pydantic-core is compiled, hence the platform flags. ~2.1 MiB once xz-packed.
# build_device.sh calls it; to add the stack to an existing .device without rebuilding it:
#   bash experiments/lab/serve_wheels.sh && bash experiments/lab/pack_device_site.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
python3 -m pip download -q --no-deps -d .device/wheels --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 \
  uvicorn==0.55.0 annotated-types==0.8.0 annotated-doc==0.0.7 typing-inspection==0.4.5 typing-extensions==4.16.0 opentelemetry-api==1.45.2 \
  2>&1 | grep -v "^WARNING" || true
ls .device/wheels | grep -c whl | xargs echo "wheels in .device/wheels:"
