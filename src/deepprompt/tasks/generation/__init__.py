"""Data-to-text generation (E2E, WebNLG): data modules, the generation module, BLEU/ROUGE-L/TER, causal-LM loading."""

from deepprompt.tasks.generation.data import (
    E2EDataModule,
    GenerationDataModule,
    WebNLGDataModule,
    linearize_e2e,
    linearize_webnlg,
    read_e2e,
    read_webnlg,
)
from deepprompt.tasks.generation.loading import load_causal_lm, load_tokenizer, resolve_model_path
from deepprompt.tasks.generation.metrics import bleu, generation_scores, rouge_l, subset_scores, ter
from deepprompt.tasks.generation.module import GenerationModule

__all__ = [
    "E2EDataModule",
    "GenerationDataModule",
    "GenerationModule",
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
    "subset_scores",
    "ter",
]
