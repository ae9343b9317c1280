"""One report from run folders: the CLI and ``notebooks/report.ipynb`` both call :func:`build_report`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deepprompt.report.collect import collect_runs
from deepprompt.report.plots import make_plots
from deepprompt.report.table import aggregate, report_markdown, results_markdown, write_csv
from deepprompt.report.tuned import tuned_markdown, tuned_table

DEFAULT_TITLE = "deepprompt report"


@dataclass
class Report:
    runs: pd.DataFrame  # one row per run
    table: pd.DataFrame  # one row per (task, method, backbone, setting)
    markdown: str  # the whole report.md
    results: str  # the Markdown results table alone
    files: list[Path] = field(default_factory=list)  # report.md, report.csv, [tuned.csv,] then the figures
    tuned: pd.DataFrame | None = (
        None  # with ``tuned=KEY``: one row per (task, method, backbone, setting - KEY)
    )

    @property
    def figures(self) -> list[Path]:
        return [f for f in self.files if f.suffix == ".png"]


def build_report(
    dirs: Sequence[str | Path],
    out: str | Path,
    metric: str = "val/acc",
    title: str = DEFAULT_TITLE,
    ignore: Iterable[str] = (),
    tuned: str | None = None,
    reference: str | None = None,
) -> Report:
    """Collect the runs below ``dirs``, aggregate them and write report.md, report.csv and the PNGs into ``out``.

    ``tuned``: a setting key (e.g. ``lr``) chosen per task, method and setting on seed 1; adds the section "Tuned
    comparison" and tuned.csv (see :mod:`deepprompt.report.tuned`). ``reference``: a method the tuned comparison
    shows differences to.
    """
    if reference and not tuned:
        raise ValueError("reference needs tuned (the key chosen on seed 1, e.g. lr)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(dirs, ignore=ignore)
    table = aggregate(runs, metric)
    tuned_rows, section, tuned_files = None, None, []
    if tuned:
        tuned_rows = tuned_table(runs, tuned, metric, reference)
        section = tuned_markdown(tuned_rows, metric, tuned, reference)
        tuned_files = [write_csv(tuned_rows, out / "tuned.csv")]
    figures = make_plots(table, out, metric, tuned=tuned_rows, tuned_key=tuned or "lr")
    markdown = report_markdown(runs, table, [str(d) for d in dirs], metric, title, figures, section)
    md_path = out / "report.md"
    md_path.write_text(markdown)
    csv_path = write_csv(table, out / "report.csv")
    results = results_markdown(table, metric) if len(table) else ""
    return Report(runs, table, markdown, results, [md_path, csv_path, *tuned_files, *figures], tuned_rows)
