"""Gather what a run directory holds: every evaluation's metrics, training logs, stats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.constants import METRICS_FILE, PREDICTIONS_FILE, STATS_FILE


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

    @property
    def predictions_path(self) -> Path:
        return self.directory / PREDICTIONS_FILE


def read_evaluation(directory: Path) -> Evaluation:
    raw = json.loads((directory / METRICS_FILE).read_text())
    return Evaluation(
        directory=directory,
        model=str(raw.get("model", directory.parent.name)),
        protocol=str(raw.get("protocol", directory.name)),
        split=str(raw.get("split", "test")),
        users=int(raw.get("users", 0)),
        metrics={k: float(v) for k, v in raw.get("metrics", {}).items()},
        intervals={k: list(v) for k, v in raw.get("intervals", {}).items()},
        raw=raw,
    )


def find_evaluations(root: Path) -> list[Evaluation]:
    """Every evaluation below `root`, in a stable order (protocol, model)."""
    found = [read_evaluation(path.parent) for path in sorted(root.rglob(METRICS_FILE))]
    return sorted(found, key=lambda e: (e.protocol, e.model, str(e.directory)))


def read_train_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            records.append(json.loads(line))
    return records


def read_stats(data_dir: Path) -> dict[str, Any]:
    path = data_dir / STATS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


FULL_RANKING = ("retrieval", "full")  # LLM retrieval and the baselines rank the catalogue


def comparison_group(evaluation: Evaluation) -> str:
    """Evaluations in one group are comparable: baselines' `full` joins LLM `retrieval`."""
    return "retrieval" if evaluation.protocol in FULL_RANKING else evaluation.protocol


def on_same_users(llm: Sequence[Evaluation], baselines: Sequence[Evaluation]) -> list[Evaluation]:
    """Each baseline re-scored on the users the LLM evaluation of its group sampled.

    A run evaluates the LLM on a seeded sample of users (`evaluation.max_users`, for
    time) while the baselines rank every user; differences between people are larger
    than between models at these sizes, so the fair comparison is on the same users.
    Rows are labelled `<model> (same users)`; nothing is added when the LLM saw them all.
    """
    from recalign.evaluation.outputs import compute_metrics, read_predictions

    sampled: dict[str, set[int]] = {}
    for evaluation in llm:
        group = comparison_group(evaluation)
        if group not in sampled and evaluation.predictions_path.is_file():
            sampled[group] = {r["user_id"] for r in read_predictions(evaluation.directory)}
    rows = []
    for evaluation in baselines:
        users = sampled.get(comparison_group(evaluation))
        if not users or evaluation.users <= len(users):
            continue
        if not evaluation.predictions_path.is_file():
            continue
        records = [r for r in read_predictions(evaluation.directory) if r["user_id"] in users]
        if len(records) != len(users):  # another split or data: not the same people
            continue
        metrics = compute_metrics(
            records,
            protocol=str(evaluation.raw.get("protocol", evaluation.protocol)),
            split=evaluation.split,
            model=evaluation.model,
            exclude_history=evaluation.raw.get("exclude_history"),
        )
        rows.append(
            Evaluation(
                directory=evaluation.directory,
                model=f"{evaluation.model} (same users)",
                protocol=evaluation.protocol,
                split=evaluation.split,
                users=int(metrics["users"]),
                metrics={k: float(v) for k, v in metrics["metrics"].items()},
                intervals={k: list(v) for k, v in metrics["intervals"].items()},
                raw=metrics,
            )
        )
    return rows
