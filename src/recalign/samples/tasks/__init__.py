"""The tasks, in one explicit table. The order is the canonical task order of the output."""

from __future__ import annotations

from recalign.samples.tasks import bpr, mim, mlm, ranking, rating, retrieval
from recalign.samples.tasks.base import TaskContext, TaskOptions, TaskRows, TaskSpec

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

__all__ = [
    "REC_TASKS",
    "TASKS",
    "TASK_INDEX",
    "TaskContext",
    "TaskOptions",
    "TaskRows",
    "TaskSpec",
]
