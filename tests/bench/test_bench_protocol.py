"""The timing protocol (interleaved rounds, quantiles, GC off, groups, JSON after every group) and the
like-for-like inference comparison (bare vs prompted: same SDPA calls), on CPU."""

from __future__ import annotations

import argparse
import gc
import json

import pytest
import torch

from deepprompt.bench import cli, methods, timing

pytestmark = pytest.mark.usefixtures("one_thread")


def test_summarize_quantiles_and_noise_flag():
    s = timing.summarize([10.0, 11.0, 12.0, 13.0, 14.0])
    assert s["median_ms"] == 12.0 and s["p25_ms"] == 11.0 and s["p75_ms"] == 13.0
    assert s["p10_ms"] == pytest.approx(10.4) and s["p90_ms"] == pytest.approx(13.6)
    assert s["iqr_rel"] == pytest.approx(2 / 12) and s["noisy"] is True
    assert s["times_ms"] == [10.0, 11.0, 12.0, 13.0, 14.0]
    quiet = timing.summarize([10.0, 10.1, 10.0, 9.9, 10.0], host=[9.5] * 5)
    assert quiet["noisy"] is False and quiet["host_bound"] is True
    assert timing.summarize([10.0], host=[1.0])["host_bound"] is False


def test_rounds_alternate_and_split_steps():
    assert timing.round_orders(3, 3) == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    assert timing.split_steps(50, 4) == [13, 13, 12, 12]
    assert timing.split_steps(2, 5) == [1, 1]


def test_interleave_takes_turns_with_gc_off():
    calls, gc_states = [], []

    def step(name):
        def run():
            calls.append(name)
            gc_states.append(gc.isenabled())

        return run

    timers = [timing.StepTimer(step(n), "cpu") for n in "ab"]
    summaries = timing.interleave(timers, steps=4, rounds=2)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a"]  # A B, then B A
    assert [s["steps"] for s in summaries] == [4, 4]
    assert not any(gc_states) and gc.isenabled()


def test_preset_groups_put_bare_and_prompted_inference_together():
    args = cli.build_parser().parse_args(["--preset", "gpu-issue5"])
    groups = cli.plan_groups(cli.plan(args), args.group_size)
    first = {(c.method, c.prompt, c.mode) for c in groups[0]}
    assert all(c.group == ("roberta-large", 128, 0.0) for c in groups[0])
    for row in (
        ("bare", 0, "infer"),
        ("bare_bf16", 0, "infer"),
        ("ptuning_v2_bf16", 100, "infer"),
        ("ptuning_v2_bf16", 16, "train"),
        ("peft_prefix", 16, "train"),
        ("ptuning_v2_naive", 16, "train"),
    ):
        assert row in first
    assert sum(len(g) for g in groups) == len(cli.plan(args))
    assert [len(g) for g in cli.plan_groups(groups[0], 5)][:1] == [5]


def _args(shape_dtype="bf16"):
    return argparse.Namespace(dtype=shape_dtype, device="cpu")


@pytest.mark.parametrize("shape", ["tiny", "tiny-roberta"])
@pytest.mark.parametrize("pair", [("bare_bf16", "ptuning_v2_bf16"), ("bare", "ptuning_v2")])
def test_bare_and_prompted_inference_are_like_for_like(shape, pair):
    """Issue 5's first GPU run had the bare model at 2x the prompted latency; the two rows must make the same
    SDPA calls (dtype, no mask without padding, not causal, no dropout, inference mode) but for the m prefix keys,
    through the same step function, both in eval mode."""
    config = methods.backbone_config(shape)
    ids = torch.randint(3, config.vocab_size, (2, 8))
    signatures, logits = {}, {}
    for method in pair:
        model = methods.build_inference(method, methods.build_backbone(shape), prompt_length=6)
        assert not model.training
        step = cli.infer_step(model, {"input_ids": ids}, _args())
        signatures[method] = cli.attention_signature(step)
        logits[method] = step()
    bare, prompted = (signatures[m] for m in pair)
    assert bare["sdpa_calls"] == prompted["sdpa_calls"] == config.num_hidden_layers
    assert bare["mask"] is None and prompted["mask"] is None
    assert bare["dtype"] == prompted["dtype"] == "bfloat16"
    assert bare["inference_mode"] and not bare["is_causal"] and bare["dropout_p"] == 0.0
    assert bare["kv_len"] == [8] and prompted["kv_len"] == [14]
    assert cli.same_attention(bare, prompted) is True
    assert logits[pair[0]].shape == logits[pair[1]].shape


