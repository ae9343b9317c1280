"""`deepprompt-train` end to end on the tiny backbone and fixture data: the files a run must leave behind."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from deepprompt.errors import ConfigError
from deepprompt.train import validate
from tests.conftest import run_dirs
from tests.sweeps import compose_cfg

TINY = ("backbone=tiny", "debug=limit", "extras.print_config=false")


def test_single_run_writes_metrics_checkpoints_and_prompts(tiny_run):
    run = tiny_run.run  # deepprompt-train backbone=tiny debug=limit data=rte method.prompt.length=4
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["task"] == "rte" and summary["method"] == "ptuning_v2" and summary["seed"] == 42
    assert [h["epoch"] for h in summary["history"]] == [0, 1]
    assert summary["last"]["epoch"] == 1
    assert summary["best"]["val/acc"] == max(h["val/acc"] for h in summary["history"])
    # tiny: 2 layers, hidden 32 -> prompts 4 * 2 * 2 * 32 = 512, head 32 * 2 + 2 = 66
    assert summary["params"]["trainable"] == 512 + 66
    assert summary["params"]["prompt_per_layer"] == {"0": 256, "1": 256}  # m * 2 (key, value) * hidden
    assert 0 < summary["params"]["trainable_share"] < 0.01
    assert (run / ".hydra" / "config.yaml").is_file()

    prompts = load_file(run / "prompts" / "best" / "prompts.safetensors")
    assert prompts["prefix"].shape == (4, 2 * 2 * 32)
    assert set(prompts) == {"prefix", "extra.classifier.weight", "extra.classifier.bias"}
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == summary["steps"], (
        "last.ckpt is rewritten after every epoch, not only at a new best"
    )
    # prompt-only checkpoint: no frozen backbone weight in it
    assert not any("word_embeddings" in key for key in ckpt["state_dict"])
    assert set(ckpt["state_dict"]) == {
        "encoder.prompt_encoder.prefix",
        "classifier.weight",
        "classifier.bias",
    }


def test_multirun_sweeps_prompt_length(tiny_sweep):
    # deepprompt-train -m backbone=tiny debug=limit data=cb method.prompt.length=2,4
    assert tiny_sweep.proc.returncode == 0
    summaries = [json.loads((d / "metrics.json").read_text()) for d in tiny_sweep.runs]
    assert sorted(s["config"]["method"]["prompt"]["length"] for s in summaries) == [2, 4]
    assert all(s["status"] == "finished" for s in summaries)
    by_length = {s["config"]["method"]["prompt"]["length"]: s["params"]["trainable"] for s in summaries}
    assert by_length[4] - by_length[2] == 2 * 2 * 2 * 32
    assert all("sweep_dir" in s for s in summaries)


def test_failing_job_is_recorded_and_sweep_goes_on(run_cli, tmp_path):
    proc = run_cli("deepprompt.train", "-m", *TINY, "data=cb", "method.prompt.layers=top-1,[5]")
    assert proc.returncode == 0
    summaries = {
        s["status"]: s
        for s in (json.loads((d / "metrics.json").read_text()) for d in run_dirs(tmp_path / "outputs"))
    }
    assert set(summaries) == {"finished", "failed"}
    assert "out of range" in summaries["failed"]["error"] and "[5]" in summaries["failed"]["error"]


BAD_VALUES = [
    ("method.prompt.length=0", "method.prompt.length must be a positive integer, got 0"),
    ("method.prompt.layers=middle-2", "'all', 'top-k', 'bottom-k'"),
    ("method.lr=-1", "method.lr must be a positive number"),
    ("head.pooling=mean", "head.pooling must be 'pooler', 'cls' or 'last'"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_bad_value_is_refused_by_the_typed_sections(override, message):
    """The checks deepprompt-train runs before anything heavy (``validate``), composed as the command does."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_cfg([*TINY, "data=rte", override]))


