"""Item text: cleaning, fallbacks and deterministic de-duplication.

Prompts name items by their text and the decoder maps generated text back to an item,
so text -> item must be a bijection. Titles are cleaned (HTML entities, whitespace),
cut to a word budget, replaced by a fallback where empty, and made unique with a
disambiguator that depends only on the items themselves (never on run order).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence

import polars as pl

from recalign.constants import (
    DISAMBIGUATED,
    ITEM_ID,
    SHORT_TEXT,
    SOURCE_ID,
    TEXT,
    TEXT_SOURCE,
    TITLE,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_WORDS = 24
# Tried in this order for a group of items that share a text; the first column whose
# values tell the group apart wins, and a counter settles whatever is left.
DEFAULT_DISAMBIGUATORS = ("brand", "release_year")

_WHITESPACE = re.compile(r"\s+")


def clean_text(value: str | None, max_words: int = DEFAULT_MAX_WORDS) -> str:
    """Unescape HTML entities, collapse whitespace and keep at most `max_words` words.

    Unescaping runs twice because scraped titles are often double-escaped
    (`&amp;amp;`); a second pass over clean text is a no-op.
    """
    if not value:
        return ""
    text = html.unescape(html.unescape(value))
    words = _WHITESPACE.split(text.strip())
    if max_words > 0:
        words = words[:max_words]
    return " ".join(w for w in words if w)


def clean_column(column: pl.Series, max_words: int = DEFAULT_MAX_WORDS) -> pl.Series:
    """`clean_text` over a column; nulls become empty strings."""
    return pl.Series(
        column.name,
        [clean_text(v, max_words) for v in column.cast(pl.Utf8).to_list()],
        dtype=pl.Utf8,
    )


def _fallback_texts(items: pl.DataFrame, max_words: int) -> tuple[list[str], list[str]]:
    """Title -> short_text -> `item <source id>`, with where each text came from."""
    n = items.height
    empty = pl.Series([None] * n, dtype=pl.Utf8)
    titles = clean_column(items.get_column(TITLE) if TITLE in items.columns else empty, max_words)
    shorts = clean_column(
        items.get_column(SHORT_TEXT) if SHORT_TEXT in items.columns else empty, max_words
    )
    source_ids = items.get_column(SOURCE_ID).cast(pl.Utf8).to_list()
    texts, sources = [], []
    for title, short, source_id in zip(titles, shorts, source_ids, strict=True):
        if title:
            texts.append(title)
            sources.append("title")
        elif short:
            texts.append(short)
            sources.append("short_text")
        else:
            texts.append(f"item {source_id}")
            sources.append("id")
    return texts, sources


def _value(items: pl.DataFrame, column: str, row: int) -> str:
    if column not in items.columns:
        return ""
    value = items[row, column]
    if value is None:
        return ""
    return clean_text(str(value), max_words=8)


def disambiguate(
    texts: Sequence[str],
    items: pl.DataFrame,
    disambiguators: Sequence[str] = DEFAULT_DISAMBIGUATORS,
) -> tuple[list[str], list[bool]]:
    """Make every text unique; returns the new texts and which ones were changed.

    Rows are visited in `items` order (callers sort by item id), so the result is
    deterministic. For each group of equal texts, every member gets `text (value)` from
    the first disambiguator column whose values are non-empty and distinct within the
    group; if none separates the group, members get the first column's value where
    they have one, and remaining collisions get a counter `text (2)`, `text (3)`, ...
    in row order (the first member keeps its text). A suffix that would collide with
    another item's text is skipped, so the loop always ends with unique texts.
    """
    out = list(texts)
    changed = [False] * len(out)
    groups: dict[str, list[int]] = {}
    for row, text in enumerate(out):
        groups.setdefault(text, []).append(row)
    taken = set(groups)
    for text, rows in groups.items():
        if len(rows) < 2:
            continue
        chosen = None
        for column in disambiguators:
            values = [_value(items, column, r) for r in rows]
            if all(values) and len(set(values)) == len(values):
                candidates = [f"{text} ({v})" for v in values]
                if not taken.intersection(candidates):
                    chosen = candidates
                    break
        if chosen is None:
            chosen = []
            seen: set[str] = set()
            for position, row in enumerate(rows):
                extra = next((v for v in (_value(items, c, row) for c in disambiguators) if v), "")
                candidate = f"{text} ({extra})" if extra else text
                if position == 0 and candidate == text:
                    seen.add(candidate)
                    chosen.append(candidate)
                    continue
                base, counter = candidate, 1
                while candidate in seen or (candidate != text and candidate in taken):
                    counter += 1
                    candidate = f"{base} ({counter})"
                seen.add(candidate)
                chosen.append(candidate)
        for row, candidate in zip(rows, chosen, strict=True):
            if candidate != out[row]:
                out[row] = candidate
                changed[row] = True
                taken.add(candidate)
    return out, changed


def build_item_texts(
    items: pl.DataFrame,
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    disambiguators: Sequence[str] = DEFAULT_DISAMBIGUATORS,
) -> pl.DataFrame:
    """Add `text`, `text_source` and `disambiguated` columns (items sorted by item id)."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    items = items.sort(ITEM_ID) if ITEM_ID in items.columns else items
    texts, sources = _fallback_texts(items, max_words)
    texts, changed = disambiguate(texts, items, disambiguators)
    fallbacks = sum(s != "title" for s in sources)
    logger.info(
        "item text: %d items, %d fallbacks (no title), %d disambiguated",
        items.height,
        fallbacks,
        sum(changed),
    )
    return items.with_columns(
        pl.Series(TEXT, texts, dtype=pl.Utf8),
        pl.Series(TEXT_SOURCE, sources, dtype=pl.Utf8),
        pl.Series(DISAMBIGUATED, changed, dtype=pl.Boolean),
    )
