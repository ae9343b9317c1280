"""The task-family registry: every data module finds the Lightning module that trains on it, by class."""

from __future__ import annotations

import pytest

from deepprompt.errors import ConfigError
from deepprompt.tasks.classification import ClassificationDataModule, ClassificationModule, get_task
from deepprompt.tasks.generation import E2EDataModule, GenerationModule
from deepprompt.tasks.registry import FAMILIES, TaskFamily, family_of, module_class, register_family
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
