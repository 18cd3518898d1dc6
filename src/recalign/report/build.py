"""`report.md` and `report.html` for a run directory (`recalign report RUN_DIR`).

The page reads top to bottom for someone new to the project: the verdict per protocol,
the settings in words, the results tables (the language model first), how to read them
(metrics, users, intervals, the models and their ids), then training curves, the
dataset and example users.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recalign.errors import RecalignError
from recalign.fileio import read_json_object
from recalign.report.blocks import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from recalign.report.cold import cold_start_blocks
from recalign.report.collect import RunEvaluations, read_stats, read_train_log, unreadable_lines
from recalign.report.examples import example_blocks
from recalign.report.labels import collect_run
from recalign.report.legend import metric_legend, models_legend
from recalign.report.plots import bar_chart, training_curves
from recalign.report.results import ResultGroup, result_groups
from recalign.report.settings import run_config, settings_lines
from recalign.report.verdict import best, summary_lines

log = logging.getLogger(__name__)


def format_value(value: float, interval: Sequence[float] | None) -> str:
    if interval is None or len(interval) != 2:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def results_table(group: ResultGroup) -> Table:
    """The rows of one protocol: model, users (and split when they differ), metrics."""
    splits = len({e.split for e in group.rows}) > 1
    header = ["model", *(["split"] if splits else []), "users", *group.keys]
    rows = [
        [e.name, *([e.split] if splits else []), f"{e.users:,}"]
        + [
            format_value(e.metrics[k], e.intervals.get(k)) if k in e.metrics else "–"
            for k in group.keys
        ]
        for e in group.rows
    ]
    return Table(header, rows)


def results_tables(groups: Sequence[ResultGroup]) -> list[Block]:
    blocks: list[Block] = []
    for group in groups:
        blocks.append(Heading(group.title, 3))
        blocks.append(results_table(group))
    return blocks


def stats_table(stats: dict[str, Any]) -> Table:
    lengths = stats.get("sequence_length", {})
    rows = [
        ["users", f"{stats.get('users', 0):,}"],
        ["items", f"{stats.get('items', 0):,}"],
        ["interactions", f"{stats.get('interactions', 0):,}"],
        ["density", f"{stats.get('density', 0.0):.5f}"],
        [
            "sequence length (median / mean / max)",
            f"{lengths.get('median', 0):.0f} / {lengths.get('mean', 0):.1f} / {lengths.get('max', 0):.0f}",
        ],
        ["ratings", str(stats.get("has_ratings", False))],
        ["timestamps", str(stats.get("has_timestamps", False))],
        ["title coverage", f"{stats.get('title_coverage', 0.0):.1%}"],
        [
            "texts from a fallback / disambiguated",
            f"{stats.get('text_fallbacks', 0)} / {stats.get('text_disambiguated', 0)}",
        ],
    ]
    return Table(["statistic", "value"], rows)


def ablation_blocks(run_dir: Path) -> list[Block]:
    path = run_dir / "ablation.json"
    if not path.is_file():
        return []
    table = read_json_object(path)
    header = table["header"]
    return [
        Heading("Ablation", 2),
        Paragraph(table.get("note", "")),
        Table(header, table["rows"]),
    ]


def _chart(groups: Sequence[ResultGroup], figures: Path) -> list[Block]:
    """NDCG@10 and HR@10 of full ranking, like with like: the LLM's users when sampled."""
    group = next((g for g in groups if g.protocol == "retrieval"), None)
    if group is None:
        return []
    charted = [*group.llm, *group.comparable_baselines] if group.llm else group.rows
    return [Image(bar_chart(charted, figures / "full_ranking.png"), "NDCG@10 and HR@10")]


def _examples(groups: Sequence[ResultGroup], data_dir: Path) -> list[Block]:
    group = next((g for g in groups if g.protocol == "retrieval" and g.llm), None)
    if group is None:
        return []
    return example_blocks(group.llm[0], best(group.comparable_baselines, group.metric), data_dir)


def _subtitle(run: RunEvaluations) -> list[Block]:
    config = run_config(run)
    if not config:
        return []
    return [
        Paragraph(
            f"Dataset {config.get('data', {}).get('name')}, model "
            f"{config.get('model', {}).get('spec')}, task mixture "
            f"{config.get('samples', {}).get('preset')}, seed {config.get('seed')}."
        )
    ]


def result_blocks(run: RunEvaluations, groups: Sequence[ResultGroup], figures: Path) -> list[Block]:
    """Summary (verdicts), settings, results tables, chart and the legend."""
    verdicts = summary_lines(groups)
    blocks: list[Block] = []
    if verdicts:
        blocks += [Heading("Summary", 2), Bullets(verdicts)]
    settings = settings_lines(run, groups)
    if settings:
        blocks += [Heading("Settings", 2), Bullets(settings)]
    blocks += [
        Heading("Results", 2),
        *_unreadable_blocks(run),
        Paragraph(
            "Means over users, with 95% bootstrap intervals in brackets. The language "
            "model's row comes first, then the baselines on its users, then the baselines "
            "on every user, each best first (on ndcg@10; on mae for ratings). 'How to read "
            "the tables' below explains every column."
        ),
        *results_tables(groups),
        *cold_start_blocks(groups),
        *_chart(groups, figures),
        Heading("How to read the tables", 2),
        Bullets(metric_legend(groups)),
        Heading("Models", 3),
        Bullets(models_legend(run.all)),
    ]
    return blocks


def _unreadable_blocks(run: RunEvaluations) -> list[Block]:
    """Evaluations that exist (or should) but cannot be read: said, never dropped."""
    lines = unreadable_lines(run)
    return [Heading("Missing results", 3), Bullets(lines)] if lines else []


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write `report.md` (figures beside it) and a self-contained `report.html`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RecalignError(f"{run_dir} is not a run directory")
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    run = collect_run(run_dir)
    groups = result_groups(run)
    title = f"recalign report: {run.manifest.get('name') or run_dir.name}"
    blocks: list[Block] = [Heading(title, 1), *_subtitle(run)]
    ablation = ablation_blocks(run_dir)
    if groups:
        blocks.extend(result_blocks(run, groups, figures))
    elif run.unreadable:
        blocks += [Heading("Results", 2), *_unreadable_blocks(run)]
    elif not ablation:
        blocks += [Heading("Results", 2), Paragraph("No evaluation has been run yet.")]
    blocks.extend(ablation)
    curves = training_curves(
        read_train_log(run_dir / "train" / "train_log.jsonl"), figures / "training.png"
    )
    if curves:
        blocks.extend([Heading("Training", 2), Image(curves, "training curves")])
    data_dir = run_dir / "data"
    stats = read_stats(data_dir)
    if stats:
        blocks.extend([Heading("Dataset", 2), stats_table(stats)])
    blocks.extend(_examples(groups, data_dir))
    md_path = run_dir / "report.md"
    md_path.write_text(to_markdown(blocks, run_dir))
    html_path = run_dir / "report.html"
    html_path.write_text(to_html(blocks, title))
    log.info("report written to %s and %s", md_path, html_path)
    return md_path, html_path
