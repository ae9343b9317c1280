"""Checks that run before anything heavy is imported: is the data there, is the backbone there, is there a network.

Each failure is one :class:`ResourceError` line that names the fix, within a second or two, instead of a
library's retry loop (30-50 s offline) ending in a traceback that blames another part of the config.

Whether the Hugging Face Hub can be reached is decided once, and only when something must come from it
(data without ``data.data_dir``, a backbone that is neither a local folder nor in the local cache):
``HF_HUB_OFFLINE=1`` says offline; otherwise one TCP connection to the Hub (or the HTTPS proxy) is tried
for at most :data:`PROBE_TIMEOUT_S`. Offline, ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``/``TRANSFORMERS_OFFLINE``
are set for the rest of the process, so that no library retries.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deepprompt.errors import DeepPromptError

PROBE_TIMEOUT_S = 2.0
_TRUE = ("1", "true", "yes", "on")
_SCHEME = re.compile(r"^[a-z][a-z0-9_]+:(?![\\/])")
_hub_reachable: bool | None = None


class ResourceError(DeepPromptError, FileNotFoundError):
    """Data, a backbone or the network that a run needs is not there; the message says what to set."""


def _env_offline() -> bool:
    return any(
        os.environ.get(name, "").lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _probe_target() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable() -> bool:
    """Whether the Hub can be reached; decided once per process (see the module docstring)."""
    global _hub_reachable
    if _hub_reachable is None:
        _hub_reachable = False if _env_offline() else _connects(*_probe_target())
        if not _hub_reachable:
            for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
                os.environ[name] = "1"
    return _hub_reachable


def offline_reason() -> str:
    """Why the Hub is out of reach, for the messages: the environment said so, or the connection failed."""
    names = [n for n in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE") if _set_by_user(n)]
    return f"{names[0]}=1 is set" if names else "the Hugging Face Hub cannot be reached"


_user_env = {
    n: os.environ.get(n, "") for n in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
}


def _set_by_user(name: str) -> bool:
    return _user_env.get(name, "").lower() in _TRUE


def _connects(host: str, port: int) -> bool:
    """One TCP connection, name lookup included, within PROBE_TIMEOUT_S (a thread: getaddrinfo has no timeout)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 0.5)
    return bool(result and result[0])


# -- backbone ---------------------------------------------------------------------------------------------
def looks_like_path(name: str) -> bool:
    """A filesystem path rather than a Hub id ('org/name'): absolute, ~, ./ or ../, or more than one '/'."""
    return name.startswith(("/", "~", "./", "../", ".\\")) or name.count("/") > 1 or "\\" in name


def hub_cached(repo_id: str) -> bool:
    """Whether ``repo_id`` has a snapshot in the local Hugging Face cache (so it loads offline)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "hub"
    )
    snapshots = Path(cache) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def check_backbone(backbone: Any, key: str = "backbone.name_or_path") -> None:
    name = str(backbone.get("name_or_path"))
    label = backbone.get("name") or name
    if _SCHEME.match(name):  # another loader's address (gguf:<package>/<file>): that loader checks it
        return
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists() or looks_like_path(name):
        what = "is a file, not a model folder" if path.exists() else "does not exist"
        raise ResourceError(
            f"{key}={name}: {what}; point it at a folder with config.json and the weights "
            "(e.g. saved with save_pretrained), or at a Hugging Face Hub id"
        )
    if hub_cached(name) or hub_reachable():
        return
    raise ResourceError(
        f"backbone {label} ({name}) comes from the Hugging Face Hub, which is offline ({offline_reason()}), "
        f"and it is not in the local cache: download it where there is a network (`hf download {name} --local-dir "
        f"<folder>`), copy the folder here and set {key}=<folder>"
    )


# -- data -------------------------------------------------------------------------------------------------
def expected_files(data: Any) -> list[str]:
    """The files a data config reads under ``data_dir`` (as ``<folder>/<file>``; ``.gz`` also accepted);
    entries with a note in parentheses are hints, not checked."""
    from deepprompt.tasks.classification.tasks import TASKS  # a light module (no torch)

    task = data.get("task")
    folder = data.get("folder") or task
    if data.get("tasks"):  # a joint multi-task run
        return [f for name in data.get("tasks") for f in expected_files({"task": name})]
    if task in TASKS:
        spec = TASKS[task]
        return [_join(spec.local_folder, spec.local_files[split]) for split in ("train", "validation")]
    files = data.get("files")  # families that name their files in the config (NER)
    if files:
        return [_join(folder, files[split]) for split in ("train", "validation") if files.get(split)]
    named = [data.get(key) for key in ("train_file", "validation_file") if data.get(key)]
    if named:  # SQuAD: the train file may be cut from the dev file (split_by_article)
        return [f"{folder}/{name} (if used)" for name in named]
    return [f"{folder}/ (the files named in the data config's header)"] if folder else []


def _join(folder: str, name: str) -> str:
    """``folder/name``, or ``name`` itself when it is an absolute path (read where it points)."""
    return Path(folder, name).as_posix()


def check_data(data: Any, group: str = "data") -> None:
    data_dir = data.get("data_dir")
    if "data_dir" not in data:  # a data config that reads no benchmark folder
        return
    files = expected_files(data)
    expected = ", ".join(f if "(" in f else f"{f}[.gz]" for f in files)
    if data_dir is None:
        if hub_reachable():
            return
        raise ResourceError(
            f"no local data for {group}={data.get('task')} and the Hub is offline ({offline_reason()}): set DEEPPROMPT_DATA_DIR or data.data_dir to the benchmark folder; expected files: "
            f"{expected}"
        )
    root = Path(str(data_dir)).expanduser()
    fix = f"set DEEPPROMPT_DATA_DIR or data.data_dir to the benchmark folder; expected files: {expected}"
    if not root.is_dir():
        raise ResourceError(f"the data directory {data_dir} (data.data_dir) does not exist: {fix}")
    from deepprompt.data.readers import check_inside  # no torch

    for f in files:
        if "(" not in f:
            check_inside(data_dir, f)
    missing = [
        f for f in files if "(" not in f and not (root / f).exists() and not (root / f"{f}.gz").exists()
    ]
    if missing:
        raise ResourceError(f"no data file for {', '.join(missing)} (or .gz) in {data_dir}: {fix}")


def check_run_resources(cfg: Any) -> None:
    """Data first (the most common omission), then the backbone; for train, eval and compress alike."""
    data = cfg.get("data")
    if data is not None and data.get("_target_"):
        check_data(data)
    backbone = cfg.get("backbone")
    if backbone is not None and backbone.get("name_or_path"):
        check_backbone(backbone)
