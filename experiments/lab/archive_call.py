"""Archive one GPU call's runs into experiments/lab/gpu_runs (not in git)/ (or --dst).

    python experiments/lab/archive_call.py /path/to/unpacked/runs_<plan>.tar.gz/folder [--dst ...]

Copies metrics.json, .hydra/config.yaml, .hydra/overrides.yaml and compression.json/.md of every run folder that
ran in that call: it has .hydra/config.yaml and a full metrics.json, i.e. one with the run's history (the
prior's summaries, copied in by gpu_queue.py --prior, keep only status and best scores). A run already archived with a full metrics.json is left alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

FILES = ("metrics.json", ".hydra/config.yaml", ".hydra/overrides.yaml", "compression.json", "compression.md")


def _full(metrics: Path) -> bool:
    try:
        return "history" in json.loads(metrics.read_text())
    except (OSError, ValueError):
        return False


def archive(src: Path, dst: Path) -> list[Path]:
    done = []
    for config in sorted(src.rglob(".hydra/config.yaml")):
        run = config.parent.parent
        out = dst / run.relative_to(src)
        if not _full(run / "metrics.json") or _full(out / "metrics.json"):
            continue
        (out / ".hydra").mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (run / name).exists():
                shutil.copy2(run / name, out / name)
        done.append(out)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--dst", type=Path, default=Path("experiments/lab/gpu_runs (not in git)"))
    args = parser.parse_args(argv)
    runs = archive(args.src, args.dst)
    print(f"{len(runs)} runs archived into {args.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
