"""``deepprompt-report``: tables and figures from run and sweep folders.

deepprompt-report outputs/train/multiruns/2025-01-01_12-00-00 --out reports/length
deepprompt-report outputs/ --out reports/all --metric val/f1_macro --title "CB, all methods"
deepprompt-report outputs/methods --out reports/methods --tuned lr --reference finetune
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepprompt.report.build import DEFAULT_TITLE, build_report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deepprompt-report",
        description="Aggregate every metrics.json below DIR... (mean ± std over seeds per task, method and setting)"
        " into report.md, report.csv and PNG figures.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run or sweep folders, searched recursively")
    parser.add_argument(
        "--out", required=True, metavar="OUTDIR", help="where report.md, report.csv and PNGs go"
    )
    parser.add_argument("--metric", default="val/acc", help="validation metric to report (default: val/acc)")
    parser.add_argument("--title", default=DEFAULT_TITLE, help="title of report.md")
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="an override key that is not part of a setting (repeatable), e.g. trainer.devices",
    )
    parser.add_argument(
        "--tuned",
        metavar="KEY",
        help="add the section 'Tuned comparison' and tuned.csv: per task, method and setting without KEY (e.g. lr),"
        " the KEY value whose seed-1 run scored best at its best epoch (ties: the lower value), then mean ± std"
        " over the seeds at that value, as a method x task matrix",
    )
    parser.add_argument(
        "--reference",
        metavar="METHOD",
        help="with --tuned: show each cell's difference of means to METHOD on that task (e.g. finetune)"
        " and a column 'mean over tasks'",
    )
    args = parser.parse_args(argv)
    if args.reference and not args.tuned:
        parser.error("--reference needs --tuned KEY")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = build_report(
            args.dirs,
            args.out,
            metric=args.metric,
            title=args.title,
            ignore=args.ignore,
            tuned=args.tuned,
            reference=args.reference,
        )
    except FileNotFoundError as err:
        print(f"deepprompt-report: error: {err}", file=sys.stderr)
        return 2
    print(report.markdown, end="")
    if report.runs.empty:
        print("deepprompt-report: no metrics.json found", file=sys.stderr)
        return 1
    print(f"\nwrote {len(report.files)} files to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
