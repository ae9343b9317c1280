"""Two settings compared over seeds: difference of means, its standard error, Welch's p and the per-seed
differences. Shared by the result folders' scripts (experiments/results/*/*.py) that test a claim seed by seed.

Run scripts' ignore keys live here too: the overrides every GPU queue job carries that are plumbing, not a
setting (``PLUMBING_KEYS``, the same list the result folders' COMMAND files pass to ``deepprompt-report``).
"""

from __future__ import annotations

import math
import warnings

import pandas as pd

PLUMBING_KEYS = (
    "backbone.name_or_path",
    "data.num_workers",
    "trainer",
    "trainer.enable_progress_bar",
    "callbacks.nan_guard.check_every_n_steps",
    "callbacks.step_checkpoint.every_n_train_steps",
    "data.batch_size",
    "trainer.max_epochs",
    "optim.warmup_ratio",
    "task_name",
)


def welch_p(a: pd.Series, b: pd.Series) -> float:
    """Welch's two-sided t-test p (unequal variances); NaN where both groups have no spread."""
    from scipy import stats  # scipy comes with seqeval's scikit-learn; only these scripts need it

    with warnings.catch_warnings():  # a group of equal scores (e.g. all at the majority class) is fine here
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def versus(a: pd.Series, b: pd.Series, digits: int = 2) -> dict:
    """a - b over seeds (both indexed by seed): difference of means, SE, diff/SE, Welch p, the per-seed
    differences (same seed number, ``digits`` decimals) and on how many seeds a is higher."""
    diff = a.mean() - b.mean()
    diff = 0.0 if abs(diff) < 1e-6 else diff  # equal counts of correct examples, up to float32 rounding
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    paired = (a - b).dropna()
    return {
        "diff": diff,
        "se": se,
        "diff_over_se": diff / se if se > 0 else math.nan,
        "welch_p": welch_p(a, b) if se > 0 else math.nan,
        "paired_diffs": " ".join(f"{d:+.{digits}f}" for d in paired),
        "seeds_above": f"{int((paired > 0).sum())}/{len(paired)}",
    }
