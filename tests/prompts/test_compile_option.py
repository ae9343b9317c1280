"""`method.compile`: the compiled backbone trains like the eager one, and the option is checked.

CPU, ``aot_eager`` backend (dynamo + AOT autograd, no code generation): what is tested is tracing through our
attention function with the prompts as an argument, the automatic-dynamic recompile on a new batch length, and
the task module's loss and prompt gradients; inductor's kernels are the GPU bench's business.
"""

from __future__ import annotations

import json

import pytest
import torch

from deepprompt.errors import ConfigError
from deepprompt.methods.ptuning_v2 import PTuningV2Config
from deepprompt.tasks.classification.module import ClassificationModule
from tests.conftest import run_dirs
from tests.methods.test_methods import TINY, padded_batch

EAGER = {"name": "ptuning_v2", "prompt": {"length": 4, "dropout": 0.0}}
COMPILED = {**EAGER, "compile": "default", "compile_backend": "aot_eager"}


def _module(method: dict) -> ClassificationModule:
    torch.manual_seed(0)
    return ClassificationModule(
        backbone=TINY, method=method, num_labels=2, head={"pooling": "cls", "dropout": 0.0}
    ).eval()  # eval: the backbone's dropout would draw different masks in the two graphs


def _loss_and_prompt_grad(module: ClassificationModule, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    module.zero_grad(set_to_none=True)
    loss = module.loss(batch)
    loss.backward()
    return loss.detach(), module.encoder.prompt_encoder.prefix.grad.clone()


def test_compiled_backbone_gives_the_eager_loss_and_gradients():
    eager, compiled = _module(EAGER), _module(COMPILED)
    compiled.load_state_dict(eager.state_dict())
    assert compiled.encoder.model._compiled_call_impl is not None  # really compiled
    assert eager.encoder.model._compiled_call_impl is None
    batch = padded_batch()
    shorter = {k: v[:, :5] for k, v in batch.items() if k != "labels"} | {"labels": batch["labels"]}
    for b in (batch, shorter):  # a second batch length: the automatic-dynamic recompile must agree too
        loss_e, grad_e = _loss_and_prompt_grad(eager, b)
        loss_c, grad_c = _loss_and_prompt_grad(compiled, b)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad_c, grad_e, rtol=1e-4, atol=1e-6)
        assert grad_c.abs().sum() > 0


def test_parameter_names_and_prompt_export_are_unchanged():
    eager, compiled = _module(EAGER), _module(COMPILED)
    assert [n for n, _ in compiled.named_parameters()] == [n for n, _ in eager.named_parameters()]


@pytest.mark.parametrize("mode", ["fast", "cudagraphs", ""])
def test_unknown_compile_mode_is_refused(mode):
    with pytest.raises(ConfigError, match="method.compile must be one of"):
        PTuningV2Config(compile=mode)


def test_cudagraph_mode_marks_every_step(monkeypatch):
    module = _module({**EAGER, "compile": "none"})
    calls = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append(1))
    module.on_train_batch_start({}, 0)
    assert calls == []
    module.method_cfg.compile = "reduce-overhead"
    module.on_train_batch_start({}, 0)
    module.on_validation_batch_start({}, 0)
    module.on_test_batch_start({}, 0)
    assert calls == [1, 1, 1]


@pytest.mark.slow
def test_train_cli_with_compiled_backbone(run_cli, tmp_path):
    run_cli(
        "deepprompt.train",
        "backbone=tiny",
        "debug=limit",
        "extras.print_config=false",
        "data=rte",
        "method.prompt.length=4",
        "method.compile=default",
        "method.compile_backend=aot_eager",
    )
    [run] = run_dirs(tmp_path / "outputs")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert (run / "prompts" / "best" / "prompts.safetensors").is_file()


def test_loss_means_never_ask_the_gpu_for_a_python_bool(monkeypatch):
    """A per-step ``bool(tensor)`` is a host-device sync on CUDA (torchmetrics' default NaN check): the running
    losses of every task module must update without one, and a NaN loss must show as a NaN mean, not vanish."""
    module = _module(EAGER)
    asked = []
    original = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: asked.append(1) or original(t))
    for value in (0.5, 1.5):
        module.train_loss.update(torch.tensor(value))
        module.val_loss.update(torch.tensor(value))
    assert asked == []
    monkeypatch.undo()
    assert module.train_loss.compute().item() == pytest.approx(1.0)
    module.train_loss.update(torch.tensor(float("nan")))
    assert torch.isnan(module.train_loss.compute())
