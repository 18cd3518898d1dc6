"""`report.md` and `report.html` for a run directory (`recalign report RUN_DIR`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recalign.constants import ITEMS_FILE, MANIFEST_FILE
from recalign.errors import RecalignError
from recalign.report.blocks import (
    Block,
    Code,
    Heading,
    Image,
    Paragraph,
    Table,
    to_html,
    to_markdown,
)
from recalign.report.collect import (
    Evaluation,
    comparison_group,
    find_evaluations,
    on_same_users,
    read_stats,
    read_train_log,
)
from recalign.report.plots import bar_chart, training_curves

log = logging.getLogger(__name__)

_PROTOCOL_TITLES = {
    "retrieval": "Full ranking over the catalogue (retrieval)",
    "ranking": "Ranking K candidates in the prompt",
    "sampled": "Sampled 1 + 99 candidates (not comparable with full ranking)",
    "rating": "Rating prediction",
}
_KEY_ORDER = ("hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10", "mrr", "rmse", "mae")


def format_value(value: float, interval: Sequence[float] | None) -> str:
    if interval is None or len(interval) != 2:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def results_tables(evaluations: Sequence[Evaluation]) -> list[Block]:
    blocks: list[Block] = []
    by_protocol: dict[str, list[Evaluation]] = {}
    for evaluation in evaluations:
        by_protocol.setdefault(comparison_group(evaluation), []).append(evaluation)
    for protocol in sorted(
        by_protocol, key=lambda p: list(_PROTOCOL_TITLES).index(p) if p in _PROTOCOL_TITLES else 99
    ):
        group = by_protocol[protocol]
        keys = [k for k in _KEY_ORDER if any(k in e.metrics for e in group)]
        rows = [
            [e.model, e.split, str(e.users)]
            + [
                format_value(e.metrics[k], e.intervals.get(k)) if k in e.metrics else "–"
                for k in keys
            ]
            for e in group
        ]
        blocks.append(Heading(_PROTOCOL_TITLES.get(protocol, protocol), 3))
        blocks.append(Table(["model", "split", "users", *keys], rows))
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
    table = json.loads(path.read_text())
    header = table["header"]
    return [
        Heading("Ablation", 2),
        Paragraph(table.get("note", "")),
        Table(header, table["rows"]),
    ]


def _item_texts(data_dir: Path) -> dict[int, str]:
    import polars as pl

    items = pl.read_parquet(data_dir / ITEMS_FILE, columns=["item_id", "text"])
    return dict(zip(items["item_id"].to_list(), items["text"].to_list(), strict=True))


def example_blocks(run_dir: Path, data_dir: Path, n: int = 3) -> list[Block]:
    """History -> top-5 for a few users of the LLM's retrieval evaluation, hits marked."""
    predictions = run_dir / "eval" / "retrieval" / "predictions.jsonl"
    if not predictions.is_file() or not (data_dir / ITEMS_FILE).is_file():
        return []
    from recalign.data import load_prepared

    dataset = load_prepared(data_dir)
    texts = _item_texts(data_dir)
    histories = dict(
        zip(
            dataset.split.test["user_id"].to_list(),
            dataset.split.test["history"].to_list(),
            strict=True,
        )
    )
    with predictions.open() as handle:
        lines = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    blocks: list[Block] = [Heading("Examples (test users, retrieval)", 2)]
    for record in lines:
        history = histories.get(record["user_id"], [])[-5:]
        ranked = record.get("ranked", [])[:5]
        shown = "\n".join(
            f"  {i}. {texts.get(item, item)}{'   <- hit' if item == record['target'] else ''}"
            for i, item in enumerate(ranked, 1)
        )
        blocks.append(
            Code(
                f"user {record['user_id']}\nlast items: "
                + " | ".join(texts.get(item, str(item)) for item in history)
                + f"\ntarget: {texts.get(record['target'], record['target'])}\ntop-5:\n{shown}"
            )
        )
    return blocks


def build_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write `report.md` (figures beside it) and a self-contained `report.html`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RecalignError(f"{run_dir} is not a run directory")
    figures = run_dir / "figures"
    figures.mkdir(exist_ok=True)
    manifest_path = run_dir / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    llm, baselines = (
        find_evaluations(run_dir / root) if (run_dir / root).is_dir() else []
        for root in ("eval", "baselines")
    )
    same_users = on_same_users(llm, baselines)
    evaluations = [*llm, *baselines, *same_users]
    title = f"recalign report: {manifest.get('name', run_dir.name)}"
    blocks: list[Block] = [Heading(title, 1)]
    config = manifest.get("config", {})
    if config:
        blocks.append(
            Paragraph(
                f"dataset {config.get('data', {}).get('name')}, model "
                f"{config.get('model', {}).get('spec')}, preset "
                f"{config.get('samples', {}).get('preset')}, seed {config.get('seed')}"
            )
        )
    ablation = ablation_blocks(run_dir)
    if evaluations or not ablation:
        blocks.append(Heading("Results", 2))
    if evaluations:
        blocks.append(
            Paragraph(
                "Values are means over users with 95% bootstrap intervals. "
                "History exclusion: "
                + ", ".join(sorted({str(e.raw.get("exclude_history")) for e in evaluations}))
                + (
                    ". Rows marked (same users) score a baseline on exactly the users the "
                    "LLM was evaluated on (a seeded sample): compare the LLM with those."
                    if same_users
                    else ""
                )
            )
        )
        blocks.extend(results_tables(evaluations))
        # The chart compares like with like: the same-users rows when there are any.
        charted = [*llm, *same_users] if same_users else evaluations
        full = [e for e in charted if comparison_group(e) == "retrieval"]
        if full:
            blocks.append(Image(bar_chart(full, figures / "full_ranking.png"), "NDCG@10 and HR@10"))
    elif not ablation:
        blocks.append(Paragraph("No evaluation has been run yet."))
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
    blocks.extend(example_blocks(run_dir, data_dir))
    md_path = run_dir / "report.md"
    md_path.write_text(to_markdown(blocks, run_dir))
    html_path = run_dir / "report.html"
    html_path.write_text(to_html(blocks, title))
    log.info("report written to %s and %s", md_path, html_path)
    return md_path, html_path
