"""The tasks, in one explicit table. The order is the canonical task order of the output.

Templates meet the tasks here: a template may use only the placeholders its task
provides (`PLACEHOLDERS`), so the template loaders that check them live beside the table
(`recalign.samples.templates` parses and compiles, and knows no task).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recalign.samples.tasks import bpr, mim, mlm, ranking, rating, retrieval
from recalign.samples.tasks.base import TaskContext, TaskOptions, TaskRows, TaskSpec
from recalign.samples.templates import Template, TemplateSet, read_template_file, read_templates

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        retrieval.SPEC,
        ranking.SPEC,
        rating.SPEC,
        mim.SPEC,
        bpr.SPEC,
        mlm.SPEC,
    )
}
# Fixed per task (not per run): part of every generator's seed, so adding a task to a
# mixture never changes the samples of the others.
TASK_INDEX: dict[str, int] = {name: index for index, name in enumerate(TASKS)}
REC_TASKS = tuple(name for name, spec in TASKS.items() if spec.kind == "rec")
# The placeholders each task's templates may use.
PLACEHOLDERS: dict[str, frozenset[str]] = {name: spec.provides for name, spec in TASKS.items()}


def load_template_file(path: str | Path) -> list[Template]:
    """The templates of one YAML file, checked against what their task provides."""
    return read_template_file(path, PLACEHOLDERS)


def load_templates(
    paths: Sequence[str | Path] | None = None, *, include_defaults: bool = True
) -> TemplateSet:
    """The shipped templates, with the tasks of the user's files replaced by theirs."""
    return read_templates(paths, PLACEHOLDERS, include_defaults=include_defaults)


__all__ = [
    "PLACEHOLDERS",
    "REC_TASKS",
    "TASKS",
    "TASK_INDEX",
    "TaskContext",
    "TaskOptions",
    "TaskRows",
    "TaskSpec",
    "load_template_file",
    "load_templates",
]
