"""deepprompt-bench on CPU with the tiny shape: one row per case, positive times, the FLOP model by hand."""

from __future__ import annotations

import json

import pytest
import torch

from deepprompt.bench import cli, flops, inputs, models, plan, results, shapes

SEQS, PROMPTS, INFER_PROMPT, BATCH = (8, 16), (4,), 6, 2
ORIGINAL_METHODS = ("ptuning_v2", "prefix", "lora", "finetune", "linear_probe")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    argv = [
        "--shapes",
        "tiny",
        "--batch",
        str(BATCH),
        "--seq",
        ",".join(map(str, SEQS)),
        "--prompt",
        ",".join(map(str, PROMPTS)),
        "--methods",
        ",".join(ORIGINAL_METHODS),
        "--dtype",
        "bf16",
        "--steps",
        "3",
        "--warmup",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--infer-prompt",
        str(INFER_PROMPT),
        "--out",
        str(out),
    ]
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert cli.main(argv) == 0
    return json.loads(out.read_text()), buffer.getvalue()


def test_one_row_per_case_with_positive_times(run):
    payload, _ = run
    rows = {(r["method"], r["T"], r["m"]): r for r in payload["rows"]}
    expected = set()
    for t in SEQS:
        expected |= {(m, t, p) for m in ("ptuning_v2", "prefix") for p in PROMPTS}
        expected |= {
            ("lora", t, 0),
            ("finetune", t, 0),
            ("linear_probe", t, 0),
            ("ptuning_v2", t, INFER_PROMPT),
        }
    assert set(rows) == expected
    assert len(payload["rows"]) == len(expected)
    for key, row in rows.items():
        assert "error" not in row, (key, row.get("error"))
        assert row["shape"] == "tiny"
        if key[0] == "linear_probe" or key[2] == INFER_PROMPT:
            assert row["infer_ms"] > 0
        else:
            assert row["train_ms"] > 0 and row["samples_per_s"] > 0 and row["mfu"] > 0
            assert row["train_flops"] == flops.train_step_flops(
                shapes.backbone_config("tiny"), key[0], BATCH, key[1], key[2]
            )
    env = payload["environment"]
    assert env["torch"] and env["transformers"] and env["command"].startswith("deepprompt-bench")
    assert env["matmul_tflops"]["bf16"] > 0


def test_table_prints(run):
    _, stdout = run
    lines = stdout.strip().splitlines()
    assert lines[0].startswith(
        "| method | shape | T | m | train ms/step | samples/s | peak GiB | MFU % | inference ms"
    )
    assert any(line.startswith("| ptuning_v2 | tiny | 8 | 4 |") for line in lines)
    assert any(line.startswith("| linear_probe | tiny | 16 | 0 |") for line in lines)


def test_flop_formula_by_hand():
    # tiny: L=2, h=32, I=64, C=2; B=2, T=8, m=4 on both layers.
    config = shapes.backbone_config("tiny")
    n = 2 * (4 * 32 * 32 + 2 * 32 * 64)  # 16_384 matmul weights per token
    assert flops.dense_params(config) == n == 16_384
    attn_forward = 2 * 2 * 2 * 8 * (8 + 4) * 32 * 2  # 2*2 * L * T * (T+m) * h, times B = 49_152
    head = 32 * 32 + 32 * 2  # 1_088
    frozen = 4 * n * 2 * 8 + 3 * attn_forward + 6 * head * 2
    assert frozen == 1_209_088
    assert flops.train_step_flops(config, "ptuning_v2", batch=2, seq=8, prompt=4) == frozen
    assert flops.train_step_flops(config, "prefix", batch=2, seq=8, prompt=4) == frozen
    # full FT: 6 N tokens, no prompt columns.
    full = 6 * n * 16 + 3 * (2 * 2 * 2 * 8 * 8 * 32 * 2) + 6 * head * 2
    assert flops.train_step_flops(config, "finetune", batch=2, seq=8) == full == 1_684_224
    # LoRA r=8 on query and value: 2 layers * 2 * 8 * 2 * 32 = 2_048 adapter weights, trained (6x).
    assert flops.train_step_flops(config, "lora", batch=2, seq=8) == full - 2 * n * 16 + 6 * 2_048 * 16
    assert flops.mfu(1e12, 1.0, 2.0) == pytest.approx(0.5)


