"""Item text: cleaning, fallbacks and deterministic de-duplication.

Prompts name items by their text and the decoder maps generated text back to an item,
so text -> item must be a bijection. Titles are cleaned (HTML entities, whitespace),
cut to a word budget and a character budget, replaced by a fallback where empty, and
made unique with a disambiguator that depends only on the items themselves (never on
run order).

The character budget bounds what one item can cost downstream: every prompt that names
an item repeats its text, so a 10 MB title (or a 10 MB "word" with no spaces) would
otherwise be copied into every sample. Cuts fall on a word boundary; a first word
longer than the budget is cut inside the word.
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
    TEXT_CUT,
    TEXT_SOURCE,
    TITLE,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_WORDS = 24
# Longest cleaned (24-word) texts in the real files: Amazon Beauty titles 222 characters,
# short texts 76, MovieLens-100K titles 74 (docs/data.md). 300 leaves every one whole.
DEFAULT_MAX_CHARS = 300
# A disambiguator value (brand, year) shown after a text: short, and bounded too.
_DISAMBIGUATOR_WORDS, _DISAMBIGUATOR_CHARS = 8, 64
# TEXT_CUT values: which budget shortened the text (null where nothing was cut).
CUT_WORDS, CUT_CHARS = "words", "chars"
# Tried in this order for a group of items that share a text; the first column whose
# values tell the group apart wins, and a counter settles whatever is left.
DEFAULT_DISAMBIGUATORS = ("brand", "release_year")

_WHITESPACE = re.compile(r"\s+")


def cut_text(
    value: str | None, max_words: int = DEFAULT_MAX_WORDS, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[str, str | None]:
    """`clean_text`, and which budget cut it: `"words"`, `"chars"` or None.

    `max_words` / `max_chars` of 0 or less mean no budget.
    """
    if not value:
        return "", None
    text = html.unescape(html.unescape(value))
    words = [w for w in _WHITESPACE.split(text.strip()) if w]
    cut = None
    if 0 < max_words < len(words):
        words, cut = words[:max_words], CUT_WORDS
    text = " ".join(words)
    if 0 < max_chars < len(text):
        # The last space at or before the budget ends the text on a whole word; with
        # none (one giant first word) the word itself is cut.
        boundary = text.rfind(" ", 0, max_chars + 1)
        text, cut = (text[:boundary] if boundary > 0 else text[:max_chars]), CUT_CHARS
    return text, cut


def clean_text(
    value: str | None, max_words: int = DEFAULT_MAX_WORDS, max_chars: int = DEFAULT_MAX_CHARS
) -> str:
    """Unescape HTML entities, collapse whitespace, keep at most `max_words` words and
    `max_chars` characters (cut at a word boundary).

    Unescaping runs twice because scraped titles are often double-escaped
    (`&amp;amp;`); a second pass over clean text is a no-op.
    """
    return cut_text(value, max_words, max_chars)[0]


def clean_column(
    column: pl.Series, max_words: int = DEFAULT_MAX_WORDS, max_chars: int = DEFAULT_MAX_CHARS
) -> pl.Series:
    """`clean_text` over a column; nulls become empty strings."""
    return pl.Series(
        column.name,
        [clean_text(v, max_words, max_chars) for v in column.cast(pl.Utf8).to_list()],
        dtype=pl.Utf8,
    )


def _fallback_texts(
    items: pl.DataFrame, max_words: int, max_chars: int
) -> tuple[list[str], list[str], list[str | None]]:
    """Title -> short_text -> `item <source id>`: the texts, where each came from, and
    which budget (if any) cut it."""
    n = items.height
    nothing = [None] * n

    def values(column: str) -> list:
        return (
            items.get_column(column).cast(pl.Utf8).to_list() if column in items.columns else nothing
        )

    titles, shorts = values(TITLE), values(SHORT_TEXT)
    source_ids = items.get_column(SOURCE_ID).cast(pl.Utf8).to_list()
    texts, sources, cuts = [], [], []
    for title, short, source_id in zip(titles, shorts, source_ids, strict=True):
        text, cut = cut_text(title, max_words, max_chars)
        source = "title"
        if not text:
            text, cut = cut_text(short, max_words, max_chars)
            source = "short_text"
        if not text:
            text, cut = f"item {source_id}", None
            source = "id"
            if len(text) > max_chars:  # an id is not words: cut where the budget ends
                text, cut = text[:max_chars], CUT_CHARS
        texts.append(text)
        sources.append(source)
        cuts.append(cut)
    return texts, sources, cuts


def _value(items: pl.DataFrame, column: str, row: int) -> str:
    if column not in items.columns:
        return ""
    value = items[row, column]
    if value is None:
        return ""
    return clean_text(str(value), _DISAMBIGUATOR_WORDS, _DISAMBIGUATOR_CHARS)


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
    max_chars: int = DEFAULT_MAX_CHARS,
    disambiguators: Sequence[str] = DEFAULT_DISAMBIGUATORS,
) -> pl.DataFrame:
    """Add `text`, `text_source`, `text_cut` and `disambiguated` columns (items sorted
    by item id)."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    items = items.sort(ITEM_ID) if ITEM_ID in items.columns else items
    texts, sources, cuts = _fallback_texts(items, max_words, max_chars)
    texts, changed = disambiguate(texts, items, disambiguators)
    fallbacks = sum(s != "title" for s in sources)
    chars_cut = cuts.count(CUT_CHARS)
    logger.info(
        "item text: %d items, %d fallbacks (no title), %d disambiguated, "
        "%d cut to %d words, %d cut to %d characters",
        items.height,
        fallbacks,
        sum(changed),
        cuts.count(CUT_WORDS),
        max_words,
        chars_cut,
        max_chars,
    )
    if chars_cut:
        logger.warning(
            "%d item text(s) longer than %d characters were cut (--max-chars)", chars_cut, max_chars
        )
    return items.with_columns(
        pl.Series(TEXT, texts, dtype=pl.Utf8),
        pl.Series(TEXT_SOURCE, sources, dtype=pl.Utf8),
        pl.Series(TEXT_CUT, cuts, dtype=pl.Utf8),
        pl.Series(DISAMBIGUATED, changed, dtype=pl.Boolean),
    )
