"""Data-to-text generation (E2E, WebNLG): data modules, BLEU/ROUGE-L, decoding settings, backbone loading."""

from deepprompt.generation.data import (
    E2EDataModule,
    GenerationDataModule,
    WebNLGDataModule,
    linearize_e2e,
    linearize_webnlg,
    read_e2e,
    read_webnlg,
)
from deepprompt.generation.loading import load_causal_lm, load_tokenizer, resolve_model_path
from deepprompt.generation.metrics import bleu, generation_scores, rouge_l

__all__ = [
    "E2EDataModule",
    "GenerationDataModule",
    "WebNLGDataModule",
    "bleu",
    "generation_scores",
    "linearize_e2e",
    "linearize_webnlg",
    "load_causal_lm",
    "load_tokenizer",
    "read_e2e",
    "read_webnlg",
    "resolve_model_path",
    "rouge_l",
]
