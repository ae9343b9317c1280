"""The composed config as a rich tree, printed at the start of a run and saved beside it."""

from __future__ import annotations

import sys
from pathlib import Path

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

ORDER = ("data", "backbone", "method", "head", "optim", "trainer", "callbacks", "logger", "paths", "extras")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in ORDER if k in cfg] + [k for k in cfg if k not in ORDER]
    for key in keys:
        branch = tree.add(key, style="bold", guide_style="dim")
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark"))
    # off a terminal rich would cut lines at 80 characters (run folder paths among them)
    Console(width=None if sys.stdout.isatty() else 160).print(tree)
    if save_to is not None:
        with open(save_to, "w") as f:
            Console(file=f, width=120).print(tree)
