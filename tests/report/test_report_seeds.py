"""deepprompt.report.seeds: the seed-by-seed comparison the result folders' scripts share."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepprompt.report.seeds import PLUMBING_KEYS, versus


def test_versus_on_known_scores():
    a = pd.Series([86.0, 87.0, 88.0], index=[1, 2, 3])
    b = pd.Series([85.0, 85.5, 86.5], index=[1, 2, 3])
    out = versus(a, b)
    assert out["diff"] == pytest.approx(4 / 3)
    assert out["se"] == pytest.approx(math.sqrt(1 / 3 + (7 / 12) / 3))  # sample variances 1 and 7/12
    assert out["diff_over_se"] == pytest.approx(1.8353, abs=1e-4)
    assert out["welch_p"] == pytest.approx(0.1453, abs=2e-4)  # t 1.835 on 3.74 Welch-Satterthwaite df
    assert out["paired_diffs"] == "+1.00 +1.50 +1.50" and out["seeds_above"] == "3/3"
    assert versus(a, b, digits=1)["paired_diffs"] == "+1.0 +1.5 +1.5"


def test_versus_without_spread_has_no_test():
    same = pd.Series([52.71, 52.71, 52.71], index=[1, 2, 3])
    out = versus(same, same + 1e-9)  # equal scores up to float rounding
    assert out["diff"] == 0.0 and out["se"] == 0.0
    assert math.isnan(out["welch_p"]) and math.isnan(out["diff_over_se"])
    assert out["seeds_above"] == "0/3"


def test_plumbing_keys_are_not_settings():
    assert "method.lr" not in PLUMBING_KEYS and "seed" not in PLUMBING_KEYS
    assert "backbone.name_or_path" in PLUMBING_KEYS and "task_name" in PLUMBING_KEYS