def test_naive_row_is_not_like_for_like():
    step = cli.infer_step(
        methods.build_inference("ptuning_v2_naive", methods.build_backbone("tiny"), prompt_length=6),
        {"input_ids": torch.randint(3, 100, (2, 8))},
        _args(),
    )
    naive = cli.attention_signature(step)
    assert naive["mask"] is not None  # the materialised (B, 1, n, m + n) mask of the "before" row
    bare = cli.attention_signature(
        cli.infer_step(
            methods.build_inference("bare", methods.build_backbone("tiny")),
            {"input_ids": torch.randint(3, 100, (2, 8))},
            _args(),
        )
    )
    assert cli.same_attention(bare, naive) is False


def test_json_is_written_after_every_group(tmp_path, monkeypatch):
    out = tmp_path / "partial.json"
    real, calls = cli.run_group, []

    def stop_after_first(group, args):
        if calls:
            raise KeyboardInterrupt  # a timeout killing the run mid-way
        calls.append(group)
        return real(group, args)

    monkeypatch.setattr(cli, "run_group", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--preset", "cpu-tiny", "--out", str(out)])
    payload = json.loads(out.read_text())
    assert payload["complete"] is False
    done = [r for r in payload["rows"] if r.get("train_ms") or r.get("infer_ms")]
    assert {(r["method"], r["T"], r["m"]) for r in done} == {(c.method, c.seq, c.prompt) for c in calls[0]}
    assert all(r["train_timing"]["steps"] == 2 for r in done if "train_timing" in r)


def test_inference_rows_of_a_run_are_like_for_like(tmp_path):
    out = tmp_path / "run.json"
    argv = ["--shapes", "tiny-roberta", "--seq", "8", "--methods", "bare_bf16,ptuning_v2_bf16", "--prompt", "",
            "--infer-prompt", "6", "--batch", "2", "--steps", "4", "--rounds", "2", "--warmup", "1",
            "--device", "cpu", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["ptuning_v2_bf16"]["infer_like_for_like"] is True
    assert rows["bare_bf16"]["infer_timing"]["steps"] == 4


def test_render_the_committed_h100_json():
    from pathlib import Path

    from deepprompt.bench import render

    path = Path(__file__).parents[1] / "fixtures/bench/h100_first_bench.json"
    text = render.render(json.loads(path.read_text()))
    assert "NVIDIA H100" in text and "| inference_vs_bare_T128 | 0.525 | <= 1.10 | True |" in text
    assert "% range)" in text  # the first run has min/max only


def test_render_lists_every_lever_against_peft_prefix():
    """The final H100 run's JSON: the targets table skips the ``levers`` block, which gets its own table."""
    from pathlib import Path

    from deepprompt.bench import render

    path = Path(__file__).parents[1] / "fixtures/bench/h100_cuda_graphs_targets.json"
    text = render.render(json.loads(path.read_text()))
    assert "| roberta-large | ptuning_v2_cudagraph | T256_m64 | 33.1 | 2.18 | 1.91 | 41.1 | 54 |" in text
    assert (
        "| roberta-large | mfu_T256_best | 0.216 | >= 0.40 | False |" in text
    )  # eager ours, as the targets read
    assert render.main(["--help"]) == 2
