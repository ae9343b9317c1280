"""The task-family registry: every data module finds the Lightning module that trains on it, by class."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepprompt.errors import ConfigError
from deepprompt.tasks.classification import ClassificationDataModule, ClassificationModule, get_task
from deepprompt.tasks.generation import E2EDataModule, GenerationModule
from deepprompt.tasks.registry import (
    FAMILIES,
    TaskFamily,
    class_path,
    family_of,
    load_class,
    module_class,
    register_family,
)
from deepprompt.tasks.superglue import MultipleChoiceModule, MultiRCModule, SuperGLUEDataModule


def test_families_are_the_task_folders():
    assert sorted(FAMILIES) == ["classification", "generation", "multitask", "ner", "qa", "superglue"]


def test_module_class_follows_family_and_task():
    wic = SuperGLUEDataModule.__new__(SuperGLUEDataModule)
    wic.task = "wic"
    multirc = SuperGLUEDataModule.__new__(SuperGLUEDataModule)
    multirc.task = "multirc"
    assert module_class(wic) is ClassificationModule
    sst2 = ClassificationDataModule.__new__(ClassificationDataModule)
    sst2._task = get_task("sst2")  # classification data modules hold a task spec, not a name
    assert module_class(sst2) is ClassificationModule
    assert module_class(multirc) is MultiRCModule
    assert FAMILIES["superglue"].module_for("copa") is MultipleChoiceModule
    # a subclass of a registered data module belongs to its family
    assert module_class(E2EDataModule.__new__(E2EDataModule)) is GenerationModule


def test_unregistered_data_module_names_the_registry():
    with pytest.raises(
        ConfigError, match=r"object belongs to no task family; .*deepprompt/tasks/registry.py"
    ):
        family_of(object())


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="'classification' is already registered"):
        register_family(TaskFamily("classification", (), ClassificationModule))
    with pytest.raises(ValueError, match="already belong to family 'classification'"):
        register_family(TaskFamily("other", (ClassificationDataModule,), ClassificationModule))
    assert "other" not in FAMILIES


def test_every_entry_names_the_module_that_defines_its_class():
    # family_of matches a data module by the names of its class and bases: a reference to a re-exporting package
    # (deepprompt.tasks.qa:SquadDataModule) would never match
    for family in FAMILIES.values():
        for ref in (*family.datamodules, family.module, *family.per_task.values()):
            assert class_path(load_class(ref)) == ref, (family.name, ref)


def test_a_subclass_defined_elsewhere_belongs_to_its_bases_family():
    class MySST2(ClassificationDataModule):
        pass

    assert family_of(MySST2.__new__(MySST2)) is FAMILIES["classification"]


def test_finding_a_family_imports_no_other_familys_code():
    # a training run imports its own family only (the start-up of a sweep job)
    code = (
        "import sys\n"
        "from deepprompt.tasks.classification.data import ClassificationDataModule\n"
        "from deepprompt.tasks.registry import module_class\n"
        "dm = ClassificationDataModule.__new__(ClassificationDataModule)\n"
        "print(module_class(dm).__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('deepprompt.tasks.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    name, modules = out.splitlines()
    assert name == "ClassificationModule"
    families = {m.split(".")[2] for m in eval(modules)} - {"module", "registry", "optim", "pooling"}
    assert families == {"classification"}
