"""The settings of ``hydra/launcher=parallel``, registered with Hydra's ConfigStore (``hydra/launcher``,
``parallel``): a typed node, so a misspelt key or a value of the wrong type stops the sweep before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

# What a deepprompt training job imports before its first step (the listing of tests/runs/test_startup_imports.py):
# torch, transformers' tokenizer, model-loading and generation code and the default backbone's (BERT: MiniLM),
# Lightning with torchmetrics, and deepprompt's training modules with the classification family. A job that
# needs more (another task family or backbone) imports the rest itself, as a new process would.
DEFAULT_PRELOAD = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.generation.utils",
    "transformers.models.bert.modeling_bert",
    "lightning.pytorch",
    "torchmetrics",
    "deepprompt.train",
    "deepprompt.runs.build",
    "deepprompt.callbacks",
    "deepprompt.callbacks.startup",
    "deepprompt.runs.baselines",
    "deepprompt.tasks.classification.module",
    "deepprompt.tasks.classification.data",
)


@dataclass
class ParallelLauncherConf:
    """Every job of a sweep in its own new process, forked from a server that imported torch, transformers and
    Lightning once (Python's forkserver), up to `n_jobs` at once, each on its own GPUs; the others wait for a free
    slot. `deepprompt-train -m hydra/launcher=parallel ...`; registered in code by deepprompt's Hydra plugin
    (`hydra_plugins/deepprompt_launcher`), so its keys are typed."""

    _target_: str = "hydra_plugins.deepprompt_launcher.parallel_launcher.ParallelLauncher"
    # jobs running at once; null: one per GPU slot (the GPUs this process sees // gpus_per_job), at least 1,
    # and 1 where it sees no GPU or with gpus_per_job=0
    n_jobs: int | None = None
    # GPUs of each job: a running job sees its own disjoint slice of the GPUs this process sees (its
    # CUDA_VISIBLE_DEVICES, set before anything touches CUDA); 0: CPU jobs, the GPUs hidden from them
    gpus_per_job: int = 1
    # modules the server imports once, before forking any job (a name that fails to import is reported)
    preload: list[str] = field(default_factory=lambda: list(DEFAULT_PRELOAD))


ConfigStore.instance().store(
    group="hydra/launcher", name="parallel", node=ParallelLauncherConf, provider="deepprompt"
)
