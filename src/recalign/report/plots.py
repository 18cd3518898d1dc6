"""Figures for the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recalign.report.collect import Evaluation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Title and legend the figure's one plot, write it to `path` and free it."""
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bar_chart(evaluations: Sequence[Evaluation], path: Path, keys=("ndcg@10", "hit@10")) -> Path:
    """Grouped bars of `keys` per model, with the bootstrap intervals as error bars."""
    plt = _pyplot()
    # Readable names, wrapped onto short lines so long ones stay whole under the bars.
    models = [textwrap.fill(e.name, 18) for e in evaluations]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(models) + 2), 4.2))
    width = 0.8 / len(keys)
    for offset, key in enumerate(keys):
        values = [e.metrics.get(key, 0.0) for e in evaluations]
        lows = [
            v - e.intervals.get(key, [v, v])[0] for v, e in zip(values, evaluations, strict=True)
        ]
        highs = [
            e.intervals.get(key, [v, v])[1] - v for v, e in zip(values, evaluations, strict=True)
        ]
        positions = [i + (offset - (len(keys) - 1) / 2) * width for i in range(len(models))]
        ax.bar(positions, values, width, yerr=[lows, highs], capsize=3, label=key)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, fontsize=8)
    ax.set_ylabel("score (95% bootstrap interval)")
    return _save(plt, fig, ax, "Full ranking over the catalogue", path)


def training_curves(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Training (and validation) loss against the optimisation step."""
    train = [(r["step"], r["loss"]) for r in records if "step" in r and "loss" in r]
    valid = [(r["step"], r["eval_loss"]) for r in records if "step" in r and "eval_loss" in r]
    if not train and not valid:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if valid:
        ax.plot(*zip(*valid, strict=True), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return _save(plt, fig, ax, "Training", path)
