"""The inference loop (inference/engine.py) leaves the device alone until the end: no per-batch read-back.

On a GPU a read-back (``.cpu()``, ``.tolist()``) waits for every kernel queued so far, so the host could not
collate the next batch while the device runs this one. The scores of each batch stay on the device and come back
together after the loop (or every ``HOST_FLUSH_ROWS`` rows); the answers are the same either way.
"""

from __future__ import annotations

import pytest
import torch

from deepprompt.inference import engine
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
