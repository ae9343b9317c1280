"""DeBERTa's hooked path on a GPU: the CPU results in fp32, close ones in bf16, the eager ones when compiled."""

from __future__ import annotations

import copy

import pytest
import torch

from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from tests.prompts.test_hooked_deberta import batch, tiny_deberta

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _models(variant="v3", frozen_dtype="bf16"):
    torch.manual_seed(3)
    eager = add_deep_prompts(
        tiny_deberta(variant, layers=3), DeepPromptConfig(length=4, dropout=0.0), frozen_dtype=frozen_dtype
    )
    return eager.cuda().train()


def _step(model, ids, mask):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float(), torch.arange(ids.shape[0], device="cuda") % 3
        )
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("variant", ["v3", "v2_conv"])
def test_gpu_fp32_matches_cpu(variant):
    cpu = add_deep_prompts(tiny_deberta(variant, layers=3), DeepPromptConfig(length=4, dropout=0.0)).eval()
    gpu = copy.deepcopy(cpu).cuda()
    ids, mask = batch([9, 4, 7])
    with torch.no_grad():
        a = cpu(input_ids=ids, attention_mask=mask).logits
        b = gpu(input_ids=ids.cuda(), attention_mask=mask.cuda()).logits.cpu()
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_gpu_bf16_autocast_stays_close_to_fp32():
    fp32 = _models(frozen_dtype=None)
    bf16 = copy.deepcopy(fp32)
    bf16.cast_frozen(torch.bfloat16)
    bf16.frozen_dtype = torch.bfloat16
    ids, mask = (t.cuda() for t in batch([9, 4, 9]))
    with torch.no_grad():
        exact = fp32(input_ids=ids, attention_mask=mask).logits
    loss, grads = _step(bf16, ids, mask)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        rounded = bf16(input_ids=ids, attention_mask=mask).logits.float()
    torch.testing.assert_close(rounded, exact, rtol=5e-2, atol=5e-2)
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads.values())


def test_gpu_compiled_backbone_gives_the_eager_loss_and_gradients():
    from deepprompt.prompts.compiling import compile_backbone

    eager = _models()
    compiled = copy.deepcopy(eager)
    compile_backbone(compiled.model, dynamic=None)
    for i, lengths in enumerate([[9, 4, 9], [5, 5, 2]]):
        ids, mask = (t.cuda() for t in batch(lengths, seed=i))
        (loss_c, grads_c), (loss_e, grads_e) = _step(compiled, ids, mask), _step(eager, ids, mask)
        torch.testing.assert_close(loss_c, loss_e, rtol=1e-2, atol=1e-4)
        for name in grads_e:
            torch.testing.assert_close(grads_c[name], grads_e[name], rtol=5e-2, atol=1e-4)
