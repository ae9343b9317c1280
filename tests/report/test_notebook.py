"""notebooks/report.ipynb, executed on the synthetic tree, writes the same report as the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from tests.report.synthetic import TITLE

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "report.ipynb"


def _kernel(tmp_path: Path, monkeypatch) -> str:
    """The python3 kernel; where none is installed, one running this interpreter (a private JUPYTER_PATH)."""
    try:
        KernelSpecManager().get_kernel_spec("python3")
        return "python3"
    except NoSuchKernel:
        spec = tmp_path / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
        )
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
        return "python3"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "RUN_DIRS" in code[0].source and "OUT" in code[0].source


def test_notebook_matches_cli(synthetic_tree, cli_report, tmp_path, monkeypatch):
    cli_out, nb_out = cli_report, tmp_path / "nb"
    monkeypatch.setenv("DEEPPROMPT_REPORT_TITLE", TITLE)
    monkeypatch.setenv("DEEPPROMPT_REPORT_DIRS", os.pathsep.join(["", str(synthetic_tree)]))
    monkeypatch.setenv("DEEPPROMPT_REPORT_OUT", str(nb_out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=_kernel(tmp_path, monkeypatch),
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except Exception as err:  # a kernel that cannot start is an environment problem, shown as such
        if "kernel" in type(err).__name__.lower() and "died" in str(err).lower():
            pytest.fail(f"the notebook kernel did not start: {err}")
        raise
    assert (nb_out / "report.csv").read_bytes() == (cli_out / "report.csv").read_bytes()
    assert (nb_out / "report.md").read_text() == (cli_out / "report.md").read_text()
    assert sorted(p.name for p in nb_out.glob("*.png")) == sorted(p.name for p in cli_out.glob("*.png"))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(list(cli_out.glob("*.png")))
