"""A run relaunched into an existing folder continues that run, and only that run.

Hydra writes ``<run_dir>/.hydra/`` (config, overrides) before deepprompt's code runs, so that record alone
cannot tell a relaunch with the same configuration from one with another. A run keeps its own copy of the
``.hydra`` files in ``<run_dir>/.deepprompt/hydra/``, taken at its first start. At a relaunch the newly
composed config is compared with that copy:

- same configuration up to :data:`MAY_CHANGE_ON_RESUME`: the run continues (an unfinished run takes the new
  values of those keys into its record; a finished run is skipped and its record is put back as it was);
- otherwise the relaunch is refused with one line naming the differing keys, and the folder's ``.hydra``
  record is put back as it was.

In a sweep, a job is matched to earlier results by its configuration, not by its job number: a job whose
configuration already finished in another job folder of the same sweep is skipped; a job whose folder holds
another configuration is refused (re-running a sweep folder with other values never files old results under
new configs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from deepprompt.errors import DeepPromptError

SNAPSHOT = Path(".deepprompt") / "hydra"
HYDRA = ".hydra"
# Keys a relaunch may change without making it another run: what the training does not depend on (where
# files live, logging, display, worker count: resume is exact for any) and the length of the run.
MAY_CHANGE_ON_RESUME = (
    "trainer.max_epochs",  # extend (or shorten) a run
    "ckpt_path",
    "resume",
    "logger",  # add or drop W&B / TensorBoard
    "extras",  # config printing
    "tags",
    "paths",  # where the data and outputs live on this machine
    "data.data_dir",
    "data.num_workers",
    "callbacks.rich_progress_bar",
)


class ConfigMismatch(DeepPromptError):
    """A relaunch into a run folder with another configuration than the run's own."""


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out |= _flat(value, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: tree}


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in MAY_CHANGE_ON_RESUME)


def differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configs, less :data:`MAY_CHANGE_ON_RESUME`."""
    a, b = _flat(old), _flat(new)
    return sorted(
        k for k in a.keys() | b.keys() if not _ignored(k) and a.get(k, "<unset>") != b.get(k, "<unset>")
    )


def _load(path: Path) -> dict[str, Any] | None:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    return _load(run_dir / SNAPSHOT / "config.yaml")


def _copy_tree(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def snapshot(run_dir: Path) -> None:
    """Make the run's own copy of ``.hydra`` (first start, or an accepted relaunch of an unfinished run)."""
    if (run_dir / HYDRA).is_dir():
        _copy_tree(run_dir / HYDRA, run_dir / SNAPSHOT)


def restore(run_dir: Path) -> None:
    """Put the run's ``.hydra`` record back as it was before this relaunch (Hydra rewrote it)."""
    if (run_dir / SNAPSHOT).is_dir():
        _copy_tree(run_dir / SNAPSHOT, run_dir / HYDRA)


def _legacy_overrides(run_dir: Path) -> list[str] | None:
    """The overrides a run recorded in ``metrics.json`` before run folders kept a config copy."""
    try:
        summary = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    overrides = summary.get("overrides") if isinstance(summary, dict) else None
    return [str(o) for o in overrides] if isinstance(overrides, list) else None


def _override_keys(overrides: list[str]) -> dict[str, str]:
    pairs = (o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    return {k: v for k, v in pairs if not _ignored(k) and not k.startswith("hydra.")}


def check(run_dir: Path, config: dict[str, Any], overrides: list[str]) -> None:
    """Refuse a relaunch whose config differs from the run's own; record the config at a first start."""
    old = stored_config(run_dir)
    if old is None:
        previous = _legacy_overrides(run_dir)
        if previous is not None:  # a folder from before config copies: compare the recorded overrides
            a, b = _override_keys(previous), _override_keys(overrides)
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            if keys:
                raise ConfigMismatch(_refusal(run_dir, keys, _flat_overrides(a), _flat_overrides(b)))
        snapshot(run_dir)
        return
    keys = differing_keys(old, config)
    if keys:
        restore(run_dir)
        raise ConfigMismatch(_refusal(run_dir, keys, _flat(old), _flat(config)))


def _flat_overrides(pairs: dict[str, str]) -> dict[str, Any]:
    return dict(pairs)


def _refusal(run_dir: Path, keys: list[str], old: dict[str, Any], new: dict[str, Any]) -> str:
    shown = ", ".join(f"{k} ({old.get(k, '<unset>')} -> {new.get(k, '<unset>')})" for k in keys[:6])
    more = f" and {len(keys) - 6} more" if len(keys) > 6 else ""
    return (
        f"{run_dir} holds a run with another configuration: {shown}{more}; relaunch with its own values "
        "to resume it, or use a new folder (hydra.run.dir / hydra.sweep.dir)"
    )


def finished_sibling(run_dir: Path, sweep_dir: Path, config: dict[str, Any], finished) -> Path | None:
    """Another job folder of the sweep that finished this very configuration (``finished(dir)`` says which)."""
    for other in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p != run_dir):
        old = stored_config(other)
        if old is not None and not differing_keys(old, config) and finished(other):
            return other
    return None
