#!/usr/bin/env bash
# Repack .device/wheels/*.whl (from ../shared/tools/device-pack) into one .device/site.tar.xz: the unpacked
# packages as `pip install --target` would lay them out, xz-compressed as one solid archive (transformers' wheel:
# 13.3 MB as a zip, 3.7 MB this way), so that more data fits in the device call's 64 MiB tree. device_env.sh
# unpacks it into $TMPDIR/site when it is there, else installs the wheels. The wheels move to "${DEVCACHE:-../devcache}/wheels".
# Run again after adding wheels (serve_wheels.sh): they are added to the archive's contents.
#   bash experiments/lab/pack_device_site.sh
set -euo pipefail
tmp=$(mktemp -d)
# an existing archive is the starting point: wheels added later (serve_wheels.sh) join what it holds
[[ -f .device/site.tar.xz ]] && tar -C "$tmp" -xJf .device/site.tar.xz
for whl in .device/wheels/*.whl; do (cd "$tmp" && unzip -qo "$OLDPWD/$whl"); done
tar -C "$tmp" -cf - . | xz -9e -T2 > .device/site.tar.xz.new && mv .device/site.tar.xz.new .device/site.tar.xz
rm -rf "$tmp"
mkdir -p "${DEVCACHE:-../devcache}/wheels" && mv .device/wheels/*.whl "${DEVCACHE:-../devcache}/wheels"/ && rmdir .device/wheels
ls -la .device/site.tar.xz
