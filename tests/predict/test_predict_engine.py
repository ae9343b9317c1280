"""The inference loop (inference/engine.py) leaves the device alone until the end: no per-batch read-back.

On a GPU a read-back (``.cpu()``, ``.tolist()``) waits for every kernel queued so far, so the host could not
collate the next batch while the device runs this one. The scores of each batch stay on the device and come back
together after the loop (or every ``HOST_FLUSH_ROWS`` rows); the answers are the same either way.
"""

from __future__ import annotations

import pytest
import torch

from deepprompt.data.base import SEQUENCE_KEYS, FeatureCollator
from deepprompt.inference import engine
from deepprompt.inference.families import TaskRunner
from deepprompt.inference.inputs import read_examples
from deepprompt.predict import load_run, run_predictions

pytestmark = pytest.mark.usefixtures("one_thread")


def _rte(trained, runs_root):
    runner, module = load_run(trained("rte", "data=rte"), "last")
    return runner, module, read_examples(str(runs_root / "data" / "rte" / "val.jsonl.gz"), runner)


def test_the_batch_loop_reads_nothing_back_before_its_last_forward(trained, runs_root, monkeypatch):
    runner, module, examples = _rte(trained, runs_root)
    reads = []
    for name in ("cpu", "tolist", "item"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    seen_at_forward = []
    encode = module.encode

    def forward(batch):
        seen_at_forward.append(len(reads))
        return encode(batch)

    monkeypatch.setattr(module, "encode", forward)
    answers = run_predictions(runner, module, examples, batch_size=5, show_progress=False)
    monkeypatch.undo()
    assert len(answers) == 16 and len(seen_at_forward) == 4  # 16 rows in batches of 5
    assert seen_at_forward == [0, 0, 0, 0]  # no read-back between the forwards (was one per batch)
    assert reads  # the answers were read once the loop was done


def test_scores_fetched_every_few_rows_give_the_same_answers(trained, runs_root, monkeypatch):
    runner, module, examples = _rte(trained, runs_root)
    once = run_predictions(runner, module, examples, batch_size=5, show_progress=False)
    monkeypatch.setattr(engine, "HOST_FLUSH_ROWS", 6)  # a fetch after every second batch, and at the end
    chunked = run_predictions(runner, module, examples, batch_size=5, show_progress=False)
    assert chunked == once and len(once) == 16


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@gpu
def test_host_tensors_go_over_pinned_and_come_back_in_one_transfer_per_dtype():
    host = torch.arange(12).view(3, 4)
    on_device = engine.to_device(host, "cuda")
    host.zero_()  # the copy was taken from a pinned copy of its own: changing the source now is safe
    assert on_device.is_cuda and on_device.cpu().equal(torch.arange(12).view(3, 4))
    parts = [torch.rand(2, 3, device="cuda"), torch.arange(5, device="cuda"), torch.rand(4, device="cuda")]
    back = engine.to_host(parts)
    assert [b.device.type for b in back] == ["cpu"] * 3
    assert all(b.equal(p.cpu()) for b, p in zip(back, parts, strict=True))


@pytest.mark.parametrize("side", ["right", "left"])
def test_collate_pads_as_the_data_collator_in_one_tensor(side):
    rows = [
        {"input_ids": [5, 6, 7, 8], "attention_mask": [1, 1, 1, 1], "token_type_ids": [0, 0, 1, 1], "cls": 0},
        {"input_ids": [9], "attention_mask": [1], "token_type_ids": [0]},
        {"input_ids": [3, 4], "attention_mask": [1, 1], "token_type_ids": [0, 1]},
    ]
    batch = engine.collate(rows, 2, side, "cpu")
    expected = FeatureCollator(2, None, side)([{k: r[k] for k in SEQUENCE_KEYS} for r in rows])
    assert set(batch) == set(SEQUENCE_KEYS)
    for key in SEQUENCE_KEYS:
        assert batch[key].dtype == torch.long and batch[key].equal(expected[key]), key
    # the keys are views of one tensor: one host-to-device copy carries them all
    assert len({batch[k].untyped_storage().data_ptr() for k in SEQUENCE_KEYS}) == 1
    one = engine.collate([{"input_ids": [1, 2]}], 0, side, "cpu")  # a tokenizer without the other keys
    assert list(one) == ["input_ids"] and one["input_ids"].tolist() == [[1, 2]]


def _old_collate(rows, pad_id, padding_side, device):
    """The collate before it built one tensor: the data modules' collator, one tensor per key."""
    batch = FeatureCollator(pad_id, None, padding_side)(
        [{k: r[k] for k in SEQUENCE_KEYS if k in r} for r in rows]
    )
    return {k: engine.to_device(v, device) for k, v in batch.items()}


@pytest.mark.parametrize(
    ("name", "option", "path", "fmt"),
    [
        ("rte", "data=rte", "rte/val.jsonl.gz", "auto"),
        ("ner", "data=conll2003", "conll2003/dev.txt.gz", "conll"),
    ],
)
def test_answers_equal_those_of_the_per_key_collate_and_per_row_score_tensors(
    trained, runs_root, monkeypatch, name, option, path, fmt
):
    runner, module = load_run(trained(name, option), "last")
    examples = read_examples(str(runs_root / "data" / path), runner, fmt)
    new = run_predictions(runner, module, [dict(e) for e in examples], batch_size=5, show_progress=False)
    assert runner.decodes_lists
    monkeypatch.setattr(engine, "collate", _old_collate)
    monkeypatch.setattr(TaskRunner, "decodes_lists", property(lambda self: False))  # a tensor per row
    old = run_predictions(runner, module, [dict(e) for e in examples], batch_size=5, show_progress=False)
    assert new == old and len(new) > 0
