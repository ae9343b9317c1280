"""The task families: each family's data modules and the Lightning module that trains on them.

A run builds its data module from ``conf/data/<task>.yaml`` (``_target_``) and asks `module_class` for the
Lightning module that trains on it (`deepprompt.runs.build`). A new family is a folder under
``deepprompt/tasks/`` and one `TaskFamily` entry here; a data module's ``module_kwargs()`` gives the task facts
its module needs (label count, metrics ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deepprompt.errors import ConfigError
from deepprompt.tasks.classification import ClassificationDataModule, ClassificationModule
from deepprompt.tasks.generation import GenerationDataModule, GenerationModule
from deepprompt.tasks.module import TaskModule
from deepprompt.tasks.multitask import MultiTaskDataModule, MultiTaskModule
from deepprompt.tasks.ner import NERDataModule, TokenClassificationModule
from deepprompt.tasks.qa import QuestionAnsweringModule, SquadDataModule
from deepprompt.tasks.superglue import (
    MultipleChoiceDataModule,
    MultipleChoiceModule,
    MultiRCModule,
    SuperGLUEDataModule,
)


@dataclass(frozen=True)
class TaskFamily:
    """``name``: the folder under ``deepprompt/tasks``; ``module`` trains every task of ``datamodules`` except
    those named in ``per_task`` (a task whose data module's ``task`` needs a module of its own)."""

    name: str
    datamodules: tuple[type, ...]
    module: type[TaskModule]
    per_task: Mapping[str, type[TaskModule]] = field(default_factory=dict)

    def module_for(self, task: str | None) -> type[TaskModule]:
        return self.per_task.get(task, self.module) if task is not None else self.module


FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> TaskFamily:
    """Add a family; a name or a data module already registered is refused."""
    if family.name in FAMILIES:
        raise ValueError(f"task family {family.name!r} is already registered")
    for other in FAMILIES.values():
        if taken := set(family.datamodules) & set(other.datamodules):
            raise ValueError(f"{sorted(c.__name__ for c in taken)} already belong to family {other.name!r}")
    FAMILIES[family.name] = family
    return family


register_family(TaskFamily("classification", (ClassificationDataModule,), ClassificationModule))
register_family(
    TaskFamily(
        "superglue",
        (SuperGLUEDataModule, MultipleChoiceDataModule),
        ClassificationModule,  # WiC and WSC: sentence-pair classification once framed
        {"copa": MultipleChoiceModule, "multirc": MultiRCModule},
    )
)
register_family(TaskFamily("ner", (NERDataModule,), TokenClassificationModule))
register_family(TaskFamily("qa", (SquadDataModule,), QuestionAnsweringModule))
register_family(TaskFamily("generation", (GenerationDataModule,), GenerationModule))
register_family(TaskFamily("multitask", (MultiTaskDataModule,), MultiTaskModule))


def family_of(datamodule: object) -> TaskFamily:
    """The family whose data modules include ``datamodule``'s class (or a base of it)."""
    for family in FAMILIES.values():
        if isinstance(datamodule, family.datamodules):
            return family
    raise ConfigError(
        f"data module {type(datamodule).__name__} belongs to no task family; "
        "register it with a TaskFamily in deepprompt/tasks/registry.py"
    )


def module_class(datamodule: object) -> type[TaskModule]:
    """The Lightning module class that trains on ``datamodule``."""
    task = getattr(datamodule, "task", None)  # a task name, or a task spec with a name (classification)
    return family_of(datamodule).module_for(task if isinstance(task, str) else getattr(task, "name", None))
