"""Export to / import from peft PrefixTuning: peft's own forward gives our outputs; the round trip is exact."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from deepprompt.errors import PromptMismatchError
from deepprompt.prompts import DeepPromptConfig, add_deep_prompts
from deepprompt.prompts.peft_interop import export_to_peft, import_from_peft
from tests.prompts import helpers

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_peft_loads_our_export_and_matches_with_shifted_positions(family, tmp_path):
    from peft import PeftModel

    make = helpers.tiny_bert if family == "bert" else helpers.tiny_llama
    backbone = make(layers=3)
    m = 4
    ours = add_deep_prompts(
        copy.deepcopy(backbone), DeepPromptConfig(length=m, dropout=0.0, reparam="mlp", reparam_hidden=8)
    )
    ours.eval()
    export_to_peft(ours, tmp_path, base_model_name_or_path="tiny-random")
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    g = ours.geometry
    assert cfg["peft_type"] == "PREFIX_TUNING" and cfg["num_virtual_tokens"] == m and cfg["num_layers"] == 3
    assert cfg["token_dim"] == g.kv_width and cfg["num_attention_heads"] == g.num_kv_heads
    assert cfg["prefix_projection"] is False
    peft_model = PeftModel.from_pretrained(copy.deepcopy(backbone), str(tmp_path)).eval()

    ids = torch.randint(3, helpers.VOCAB, (2, 6))
    mask = torch.ones_like(ids)
    n = ids.shape[1]
    with torch.no_grad():
        theirs = peft_model(input_ids=ids, attention_mask=mask).last_hidden_state
        shifted = ours(
            input_ids=ids, attention_mask=mask, position_ids=torch.arange(n)[None] + m
        ).last_hidden_state
        default = ours(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (theirs - shifted).abs().max() < 1e-5  # peft counts the prefix as past: positions m..m+n-1
    assert (theirs - default).abs().max() > 1e-4  # the position shift is real


def test_round_trip_is_exact_and_split_layout_exports(tmp_path):
    backbone = helpers.tiny_bert(layers=3)
    ours = add_deep_prompts(copy.deepcopy(backbone), DeepPromptConfig(length=5, split_layers=True))
    export_to_peft(ours, tmp_path)
    back = import_from_peft(tmp_path, copy.deepcopy(backbone))
    assert torch.equal(back.prompt_encoder.flat(), ours.prompt_encoder.flat())
    assert back.prompt_encoder.layer_ids == ours.prompt_encoder.layer_ids and back.prompt_encoder.length == 5
    export_to_peft(back, tmp_path / "again")
    assert (tmp_path / "again" / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "adapter_model.safetensors"
    ).read_bytes()


def test_only_full_depth_uniform_prompts_are_exchanged(tmp_path):
    for cfg in (
        DeepPromptConfig(length=[2, 0, 2]),
        DeepPromptConfig(length=[2, 3, 2]),
        DeepPromptConfig(length=2, layers="top-1"),
    ):
        with pytest.raises(PromptMismatchError, match="full-depth, uniform-length"):
            export_to_peft(add_deep_prompts(helpers.tiny_bert(layers=3), cfg), tmp_path)
    export_to_peft(add_deep_prompts(helpers.tiny_bert(layers=3), DeepPromptConfig(length=2)), tmp_path)
    with pytest.raises(PromptMismatchError, match="does not fit"):
        import_from_peft(tmp_path, helpers.tiny_bert(layers=2))