@pytest.mark.slow  # the default suite checks this in tests/runs/test_errors.py::test_bad_values_fail_in_one_line_
# before_data_loading[method.lr=nan] (the same check, exit status 1, the whole error line, no traceback)
def test_bad_value_fails_with_one_clear_line(run_cli):
    """From the command line a refused value is one line and exit status 1 (every refusal above takes this way)."""
    proc = run_cli("deepprompt.train", *TINY, "data=rte", "method.lr=-1", check=False)
    assert proc.returncode == 1
    assert "method.lr must be a positive number" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # the default suite checks both in tests/cli/test_first_hour.py::test_mistakes_are_one_line_
# within_5_seconds_offline (method.prompt.lenght=8: the key named; method=lorra: the valid options listed)
def test_unknown_key_and_option_are_named(run_cli):
    proc = run_cli("deepprompt.train", *TINY, "method.prompt.lenght=3", check=False)
    assert proc.returncode != 0 and "lenght" in proc.stderr
    proc = run_cli("deepprompt.train", *TINY, "data=imdb", check=False)
    assert proc.returncode != 0 and "imdb" in proc.stderr and "sst2" in proc.stderr  # lists valid options


def test_eval_reproduces_best_epoch_score(tiny_run_copy, one_thread):
    """deepprompt-eval's evaluate() in this process (the command itself: test_eval_and_compress_use_the_runs_data_
    folder)."""
    from deepprompt.eval import evaluate

    run = tiny_run_copy
    best = json.loads((run / "metrics.json").read_text())["best"]
    evaluate(run, "best")
    evaluated = json.loads((run / "eval_best.json").read_text())
    assert evaluated["val/acc"] == pytest.approx(best["val/acc"], abs=1e-6)
    evaluate(run, str(run / "prompts" / "best"))
    from_prompts = json.loads((run / "eval_best.json").read_text())
    assert from_prompts["val/acc"] == pytest.approx(best["val/acc"], abs=1e-6)
    assert from_prompts["val/loss"] == pytest.approx(best["val/loss"], rel=1e-5)


@pytest.mark.slow  # the default suite checks the same offline files and record in every job of
# test_wandb_multirun_gives_each_job_its_own_run_in_one_group (one launch for both)
def test_wandb_offline_run_files(run_cli, tmp_path):
    run_cli("deepprompt.train", *TINY, "data=rte", "logger=wandb", env={"WANDB_MODE": "offline"})
    [run] = run_dirs(tmp_path / "outputs")
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    [events] = offline[0].glob("*.wandb")
    # offline runs keep config and metrics in the record log (protobuf); its strings are plain bytes
    log = events.read_bytes()
    for expected in (b"ptuning_v2", b"trainable_share", b"val/acc", b"train/loss"):
        assert expected in log, expected


def test_wandb_multirun_gives_each_job_its_own_run_in_one_group(tiny_sweep):
    # deepprompt-train -m backbone=tiny debug=limit data=cb method.prompt.length=2,4 logger=wandb, WANDB_MODE=offline
    runs = tiny_sweep.runs
    assert len(runs) == 2
    groups = set()
    for run in runs:
        [offline] = (run / "wandb").glob("offline-run-*")  # one W&B run per job, in its own folder
        [events] = offline.glob("*.wandb")
        # offline runs keep config and metrics in the record log (protobuf); its strings are plain bytes
        log = events.read_bytes()
        for expected in (b"ptuning_v2", b"trainable_share", b"val/acc", b"train/loss"):
            assert expected in log, expected
        sweep = "/".join(run.parent.parts[-3:]).encode()  # <task_name>/multiruns/<time>
        assert sweep in log
        groups.add(sweep)
    assert len(groups) == 1


def test_eval_with_prompts_of_another_backbone_fails_in_one_line(tiny_run_copy, one_thread):
    """deepprompt-eval's evaluate() in this process; the command prints such a DeepPromptError as its one error line
    (test_first_hour's test_eval_of_a_folder_that_is_no_run_fails_fast)."""
    from deepprompt.errors import DeepPromptError
    from deepprompt.eval import evaluate

    run = tiny_run_copy
    wider = {"backbone": {"config_overrides": {"hidden_size": 64, "intermediate_size": 128}}}
    with pytest.raises(DeepPromptError) as info:
        evaluate(run, str(run / "prompts" / "best"), wider)
    message = str(info.value)
    assert "another shape" in message and "hidden_size: saved 32, backbone 64" in message
    assert "\n" not in message
