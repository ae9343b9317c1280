"""`GenerationModule`: a causal LM adapted by a method; loss on the target tokens, validation by generate().

Built on the LM itself (``AutoModelForCausalLM``, see `deepprompt.tasks.generation.loading`), then the method:
``ptuning_v2`` (deep prompts; lm_head and embeddings frozen), ``lora`` (peft, adapters in place, so the
backbone's own ``generate`` decodes with them), ``finetune`` (every weight), and the peft prefix-tuning
baselines ``prefix`` / ``prefix_mlp`` (peft's CAUSAL_LM wrapper, `deepprompt.tasks.generation.prefix.CausalPrefixLM`,
whose ``generate`` injects the prefix cache). peft's ``prompt_tuning``/``ptuning_v1`` wrappers route prompts
through ``PeftEncoder.forward`` only and are refused here.
Validation generates with ``generation`` (num_beams, max_new_tokens, length_penalty, ...) and logs corpus
``val/bleu`` (all references per input) and ``val/rouge_l``, with ``_best`` and history entries, and the same
metrics on each subset the evaluation split names (WebNLG: ``val/bleu_seen``, ``val/rouge_l_seen``,
``val/bleu_unseen``, ...; ``val/bleu`` is all); the texts go to ``<run dir>/predictions/<split>_epoch<N>.jsonl``
(source, hypothesis, references, and subset where there is one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepprompt.errors import ConfigError
from deepprompt.methods import build_method
from deepprompt.prompts import DeepPromptModel, save_prompts
from deepprompt.tasks.generation.data import GenerationEval
from deepprompt.tasks.generation.loading import load_causal_lm
from deepprompt.tasks.generation.metrics import subset_scores
from deepprompt.tasks.generation.prefix import CausalPrefixLM
from deepprompt.tasks.module import TaskModule

GENERATION_METHODS = ("ptuning_v2", "lora", "finetune", "prefix", "prefix_mlp")
PREFIX_METHODS = ("prefix", "prefix_mlp")
DEFAULT_GENERATION = {"num_beams": 1, "max_new_tokens": 64, "length_penalty": 1.0, "do_sample": False}


class GenerationModule(TaskModule):
    best_metrics = ("bleu", "rouge_l")

    def __init__(
        self,
        backbone: dict,
        method: dict,
        head: dict | None = None,
        optim: dict | None = None,
        gradient_checkpointing: bool = False,
        generation: dict | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        evaluation: GenerationEval | None = None,
    ) -> None:
        # read by load_model, which TaskModule.__init__ calls
        self._lm_ids = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, "eos_token_id": eos_token_id}
        super().__init__(backbone, method, head, optim, gradient_checkpointing)
        self.save_hyperparameters(ignore=["evaluation"])
        self.generation = {**DEFAULT_GENERATION, **(generation or {})}
        self.evaluation = evaluation
        self._hyps: dict[int, str] = {}
        self.train()

    # -- model -------------------------------------------------------------------------------------------
    def load_model(self) -> nn.Module:
        """The causal LM with its head, set to stop at the tokenizer's eos and pad with its pad id."""
        if self.method_cfg.name not in GENERATION_METHODS:
            raise ConfigError(
                f"method {self.method_cfg.name!r} cannot generate here; generation supports {GENERATION_METHODS}"
            )
        vocab_size = self._lm_ids["vocab_size"]
        lm = load_causal_lm(self.backbone_cfg, vocab_size=vocab_size)
        if vocab_size is not None and lm.config.vocab_size < vocab_size:
            raise ConfigError(f"tokenizer has {vocab_size} tokens but the LM only {lm.config.vocab_size}")
        gen = lm.generation_config
        gen.pad_token_id, gen.eos_token_id = self._lm_ids["pad_token_id"], self._lm_ids["eos_token_id"]
        gen.bos_token_id = None
        return lm

    def build_encoder(self, lm) -> nn.Module:
        if self.method_cfg.name in PREFIX_METHODS:
            return CausalPrefixLM(lm, self.method_cfg)
        return build_method(lm, self.method_cfg)

    def _evaluation(self) -> GenerationEval:
        if self.evaluation is None:
            raise RuntimeError(
                "GenerationModule has no evaluation split to score: build it with the data module's "
                "module_kwargs() (deepprompt.runs.build does)"
            )
        return self.evaluation

    @staticmethod
    def positions(mask: torch.Tensor) -> torch.Tensor:
        return (mask.long().cumsum(-1) - 1).clamp(min=0)

    def forward(self, input_ids, attention_mask):
        return self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=self.positions(attention_mask),
            use_cache=False,
        ).logits

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])[:, :-1].float()
        labels = batch["labels"][:, 1:]
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
        )

    def generate(self, input_ids, attention_mask, **overrides) -> torch.Tensor:
        """New tokens only, ``(B, <= max_new_tokens)``."""
        kw = {**self.generation, **overrides}
        # DeepPromptModel, CausalPrefixLM and the bare LM (finetune) generate themselves; LoRA's PeftEncoder
        # has its adapters inside the backbone, whose own generate() decodes with them
        model = self.encoder if hasattr(self.encoder, "generate") else self.encoder.backbone
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
        return out[:, input_ids.shape[1] :]

    # -- evaluation ----------------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        new = self.generate(batch["input_ids"], batch["attention_mask"])
        for index, text in zip(batch["index"].tolist(), self._evaluation().decode(new), strict=True):
            self._hyps[index] = text

    def _scores(self, save_as: str | None = None) -> dict[str, float]:
        refs = self._evaluation().references()
        order = sorted(self._hyps)
        self._hyps, hyps = {}, [self._hyps[i] for i in order]
        if save_as is not None:
            self._save_predictions(save_as, order, hyps)
        position = {index: p for p, index in enumerate(order)}
        subsets = {
            name: [position[i] for i in members if i in position]
            for name, members in self._evaluation().subsets().items()
        }
        return subset_scores(hyps, [refs[i] for i in order], subsets)

    def _save_predictions(self, name: str, order: list[int], hyps: list[str]) -> None:
        """``<run dir>/predictions/<name>.jsonl``: source, hypothesis and references of each evaluated input."""
        if self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        sources = self._evaluation().data
        folder = Path(self.trainer.default_root_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i, hyp in zip(order, hyps, strict=True):
                row = {
                    "index": i,
                    "source": sources[i].text,
                    "hypothesis": hyp,
                    "references": sources[i].references,
                }
                if sources[i].subset:
                    row["subset"] = sources[i].subset
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def on_validation_epoch_end(self) -> None:
        scores = self._scores(save_as=f"{self._evaluation().split}_epoch{self.current_epoch}")
        self.record({f"val/{k}": v for k, v in scores.items()})

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{k}": v for k, v in self._scores().items()})

    def export_prompts(self, directory) -> None:
        if isinstance(self.encoder, DeepPromptModel):
            save_prompts(self.encoder, directory)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
