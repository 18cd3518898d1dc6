"""Console output shared by the commands: one rich console, the results table."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Off a terminal (logs, CI) rich assumes 80 columns and squeezes tables; give it room.
console = Console(width=None if sys.stdout.isatty() else 140)

_SHOWN = ("hit@10", "ndcg@10", "mrr", "hit@1", "rmse", "mae")


def print_results(run_dir: Path) -> None:
    """The metrics of every evaluation in a run directory, one row per model and protocol."""
    from recalign.report.collect import find_evaluations, on_same_users

    llm, baselines = (
        find_evaluations(run_dir / sub) if (run_dir / sub).is_dir() else []
        for sub in ("eval", "baselines")
    )
    # Baselines also on the LLM's sampled users, so that like is compared with like.
    evaluations = [*llm, *baselines, *on_same_users(llm, baselines)]
    if not evaluations:
        console.print("no evaluations in", run_dir)
        return
    keys = [k for k in _SHOWN if any(k in e.metrics for e in evaluations)]
    table = Table("protocol", "model", "users", *keys, title=f"Results ({run_dir})")
    for e in sorted(evaluations, key=lambda e: (e.protocol, e.model)):
        table.add_row(
            e.protocol,
            e.model,
            str(e.users),
            *[f"{e.metrics[k]:.4f}" if k in e.metrics else "–" for k in keys],
        )
    console.print(table)
