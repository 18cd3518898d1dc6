"""What `prepare` drops, and the lines that say so.

Duplicate rule: a row equal to an earlier one in user, item, timestamp and rating (the
fields the source has) is dropped, and the count and the first one's file and line are
reported. Only sources with timestamps are checked: without them a row's position is
its time, so a repeated user-item pair is a repeat interaction and is kept.

`report_lines` turns a prepare report (manifest.json's `report`) into one line per step
— duplicates, k-core, short users, item-text fallbacks and cuts — for the CLI to print.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import polars as pl

from recalign.constants import MIN_SEQUENCE_LENGTH
from recalign.data.readers.base import (
    RAW_ITEM,
    RAW_LINE,
    RAW_ORDER,
    RAW_RATING,
    RAW_TIMESTAMP,
    RAW_USER,
    SourceData,
    line_unit,
)
from recalign.data.text import DEFAULT_MAX_CHARS, DEFAULT_MAX_WORDS

logger = logging.getLogger(__name__)


def _where(source: SourceData, row: Mapping[str, Any]) -> str:
    """`file line N` for a row of `source.interactions` (its record number without one)."""
    if source.log_file is not None and row.get(RAW_LINE) is not None:
        return f"{source.log_file} {line_unit(source.log_file)} {row[RAW_LINE]}"
    return f"interaction {row[RAW_ORDER] + 1}"


def drop_duplicates(source: SourceData) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Drop rows that repeat an earlier row's user, item, timestamp (and rating).

    Returns the kept rows (file order) and what was dropped: the count, the key used
    and where the first duplicate is. Without timestamps nothing is checked (a repeat is
    a repeat interaction; see the module docstring).
    """
    interactions = source.interactions
    if RAW_TIMESTAMP not in interactions.columns:
        return interactions, {"dropped": 0, "key": None}
    key = [c for c in (RAW_USER, RAW_ITEM, RAW_TIMESTAMP, RAW_RATING) if c in interactions.columns]
    repeated = ~interactions.select(pl.struct(key).is_first_distinct()).to_series()
    report: dict[str, Any] = {"dropped": int(repeated.sum()), "key": key}
    if report["dropped"]:
        first = interactions.filter(repeated).row(0, named=True)
        original = interactions.filter(
            pl.all_horizontal(pl.col(c).eq_missing(first[c]) for c in key)
        ).row(0, named=True)
        report["first"] = f"{_where(source, first)} (repeats {_where(source, original)})"
        logger.warning(
            "dropped %d exact duplicate row(s) (same %s); the first is %s",
            report["dropped"],
            ", ".join(key),
            report["first"],
        )
        interactions = interactions.filter(~repeated)
    return interactions, report


def report_lines(report: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """What a prepare dropped, cut or replaced, and why, one line per step: `(line,
    notable)`, notable when something was dropped or cut. Steps the report does not
    cover (e.g. the synthetic shop's) are left out."""
    lines: list[tuple[str, bool]] = []
    duplicates = report.get("duplicates")
    if duplicates is not None:
        if duplicates.get("key") is None:
            lines.append(("duplicates: not checked (no timestamps: a repeat is kept)", False))
        elif duplicates["dropped"]:
            lines.append(
                (
                    f"duplicates: dropped {duplicates['dropped']:,} exact duplicate row(s) "
                    f"(same {', '.join(duplicates['key'])}); first: {duplicates['first']}",
                    True,
                )
            )
        else:
            lines.append(("duplicates: none", False))
    kcore = report.get("kcore")
    if "kcore" in report and not kcore:
        lines.append(("k-core: not applied", False))
    if kcore:
        dropped = report.get("interactions_read", 0) - kcore["interactions_kept"]
        dropped -= (duplicates or {}).get("dropped", 0)
        lines.append(
            (
                f"{kcore['k']}-core: kept {kcore['interactions_kept']:,} of "
                f"{kcore['interactions_kept'] + dropped:,} interactions, dropped {dropped:,} "
                f"({kcore['passes']} passes)",
                dropped > 0,
            )
        )
    if "users_excluded_short" in report:
        users = report["users_excluded_short"]
        lines.append(
            (
                f"short users: excluded {users:,} user(s) with fewer than "
                f"{report.get('min_length', MIN_SEQUENCE_LENGTH)} interactions "
                f"({report.get('interactions_excluded_short', 0):,} interactions)",
                users > 0,
            )
        )
    if report.get("items_without_metadata"):
        lines.append((f"items without metadata: {report['items_without_metadata']:,}", True))
    if "items_text_fallback" in report:
        budget = report.get("text_budget", {})
        lines.append(
            (
                f"item texts: {report['items_text_fallback']:,} without a title -> fallback "
                f"({report.get('items_text_from_short_text', 0):,} short text, "
                f"{report.get('items_text_from_id', 0):,} `item <id>`), "
                f"{report.get('items_disambiguated', 0):,} disambiguated",
                False,
            )
        )
        lines.append(
            (
                f"item texts cut: {report.get('items_text_cut_words', 0):,} to "
                f"{budget.get('max_words', DEFAULT_MAX_WORDS)} words, "
                f"{report.get('items_text_cut_chars', 0):,} to "
                f"{budget.get('max_chars', DEFAULT_MAX_CHARS)} characters (--max-chars)",
                report.get("items_text_cut_chars", 0) > 0,
            )
        )
    return lines
