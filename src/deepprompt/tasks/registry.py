"""The task families: each family's data modules and the Lightning module that trains on them.

A run builds its data module from ``conf/data/<task>.yaml`` (``_target_``) and asks `module_class` for the
Lightning module that trains on it (`deepprompt.runs.build`). A new family is a folder under
``deepprompt/tasks/`` and one `TaskFamily` entry here; a data module's ``module_kwargs()`` gives the task facts
its module needs (label count, metrics ...).

The entries name their classes by the module that defines them (``"package.module:ClassName"``), imported when a
run asks for its family: a training run imports its own family's code, not every family's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING

from deepprompt.errors import ConfigError

if TYPE_CHECKING:
    from deepprompt.tasks.module import TaskModule

# A class, or where to find it: "package.module:ClassName", the module that defines it (imported on first use, so
# that a run imports its own family only; `family_of` matches data modules by these names).
ClassRef = type | str


def class_path(ref: ClassRef) -> str:
    """``"package.module:ClassName"`` of a class (where it is defined), or the reference itself."""
    return ref if isinstance(ref, str) else f"{ref.__module__}:{ref.__qualname__}"


def load_class(ref: ClassRef) -> type:
    """The class ``ref`` names, its module imported if it was not yet."""
    if not isinstance(ref, str):
        return ref
    module, _, name = ref.partition(":")
    found = import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


@dataclass(frozen=True)
class TaskFamily:
    """``name``: the folder under ``deepprompt/tasks``; ``module`` trains every task of ``datamodules`` except
    those named in ``per_task`` (a task whose data module's ``task`` needs a module of its own). Classes are given
    as classes or as ``"package.module:ClassName"`` of the module that defines them."""

    name: str
    datamodules: tuple[ClassRef, ...]
    module: ClassRef
    per_task: Mapping[str, ClassRef] = field(default_factory=dict)

    def holds(self, datamodule: object) -> bool:
        """Whether ``datamodule`` is an instance of one of ``datamodules`` (or of a subclass), found by the names
        of its class and its bases: no other family's code is imported to tell."""
        names = {class_path(ref) for ref in self.datamodules}
        return any(class_path(klass) in names for klass in type(datamodule).__mro__)

    def module_for(self, task: str | None) -> type[TaskModule]:
        return load_class(self.per_task.get(task, self.module) if task is not None else self.module)


FAMILIES: dict[str, TaskFamily] = {}


def register_family(family: TaskFamily) -> TaskFamily:
    """Add a family; a name or a data module already registered is refused."""
    if family.name in FAMILIES:
        raise ValueError(f"task family {family.name!r} is already registered")
    mine = {class_path(ref) for ref in family.datamodules}
    for other in FAMILIES.values():
        if taken := mine & {class_path(ref) for ref in other.datamodules}:
            names = sorted(path.rpartition(":")[2] for path in taken)
            raise ValueError(f"{names} already belong to family {other.name!r}")
    FAMILIES[family.name] = family
    return family


register_family(
    TaskFamily(
        "classification",
        ("deepprompt.tasks.classification.data:ClassificationDataModule",),
        "deepprompt.tasks.classification.module:ClassificationModule",
    )
)
# WiC and WSC: sentence-pair classification once framed; COPA and MultiRC have modules of their own
register_family(
    TaskFamily(
        "superglue",
        (
            "deepprompt.tasks.superglue.data:SuperGLUEDataModule",
            "deepprompt.tasks.superglue.copa:MultipleChoiceDataModule",
        ),
        "deepprompt.tasks.classification.module:ClassificationModule",
        {
            "copa": "deepprompt.tasks.superglue.module:MultipleChoiceModule",
            "multirc": "deepprompt.tasks.superglue.multirc:MultiRCModule",
        },
    )
)
register_family(
    TaskFamily(
        "ner",
        ("deepprompt.tasks.ner.data:NERDataModule",),
        "deepprompt.tasks.ner.module:TokenClassificationModule",
    )
)
register_family(
    TaskFamily(
        "qa",
        ("deepprompt.tasks.qa.data:SquadDataModule",),
        "deepprompt.tasks.qa.module:QuestionAnsweringModule",
    )
)
register_family(
    TaskFamily(
        "generation",
        ("deepprompt.tasks.generation.data:GenerationDataModule",),
        "deepprompt.tasks.generation.module:GenerationModule",
    )
)
register_family(
    TaskFamily(
        "multitask",
        ("deepprompt.tasks.multitask.data:MultiTaskDataModule",),
        "deepprompt.tasks.multitask.module:MultiTaskModule",
    )
)


def family_of(datamodule: object) -> TaskFamily:
    """The family whose data modules include ``datamodule``'s class (or a base of it)."""
    for family in FAMILIES.values():
        if family.holds(datamodule):
            return family
    raise ConfigError(
        f"data module {type(datamodule).__name__} belongs to no task family; "
        "register it with a TaskFamily in deepprompt/tasks/registry.py"
    )


def module_class(datamodule: object) -> type[TaskModule]:
    """The Lightning module class that trains on ``datamodule``."""
    task = getattr(datamodule, "task", None)  # a task name, or a task spec with a name (classification)
    return family_of(datamodule).module_for(task if isinstance(task, str) else getattr(task, "name", None))
