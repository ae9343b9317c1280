"""What a training run imports before its first step: a sweep job is a new process, and every module it loads
before the first step is start-up time (docs/performance.md, "Start-up of a sweep job").

One tiny ``deepprompt-train`` process (SST-2, a BERT-like backbone) writes the modules loaded when its first
training batch starts (``tests.runs.helpers.ModulesAtFirstStep``).
"""

from __future__ import annotations

import pytest

from tests.runs.helpers import TINY, env_with_repo

# not needed to reach the first step of a classification run on a BERT-like backbone
NOT_BEFORE_FIRST_STEP = (
    # the deep-prompt adapters of DeBERTa-v2/v3 and MPNet (only for models off transformers' attention interface)
    "deepprompt.prompts.adapters",
    "transformers.models.deberta_v2.modeling_deberta_v2",
    "transformers.models.mpnet.modeling_mpnet",
    # the config tree's syntax highlighting (extras.print_config=true only)
    "deepprompt.utils.printing",
    "pygments",
    # the other task families' data modules and Lightning modules
    "deepprompt.tasks.qa",
    "deepprompt.tasks.ner",
    "deepprompt.tasks.generation",
    "deepprompt.tasks.multitask",
    "deepprompt.tasks.superglue",
    # evaluation, reports, serving; other libraries' methods
    "deepprompt.eval",
    "deepprompt.predict",
    "deepprompt.report",
    "deepprompt.serve",
    "deepprompt.inference",
    "peft",
    "datasets",
    "pandas",
    "seqeval",
    "transformers.optimization",  # the schedule is deepprompt's own (transformers.optimization imports peft)
    # hydra/launcher=parallel's job and pool code (Hydra's plugin scan imports only the launcher's front module)
    "hydra_plugins.deepprompt_launcher._pool",
    "hydra_plugins.deepprompt_launcher._job",
    "cloudpickle",
)


@pytest.fixture(scope="module")
def startup_modules(benchmark_dir, tmp_path_factory) -> set[str]:
    from tests.conftest import cli

    root = tmp_path_factory.mktemp("startup_imports")
    listing = root / "modules.txt"
    cli(
        "deepprompt.train",
        *TINY,
        "data=sst2",
        "method.prompt.length=4",
        "+trainer.max_steps=1",
        "+callbacks.modules._target_=tests.runs.helpers.ModulesAtFirstStep",
        f"+callbacks.modules.path={listing}",
        data_dir=benchmark_dir,
        out=root / "outputs",
        cwd=root,
        env=env_with_repo(),
    )
    return set(listing.read_text().split())


def test_the_listing_is_taken_at_the_first_step(startup_modules):
    assert {"torch", "lightning", "transformers.models.bert.modeling_bert"} <= startup_modules
    assert "deepprompt.tasks.classification.module" in startup_modules


@pytest.mark.parametrize("module", NOT_BEFORE_FIRST_STEP)
def test_a_training_run_does_not_import_before_its_first_step(startup_modules, module):
    loaded = sorted(m for m in startup_modules if m == module or m.startswith(module + "."))
    assert not loaded, f"imported before the first training step: {loaded}"
