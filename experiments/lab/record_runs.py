"""A GPU call's run folders -> one compact record (runs.jsonl format, `deepprompt.report.collect.write_record`)
that is free of the machines' paths, with the GPU each run used:

    python experiments/lab/record_runs.py <run folders> <record.jsonl>

- ``run``: ``runs/<path below the given folder>`` (``runs/method_comparison_smollm2/sst2_finetune_s3``), not where
  this machine unpacked the folders.
- Paths in the config and overrides keep the folders as the calls named them: ``.smoldata``, ``.device/...`` (data,
  MiniLM's weights), ``$TMPDIR/smollm2/hf`` (SmolLM2's converted weights), whatever absolute prefix the machine had.
- ``gpu``: the CUDA device the run's ``train.log`` names (Lightning's tensor-core notice), when it names one; the
  reports print it in their header (``deepprompt.report.collect.HARDWARE_KEYS``).

A string that still holds an absolute path below one of the machines' roots (``MACHINE_ROOTS``) after this is an
error: the record is not written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from deepprompt.report.collect import write_record

# a path (absolute, or relative through ../) up to the data or device folder -> that folder
_DATA_DIRS = re.compile(r"[^\s\"'=,;:]*/(\.smoldata|\.device)(?=/|$)")
# the SmolLM2 weights a call converts under its $TMPDIR
_SMOLLM2 = re.compile(r"[^\s\"'=,;:]*/smollm2/hf(?=/|$)")
# the top folders of the machines' paths (the GPU machines' and this one's): none may stay in a record
MACHINE_ROOTS = ("work", "tmp", "root", "home")
_GPU = re.compile(r"CUDA device \('([^']+)'\)")


def clean(value: Any) -> Any:
    """``value`` with every string's machine path prefixes removed (recursively through lists and dicts)."""
    if isinstance(value, str):
        return _SMOLLM2.sub("$TMPDIR/smollm2/hf", _DATA_DIRS.sub(r"\1", value))
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


def leaks(value: Any, roots: tuple[str, ...] = MACHINE_ROOTS) -> list[str]:
    """The strings of ``value`` that still name a path below one of ``roots``."""
    if isinstance(value, str):
        machine = re.compile(r"(?<![\w.$])/(" + "|".join(map(re.escape, roots)) + r")(/|$)")
        return [value] if machine.search(value) else []
    if isinstance(value, list):
        return [s for v in value for s in leaks(v, roots)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in leaks(v, roots)]
    return []


def gpu_of(run_dir: Path) -> str | None:
    log = run_dir / "train.log"
    if not log.is_file():
        return None
    found = _GPU.search(log.read_text(errors="replace"))
    return found.group(1) if found else None


def record(runs: Path, out: Path) -> Path:
    """Write the runs below ``runs`` to ``out``, cleaned; ``runs`` may also be a record (its lines are kept)."""
    write_record([runs], out)
    base = runs.resolve() if runs.is_dir() else None
    lines = []
    for text in out.read_text().splitlines():
        line = json.loads(text)
        run_dir = (out.parent / line["run"]).resolve()
        if base is not None:
            line["run"] = "runs/" + Path(os.path.relpath(run_dir, base)).as_posix()
            gpu = gpu_of(run_dir)
            if gpu and not line.get("gpu"):
                line["gpu"] = gpu
        line = clean(line)
        bad = leaks(line, MACHINE_ROOTS)
        if bad:
            out.unlink()
            raise SystemExit(f"{line['run']}: machine paths left in the record, not written: {bad[:5]}")
        lines.append(json.dumps(line))
    out.write_text("".join(line + "\n" for line in lines))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 64
    print("wrote", record(Path(args[0]), Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