def test_failing_case_is_an_error_row(tmp_path, capsys):
    # prefix (peft) shifts positions by m: T + m beyond the 512 positions fails; the run goes on.
    out = tmp_path / "r.json"
    argv = [
        "--shapes",
        "tiny",
        "--batch",
        "1",
        "--seq",
        "500",
        "--prompt",
        "16",
        "--methods",
        "prefix,ptuning_v2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--threads",
        "1",
        "--infer-prompt",
        "0",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert "error" in rows["prefix"] and "train" in rows["prefix"]["error"]
    assert (
        rows["ptuning_v2"]["train_ms"] > 0 and "error" not in rows["ptuning_v2"]
    )  # no position shift: T + m > 512 is fine
    assert "error:" in capsys.readouterr().out


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("preset") / "tiny.json"
    assert cli.main(["--preset", "cpu_tiny", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_cpu_tiny_preset_runs_every_variant(preset_run):
    rows = preset_run["rows"]
    assert not [r for r in rows if r.get("error") or r.get("skipped")], rows
    planned = {c.key for c in plan.plan(cli.build_parser().parse_args(["--preset", "cpu_tiny"]))}
    assert {(r["method"], r["shape"], r["T"], r["m"], r["pad"]) for r in rows} == planned
    # every method has a row here, every variant here or in the speed-switch preset (test_bench_profile.py)
    names = {r["method"] for r in rows}
    switches = {
        name
        for preset in ("cpu_tiny_speed_switches", "cpu_tiny_decoder")
        for grid in plan.presets()[preset]["grids"]
        for name in grid.rows
    }
    assert {models.Row.parse(name).method for name in names} == set(models.METHODS)
    assert {v for name in names | switches for v in models.Row.parse(name).variants} == set(models.VARIANTS)
    assert preset_run["args"]["steps"] == 2 and preset_run["args"]["device"] == "cpu"
    # the CUDA-graph row says what it measured: on CPU nothing is captured, every step ran eager
    graphs = next(r for r in rows if r["method"] == "ptuning_v2+bf16+cuda_graphs")["cuda_graphs"]
    assert graphs == {"captures": 0, "replays": 0, "eager_calls": 0}
    # the inference rows of our variants are compared with the bare model of the same weight dtype
    ratios = {r["method"]: r for r in rows if "infer_vs_bare" in r}
    assert ratios["ptuning_v2"]["infer_bare_method"] == "linear_probe"
    assert ratios["ptuning_v2+bf16"]["infer_bare_method"] == "linear_probe+bf16"
    assert all(r["infer_vs_bare"] > 0 for r in ratios.values())
    padded = [r for r in rows if r["pad"]]
    assert padded and all(r["train_ms"] > 0 for r in padded)


def test_methods_step_plan_covers_the_targets():
    args = cli.build_parser().parse_args(["--preset", "methods_step"])
    keys = {(c.method, c.shape, c.seq, c.prompt, c.mode) for c in plan.plan(args)}
    for seq, m in ((128, 16), (256, 64)):
        for method in ("ptuning_v2+naive", "ptuning_v2", "ptuning_v2+bf16", "prefix"):
            assert (method, "roberta-large", seq, m, "train") in keys
    for seq in (128, 256):
        for m in (16, 64, 128):
            assert ("ptuning_v2+bf16", "roberta-large", seq, m, "train") in keys
            assert ("ptuning_v2+bf16", "bert-base", seq, m, "train") in keys
            assert ("prefix", "bert-base", seq, m, "train") in keys
        for method in ("lora", "finetune"):
            assert (method, "roberta-large", seq, 0, "train") in keys
    assert ("linear_probe", "roberta-large", 128, 0, "infer") in keys
    assert ("ptuning_v2+bf16", "roberta-large", 128, 100, "infer") in keys
    assert len(keys) < 70  # keeps the run near 150 s on an H100 (see docs/performance.md)


def test_padded_lengths():
    assert inputs.padded_lengths(5, 100, 0.25) == [100, 88, 75, 62, 50]
    assert inputs.padded_lengths(1, 8, 0.25) == [8]
    with pytest.raises(ValueError):
        inputs.padded_lengths(4, 8, 0.5)


def test_targets_block():
    def row(method, seq, m, **values):
        return {"method": method, "shape": "roberta-large", "T": seq, "m": m, "pad": 0.0, **values}

    rows = [
        row("ptuning_v2+bf16", 128, 16, train_ms=30.0, train_peak_gib=4.0),
        row("prefix", 128, 16, train_ms=60.0, train_peak_gib=5.0),
        row("ptuning_v2+bf16", 256, 64, train_ms=50.0, mfu=0.42),
        row("linear_probe+bf16", 128, 0, infer_ms=10.0),
        row("ptuning_v2+bf16", 128, 100, infer_ms=10.5),
    ]
    results.add_inference_ratios(rows)
    targets = results.speed_targets(rows)
    assert targets["ours"] == "ptuning_v2+bf16"
    assert targets["speedup_vs_prefix_T128_m16"]["value"] == pytest.approx(2.0)
    assert targets["speedup_vs_prefix_T128_m16"]["memory_met"] is True
    assert targets["mfu_T256_best"]["met"] is True
    assert targets["inference_vs_bare_T128"]["value"] == pytest.approx(1.05)


def test_compiled_prefix_preset_compiles_prefix_like_ours():
    """compiled_prefix_step: at each shape, eager prefix, prefix with CUDA graphs and ours with CUDA graphs side by
    side."""
    args = cli.build_parser().parse_args(["--preset", "compiled_prefix_step"])
    for name, value in plan.presets()["compiled_prefix_step"]["defaults"].items():
        setattr(args, name, value)
    groups = {}
    for case in plan.plan(args):
        groups.setdefault(case.group, set()).add((case.method, case.prompt))
    assert groups[("roberta-large", 128, 0.0)] >= {
        ("prefix+reduce_overhead", 16),
        ("ptuning_v2+bf16+reduce_overhead", 16),
    }
    assert groups[("roberta-large", 256, 0.0)] == {
        ("prefix", 64),
        ("prefix+reduce_overhead", 64),
        ("ptuning_v2+bf16+reduce_overhead", 64),
    }
    assert models.Row.parse("prefix+reduce_overhead").compile_mode == "reduce-overhead"
    assert (
        models.Row.parse("ptuning_v2+bf16+compile").compile_mode == "default"
        and models.Row.parse("prefix").compile_mode is None
    )
    # the collator's all-ones mask, for every row (peft's compiled prefix needs it: test_bench_profile.py)
    batch, _ = inputs.make_inputs(shapes.backbone_config("tiny-roberta"), args, 8)
    assert args.attention_mask and torch.equal(batch["attention_mask"], torch.ones_like(batch["input_ids"]))


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ("peft_prefix", "unknown method 'peft_prefix'"),
        ("ptuning_v2_bf16", "unknown method 'ptuning_v2_bf16'"),
        ("ptuning_v2+fast", "unknown variant 'fast'"),
        ("prefix+bf16", "row 'prefix+bf16': unknown key 'method.frozen_dtype'"),
    ],
)
def test_unknown_rows_are_refused_with_what_is_known(methods, message, capsys):
    assert cli.main(["--methods", methods, "--device", "cpu", "--out", "unused.json"]) == 2
    err = capsys.readouterr().err
    assert message in err and ("known:" in err or "valid keys" in err)


def test_decoder_presets_time_a_llama_decoder(tmp_path):
    """decoder_step (SmolLM2's sizes) plans ours vs peft prefix, eager and fast; its CPU twin runs every row."""
    args = cli.build_parser().parse_args(["--preset", "decoder_step"])
    keys = {(c.method, c.shape, c.seq, c.prompt) for c in plan.plan(args)}
    for seq in (64, 256):
        for method in ("prefix", "ptuning_v2", "ptuning_v2+bf16+cuda_graphs"):
            assert (method, "smollm2", seq, 16) in keys
    out = tmp_path / "decoder.json"
    assert cli.main(["--preset", "cpu_tiny_decoder", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["shape"] for r in rows} == {"tiny-llama"}
    assert not [r for r in rows if r.get("error")], rows
    assert {r["method"] for r in rows} >= {"prefix", "ptuning_v2", "lora+qv_proj", "finetune"}
