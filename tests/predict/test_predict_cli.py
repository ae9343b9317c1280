"""`deepprompt-predict` as a command: files and pipes, input order, one-line errors, nothing written half."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from deepprompt.errors import DeepPromptError
from deepprompt.predict import run as predict_run
from tests.predict.helpers import predict_cli


def test_file_in_file_out_in_input_order_with_progress_on_stderr(trained, runs_root, tmp_path):
    run = trained("rte", "data=rte")
    data = runs_root / "data"
    out = tmp_path / "out" / "predictions.jsonl"
    proc = predict_cli(run, f"input={data / 'rte' / 'val.jsonl.gz'}", f"output={out}", data=data)
    assert proc.stdout == ""
    assert "predict" in proc.stderr and "16/16" in proc.stderr  # the progress bar, on stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 17))
    for r in rows:
        assert set(r["probabilities"]) == {"entailment", "not_entailment"}
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_plain_text_from_stdin_to_stdout_from_a_prompt_export(trained, runs_root):
    run = trained("rte", "data=rte")
    proc = predict_cli(
        run,
        f"checkpoint={run / 'prompts' / 'best'}",
        "progress=false",
        data=runs_root / "data",
        stdin="good warm day\tit is good\n\nbad dull\tawful\n",
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 3]  # the blank line is skipped, the numbering kept
    assert all(r["label"] in ("entailment", "not_entailment") for r in rows)
    assert proc.stderr == ""


def test_malformed_input_is_one_line_before_the_checkpoint_loads_and_the_output_stays(
    trained, runs_root, tmp_path, capsys
):
    import shutil

    run = shutil.copytree(trained("rte", "data=rte"), tmp_path / "run")
    (run / "checkpoints" / "best.ckpt").write_bytes(b"not a checkpoint")  # loading it would fail
    data = runs_root / "data"
    bad = tmp_path / "bad.jsonl"
    good = {"premise": "a", "hypothesis": "b"}
    bad.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + json.dumps({"premise": "a"}) + "\n")
    out = tmp_path / "predictions.jsonl"
    out.write_text("earlier results\n")
    proc = predict_cli(run, f"input={bad}", f"output={out}", data=data, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [  # the input's error, not the checkpoint's: read first
        f"deepprompt-predict: error: {bad}:3: field 'hypothesis' is missing or not text: None"
    ]
    assert out.read_text() == "earlier results\n"  # untouched: nothing is written unless all succeeds
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left

    # the same run with a good input reaches the checkpoint: the command's run() in this process (it prints a
    # DeepPromptError as the one error line above), the config keys it reads as conf/predict.yaml sets them
    good_file = tmp_path / "good.jsonl"
    good_file.write_text(json.dumps(good) + "\n")
    cfg = OmegaConf.create(
        {
            "run_dir": str(run),
            "input": str(good_file),
            "output": None,
            "checkpoint": "best",
            "format": "auto",
            "batch_size": None,
            "device": "auto",
            "progress": True,
            "override": None,
        }
    )
    with pytest.raises(DeepPromptError) as info:
        predict_run(cfg)
    assert "best.ckpt" in str(info.value)
    assert capsys.readouterr().out == ""  # nothing on standard output


def test_a_text_line_without_every_field_is_named_by_file_and_line(trained, tmp_path):
    """The plain-text reader of the command (its one-line path: the test above), in this process."""
    from deepprompt.errors import DataFormatError
    from deepprompt.inference.inputs import read_examples
    from deepprompt.predict import open_run

    _, runner = open_run(trained("rte", "data=rte"))
    text = tmp_path / "pairs.txt"
    text.write_text("a\tb\nonly one field\n")
    with pytest.raises(DataFormatError) as info:
        read_examples(str(text), runner)
    assert f"{text}:2: expected 2 tab-separated field(s)" in str(info.value)
