"""A run's evaluation history (one dict of metrics per evaluation epoch) and its best and last entries."""

from __future__ import annotations


def best_and_last(history: list[dict[str, float]], monitor: str, mode: str = "max") -> tuple[dict, dict]:
    if not history:
        return {}, {}
    pick = max if mode == "max" else min
    best = pick(history, key=lambda entry: entry[monitor])  # first epoch wins ties
    return dict(best), dict(history[-1])
