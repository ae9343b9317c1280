"""Reports: collect ``metrics.json`` files, aggregate over seeds, write Markdown, CSV and figures."""

from deepprompt.report.build import Report, build_report
from deepprompt.report.collect import collect_runs
from deepprompt.report.plots import make_plots
from deepprompt.report.table import aggregate, report_markdown

__all__ = ["Report", "aggregate", "build_report", "collect_runs", "make_plots", "report_markdown"]
