"""Gather what a run directory holds: every evaluation's metrics, training logs, stats."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recalign import fileio
from recalign.constants import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    STATS_FILE,
    USER_ID,
)
from recalign.errors import RecalignError
from recalign.ranking import protocol_order

log = logging.getLogger(__name__)

# Where an evaluation comes from: the fine-tuned LM (`RUN/eval`), a baseline
# (`RUN/baselines`), or a baseline re-scored on the LM's users (`on_same_users`).
LLM, BASELINE, SAME_USERS = "llm", "baseline", "same-users"
SAME_USERS_SUFFIX = " (same users)"


@dataclass(frozen=True)
class Evaluation:
    """One `metrics.json` and where it lives."""

    directory: Path
    model: str
    protocol: str
    split: str
    users: int
    metrics: dict[str, float]
    intervals: dict[str, list[float]]
    raw: dict[str, Any]
    role: str = ""
    label: str = ""  # the human-readable model name (`labels.model_label`); "" = `model`

    @property
    def predictions_path(self) -> Path:
        return self.directory / PREDICTIONS_FILE

    @property
    def base_name(self) -> str:
        """The model's readable name (its raw id when there is no label)."""
        return self.label or str(self.raw.get("model", self.model))

    @property
    def name(self) -> str:
        """What a results row is called: the model's name, and whose users it averages."""
        if not self.label:
            return self.model
        return self.label + (", same users" if self.role == SAME_USERS else "")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from an optional file: {} when it is missing or unreadable (logged)."""
    if not path.is_file():
        return {}
    try:
        value = fileio.read_json(path)
    except RecalignError as err:  # names the file (and line)
        log.warning("ignoring %s", err)
        return {}
    return value if isinstance(value, dict) else {}


def read_evaluation(directory: Path, role: str = "") -> Evaluation:
    from recalign.evaluation.outputs import read_metrics

    raw = read_metrics(directory)
    return Evaluation(
        directory=directory,
        model=str(raw.get("model", directory.parent.name)),
        protocol=str(raw.get("protocol", directory.name)),
        split=str(raw.get("split", "test")),
        users=int(raw.get("users", 0)),
        metrics={k: float(v) for k, v in raw.get("metrics", {}).items()},
        intervals={k: list(v) for k, v in raw.get("intervals", {}).items()},
        raw=raw,
        role=role,
    )


@dataclass(frozen=True)
class Unreadable:
    """An evaluation the report cannot show: missing, unreadable or altered."""

    directory: Path
    reason: str
    stage: str | None = None  # the `recalign run` stage that writes it, when known


def _sorted(found: list[Evaluation]) -> list[Evaluation]:
    return sorted(found, key=lambda e: (*protocol_order(e.protocol), e.model, str(e.directory)))


def find_evaluations(root: Path, role: str = "") -> list[Evaluation]:
    """Every evaluation below `root`, in a stable order: protocol (in the ranking core's
    order, unknown names last), model, directory. An unreadable one is an error."""
    found = [read_evaluation(path.parent, role) for path in sorted(root.rglob(METRICS_FILE))]
    return _sorted(found)


def gather(
    directories: list[Path], role: str, stages: dict[Path, str]
) -> tuple[list[Evaluation], list[Unreadable]]:
    """Read each evaluation directory; those that cannot be read are listed, not dropped."""
    from recalign.errors import RecalignError

    found, unreadable = [], []
    for directory in directories:
        try:
            found.append(read_evaluation(directory, role))
        except (RecalignError, OSError, ValueError, KeyError, TypeError) as error:
            unreadable.append(Unreadable(directory, str(error), stages.get(directory)))
    return _sorted(found), unreadable


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """The training log's records (resume and interrupt markers included); a damaged line
    ends the log with a warning naming it: the report still shows what came before."""
    if not path.is_file():
        return []
    records = []
    try:
        for _, record in fileio.iter_jsonl(path):
            if isinstance(record, dict):
                records.append(record)
    except RecalignError as err:
        log.warning("training log cut short: %s", err)
    return records


def read_stats(data_dir: Path) -> dict[str, Any]:
    return read_json(data_dir / STATS_FILE)


def on_same_users(llm: Sequence[Evaluation], baselines: Sequence[Evaluation]) -> list[Evaluation]:
    """Each baseline re-scored on the users the LLM evaluation of its protocol sampled.

    A run evaluates the LLM on a seeded sample of users (`evaluation.max_users`, for
    time) while the baselines rank every user; differences between people are larger
    than between models at these sizes, so the fair comparison is on the same users.
    Rows have the role SAME_USERS and the model `<model> (same users)`; nothing is
    added when the LLM saw them all.
    """
    from recalign.evaluation.outputs import CORE_KEYS, compute_metrics, read_predictions

    sampled: dict[str, set[int]] = {}
    for evaluation in llm:
        protocol = evaluation.protocol
        if protocol not in sampled and evaluation.predictions_path.is_file():
            sampled[protocol] = {r[USER_ID] for r in read_predictions(evaluation.directory)}
    rows = []
    for evaluation in baselines:
        users = sampled.get(evaluation.protocol)
        if not users or evaluation.users <= len(users):
            continue
        if not evaluation.predictions_path.is_file():
            continue
        records = [r for r in read_predictions(evaluation.directory) if r[USER_ID] in users]
        if len(records) != len(users):  # another split or data: not the same people
            continue
        bootstrap = evaluation.raw.get("bootstrap") or {}
        metrics = compute_metrics(
            records,
            protocol=evaluation.protocol,
            split=evaluation.split,
            model=evaluation.model,
            exclude_history=evaluation.raw.get("exclude_history"),
            # The baseline's own record (its config, fit) stays with the row: labels read it.
            extra={k: v for k, v in evaluation.raw.items() if k not in CORE_KEYS},
            n_boot=int(bootstrap.get("resamples", 1000)),
            seed=int(bootstrap.get("seed", 0)),
            ci=float(bootstrap.get("confidence", 0.95)),
            cold_items=(evaluation.raw.get("by_group") or {}).get("cold_items"),
        )
        rows.append(
            Evaluation(
                directory=evaluation.directory,
                model=evaluation.model + SAME_USERS_SUFFIX,
                protocol=evaluation.protocol,
                split=evaluation.split,
                users=int(metrics["users"]),
                metrics={k: float(v) for k, v in metrics["metrics"].items()},
                intervals={k: list(v) for k, v in metrics["intervals"].items()},
                raw=metrics,
                role=SAME_USERS,
                label=evaluation.label,
            )
        )
    return rows


@dataclass(frozen=True)
class RunEvaluations:
    """Every evaluation of a run directory, labelled, with the same-users re-scorings."""

    run_dir: Path
    llm: list[Evaluation] = field(default_factory=list)
    baselines: list[Evaluation] = field(default_factory=list)
    same_users: list[Evaluation] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)  # the pipeline's, as JSON
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def all(self) -> list[Evaluation]:
        return [*self.llm, *self.baselines, *self.same_users]


def unreadable_lines(run: RunEvaluations) -> list[str]:
    """One line per evaluation the results leave out, saying why and how to redo it."""
    lines = []
    for item in run.unreadable:
        where = item.directory.relative_to(run.run_dir).as_posix()
        redo = (
            f"run `recalign run` again to redo stage {item.stage}"
            if item.stage
            else "evaluate it again"
        )
        lines.append(f"`{where}` is not in the tables: {item.reason} ({redo})")
    return lines
