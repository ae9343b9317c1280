"""One report from run folders: the CLI and ``notebooks/report.ipynb`` both call :func:`build_report`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deepprompt.report.collect import collect_runs
from deepprompt.report.plots import make_plots
from deepprompt.report.table import aggregate, report_markdown, results_markdown, write_csv

DEFAULT_TITLE = "deepprompt report"


@dataclass
class Report:
    runs: pd.DataFrame  # one row per run
    table: pd.DataFrame  # one row per (task, method, backbone, setting)
    markdown: str  # the whole report.md
    results: str  # the Markdown results table alone
    files: list[Path] = field(default_factory=list)  # report.md, report.csv, then the figures

    @property
    def figures(self) -> list[Path]:
        return [f for f in self.files if f.suffix == ".png"]


def build_report(
    dirs: Sequence[str | Path],
    out: str | Path,
    metric: str = "val/acc",
    title: str = DEFAULT_TITLE,
    ignore: Iterable[str] = (),
) -> Report:
    """Collect the runs below ``dirs``, aggregate them and write report.md, report.csv and the PNGs into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(dirs, ignore=ignore)
    table = aggregate(runs, metric)
    figures = make_plots(table, out, metric)
    markdown = report_markdown(runs, table, [str(d) for d in dirs], metric, title, figures)
    md_path = out / "report.md"
    md_path.write_text(markdown)
    csv_path = write_csv(table, out / "report.csv")
    results = results_markdown(table, metric) if len(table) else ""
    return Report(runs, table, markdown, results, [md_path, csv_path, *figures])
