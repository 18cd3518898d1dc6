"""The cold-start table: how each model does on test cases whose item it never saw.

A dataset prepared with `--cold-items` keeps a seeded share of its items out of every
training sample and every baseline's training data; each evaluation's `metrics.json`
then splits its users by whether the held-out item is one of them (`by_group`). The
table puts those splits side by side, on full ranking, the only protocol where a model
must find the item in the whole catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recalign.constants import hit_at, ndcg_at
from recalign.report.blocks import Block, Heading, Paragraph, Table
from recalign.report.collect import Evaluation
from recalign.report.results import ResultGroup

GROUPS = ("warm", "cold")
KEYS = (ndcg_at(10), hit_at(10))


def _cell(summary: dict[str, Any], key: str) -> str:
    value = summary.get("metrics", {}).get(key)
    if value is None:
        return "–"
    interval = summary.get("intervals", {}).get(key)
    if not interval or len(interval) != 2:
        return f"{value:.4f}"
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def _row(evaluation: Evaluation) -> list[str] | None:
    groups = evaluation.raw.get("by_group") or {}
    if not all(isinstance(groups.get(g), dict) for g in GROUPS):
        return None
    row = [evaluation.name]
    for group in GROUPS:
        summary = groups[group]
        row += [f"{int(summary.get('users', 0)):,}", *(_cell(summary, k) for k in KEYS)]
    return row


def cold_start_blocks(groups: Sequence[ResultGroup]) -> list[Block]:
    """The section, when the full-ranking results were split into warm and cold cases."""
    group = next((g for g in groups if g.protocol == "retrieval"), None)
    if group is None:
        return []
    rows = [row for row in map(_row, group.rows) if row is not None]
    if not rows:
        return []
    cold_items = next(
        (len(e.raw["by_group"].get("cold_items") or []) for e in group.rows if _row(e)), 0
    )
    header = ["model"]
    for name in GROUPS:
        header += [f"{name} users", *(f"{name} {k}" for k in KEYS)]
    return [
        Heading("Cold-start items", 3),
        Paragraph(
            f"Cold items: {cold_items:,}, held out of training (`--cold-items`): no "
            "training sample and no baseline ever saw them, yet they stay in the catalogue. A test "
            "user is 'cold' when their held-out item is one of them. The baselines know an "
            "item only by its id, so a cold item's score is a fallback (popularity: count 0; "
            "BPR-MF and SASRec: an embedding never trained as a positive); the language "
            "model can reach one through its text or semantic id. Full ranking, the same "
            "users as the table above; few cold users make wide intervals."
        ),
        Table(header, rows),
    ]
