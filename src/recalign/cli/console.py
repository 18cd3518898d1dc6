"""Console output shared by the commands: one rich console, the results table."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

if TYPE_CHECKING:
    from recalign.report.results import ResultGroup

# Off a terminal (logs, CI) rich assumes 80 columns; give it room unless COLUMNS says.
_WIDE = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
console = Console(width=None if _WIDE else 140)

# The columns the terminal has room for; report.md has every metric with its interval.
_SHOWN = ("hit@10", "ndcg@10", "mrr", "hit@1", "rmse", "mae")


def _group_table(group: ResultGroup, history: str) -> Table:
    from recalign.report.collect import LLM

    keys = [k for k in _SHOWN if k in group.keys]
    table = Table(
        title=group.title,
        title_justify="left",
        title_style="bold",
        caption=escape(f"history rule: {history}"),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    # The name wraps onto more lines instead of being cut; numbers never wrap.
    table.add_column("model", overflow="fold", ratio=1, min_width=12)
    table.add_column("users", justify="right", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right", no_wrap=True, min_width=6)
    for e in group.rows:
        style = "bold" if e.role == LLM else None
        table.add_row(
            escape(e.name),
            f"{e.users:,}",
            *[f"{e.metrics[k]:.4f}" if k in e.metrics else "–" for k in keys],
            style=style,
        )
    return table


def print_results(run_dir: Path, out: Console | None = None) -> None:
    """Every evaluation of a run directory: a table per protocol (the LLM first), the
    verdict under each, the settings and a legend of what the numbers mean."""
    from recalign.report.collect import unreadable_lines
    from recalign.report.labels import collect_run
    from recalign.report.legend import SHORT_LEGEND, models_legend
    from recalign.report.results import result_groups
    from recalign.report.settings import group_history, short_settings
    from recalign.report.verdict import group_verdicts

    out = out or console
    run = collect_run(Path(run_dir))
    groups = result_groups(run)
    for line in unreadable_lines(run):
        out.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
    if not groups:
        out.print("no evaluations in", run_dir)
        return
    out.print(f"[bold]Results[/bold] ({escape(str(run_dir))})", highlight=False)
    for line in short_settings(run, groups):
        _indented(out, escape(line))
    for group in groups:
        out.print()
        out.print(_group_table(group, group_history(group)))
        for line in group_verdicts(group):
            _indented(out, f"[bold]verdict:[/bold] {escape(line)}")
    out.print()
    for line in (*SHORT_LEGEND, "model ids: " + "; ".join(models_legend(run.all, short=True))):
        _indented(out, escape(line))


def _indented(out: Console, markup: str) -> None:
    """A paragraph indented by two columns, its wrapped lines too."""
    out.print(Padding(markup, (0, 0, 0, 2), expand=False), highlight=False)
