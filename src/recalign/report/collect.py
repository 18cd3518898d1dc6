"""Gather what a run directory holds: every evaluation's metrics, training logs, stats."""

from __future__ import annotations

import json
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
