"""Turn what a user types (item ids or texts) into catalogue item ids, and search titles.

A history may mix ids and texts. Resolution is deliberately conservative and always
reports *how* each entry matched, so a caller can show "did you mean ..." instead of
silently recommending from the wrong item:

1. an integer is an item id;
2. a string equal to an item's text is that item (``exact``);
3. the same ignoring case and repeated whitespace (``casefold``);
4. a string of digits that is a valid item id (``id``) — CLI arguments are strings;
5. otherwise, with ``fuzzy`` on, the closest text by similarity above a cutoff
   (``fuzzy``, with the similarity): a typo or a dropped word. rapidfuzz's normalised
   Indel similarity (2 x the longest common subsequence / total length, difflib's
   `ratio` on a better matching), computed in C with a length bound that skips most
   titles unread — about 1 ms for one text against 12,000 Beauty titles, where a
   difflib scan took ~50 ms;
6. otherwise, with ``fuzzy`` on, a part of a title (``partial``): the shortest text
   that has every word of the query at the start of one of its words, so
   "OPI Nail Lacquer" finds one of the many "OPI Nail Lacquer, <colour>, 0.5 oz"
   items (a whole-string similarity never reaches its cutoff for a short query against
   a long title). Shortest first, as in `search`: it matches most specifically.

A fuzzy or partial match also says how many items fitted (`matches`), so a caller can
say "1 of 34" and suggest an id or more of the title.

Anything left over is collected and raised together in one `UnknownItemsError`, so
an HTTP client learns about every bad entry at once. Fuzzy lookups are the one costly
step; a `FuzzyBudget` caps how many one request may make, counted before any is made.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from recalign.errors import RecalignError

# Similarity below which a fuzzy match is more likely wrong than right (checked on
# Beauty titles: typos and dropped words stay above 0.75, unrelated titles fall below).
DEFAULT_FUZZY_CUTOFF = 0.75
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"\w+")


class UnknownItemsError(RecalignError):
    """One or more history/candidate entries are not in the catalogue."""

    def __init__(self, unknown: Sequence[Any], field: str = "history") -> None:
        self.unknown = list(unknown)
        self.field = field
        shown = ", ".join(repr(u) for u in self.unknown[:10])
        more = f" (and {len(self.unknown) - 10} more)" if len(self.unknown) > 10 else ""
        super().__init__(
            f"unknown item(s) in {field}: {shown}{more}; use item ids, exact item texts, "
            "or search with /items?query=..."
        )


class FuzzyBudgetError(RecalignError):
    """A request has more texts needing a fuzzy lookup than it may make."""


class FuzzyBudget:
    """How many fuzzy lookups one request may still make (shared by all its fields)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, count: int, field: str) -> None:
        """Take `count` lookups, or raise `FuzzyBudgetError` without taking any."""
        if self.used + count > self.limit:
            already = f" ({self.used} used by earlier fields)" if self.used else ""
            raise FuzzyBudgetError(
                f"{count} text(s) in {field} match no item exactly and would need fuzzy "
                f"matching, but one request may fuzzy-match at most {self.limit}{already}; "
                "send item ids or exact item texts (GET /items?query=... finds them)"
            )
        self.used += count


@dataclass(frozen=True)
class ResolvedItem:
    """One resolved entry: what was asked, which item it became, and how it matched."""

    query: int | str
    item_id: int
    text: str
    match: str  # "id" | "exact" | "casefold" | "fuzzy" | "partial"
    similarity: float = 1.0
    matches: int = 1  # items that fitted the query (fuzzy/partial: the best was taken)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ItemMatch:
    """A search hit."""

    item_id: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


class ItemCatalog:
    """Item ids <-> texts of one prepared dataset, read-only and so safe to share across
    threads (`with_items` makes a new one)."""

    def __init__(self, item_ids: Sequence[int], texts: Sequence[str]) -> None:
        if len(item_ids) != len(texts):
            raise ValueError("item_ids and texts must have the same length")
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.texts = list(texts)
        self._text_of = dict(zip(self.item_ids.tolist(), self.texts, strict=True))
        self._by_text = dict(zip(self.texts, self.item_ids.tolist(), strict=True))
        # Case-insensitive lookup; on a collision the first (lowest id) item wins, and an
        # exact-case query still reaches the other through `_by_text`.
        self._by_norm: dict[str, int] = {}
        for item_id, text in zip(self.item_ids.tolist(), self.texts, strict=True):
            self._by_norm.setdefault(_normalise(text), item_id)
        self._norm_texts = [_normalise(t) for t in self.texts]
        self._lookups = 0  # fuzzy lookups made (one text against the catalogue)
        self._lookups_lock = threading.Lock()

    @property
    def fuzzy_lookups(self) -> int:
        """How many fuzzy lookups this catalogue has made (for /health and the tests)."""
        return self._lookups

    @classmethod
    def from_dataset(cls, dataset: Any) -> ItemCatalog:
        """Build from a `PreparedDataset` (its `items` table)."""
        from recalign.constants import ITEM_ID, TEXT

        return cls(
            dataset.items.get_column(ITEM_ID).to_list(),
            dataset.items.get_column(TEXT).to_list(),
        )

    def with_items(self, item_ids: Sequence[int], texts: Sequence[str]) -> ItemCatalog:
        """A new catalogue with these items added (this one stays as it is, so a request
        resolving against it meanwhile sees a whole catalogue, never half of one)."""
        catalog = ItemCatalog([*self.item_ids.tolist(), *item_ids], [*self.texts, *texts])
        catalog._lookups = self._lookups
        return catalog

    @property
    def next_id(self) -> int:
        """The id the next added item gets."""
        return int(self.item_ids.max(initial=0)) + 1

    def find_text(self, text: str) -> int | None:
        """The item whose text is `text` up to case and spacing, else None."""
        return self._by_text.get(text, self._by_norm.get(_normalise(text)))

    def __len__(self) -> int:
        return len(self.texts)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._text_of

    def text(self, item_id: int) -> str:
        return self._text_of[int(item_id)]

    def resolve_one(
        self, query: int | str, *, fuzzy: bool = True, cutoff: float = DEFAULT_FUZZY_CUTOFF
    ) -> ResolvedItem | None:
        """Resolve one entry, or None when nothing matches."""
        if isinstance(query, bool):  # bool is an int subclass; True is not item 1
            return None
        if isinstance(query, (int, np.integer)):
            item_id = int(query)
            if item_id in self._text_of:
                return ResolvedItem(query, item_id, self._text_of[item_id], "id")
            return None
        if not isinstance(query, str):
            return None
        if query in self._by_text:
            item_id = self._by_text[query]
            return ResolvedItem(query, item_id, query, "exact")
        norm = _normalise(query)
        if not norm:
            return None
        if norm in self._by_norm:
            item_id = self._by_norm[norm]
            return ResolvedItem(query, item_id, self._text_of[item_id], "casefold")
        stripped = query.strip().lstrip("#")
        if stripped.isdigit() and int(stripped) in self._text_of:
            item_id = int(stripped)
            return ResolvedItem(query, item_id, self._text_of[item_id], "id")
        if fuzzy:
            return self._resolve_fuzzy(query, cutoff)
        return None

    def _resolve_fuzzy(self, query: str, cutoff: float) -> ResolvedItem | None:
        """Steps 5 and 6: the closest text, else the shortest text the query is part of."""
        norm = _normalise(query)
        close = self._close_matches(norm, None, cutoff)
        if close:
            index, similarity = close[0]
            return self._resolved(query, index, "fuzzy", similarity, len(close))
        partial = self._word_prefix_matches(norm)
        if partial:
            index = partial[0]
            coverage = len(norm) / max(1, len(self._norm_texts[index]))
            return self._resolved(query, index, "partial", coverage, len(partial))
        return None

    def _resolved(
        self, query: int | str, index: int, match: str, similarity: float, matches: int
    ) -> ResolvedItem:
        item_id = int(self.item_ids[index])
        return ResolvedItem(query, item_id, self.texts[index], match, round(similarity, 4), matches)

    def _word_prefix_matches(self, norm: str) -> list[int]:
        """Indices of texts with every query word at the start of one of their words,
        shortest text first (then lowest id)."""
        words = _WORDS.findall(norm)
        if not words:
            return []
        patterns = [re.compile(r"(?<!\w)" + re.escape(word)) for word in words]
        found = [
            i
            for i, text in enumerate(self._norm_texts)
            # plain substring tests first: cheap, and they rule out almost every text
            if all(word in text for word in words)
            and all(pattern.search(text) for pattern in patterns)
        ]
        found.sort(key=lambda i: (len(self._norm_texts[i]), int(self.item_ids[i])))
        return found

    def resolve(
        self,
        queries: Sequence[int | str],
        *,
        fuzzy: bool = True,
        cutoff: float = DEFAULT_FUZZY_CUTOFF,
        field: str = "history",
        budget: FuzzyBudget | None = None,
    ) -> list[ResolvedItem]:
        """Resolve every entry; raise `UnknownItemsError` naming all that fail.

        Cheap matches (id, exact, casefold) come first for every entry; the texts left
        over are then charged to `budget` (which raises `FuzzyBudgetError` if they do
        not fit) before any fuzzy lookup runs.
        """
        hits = [self.resolve_one(query, fuzzy=False, cutoff=cutoff) for query in queries]
        if fuzzy:
            pending = [
                position
                for position, (query, hit) in enumerate(zip(queries, hits, strict=True))
                if hit is None and isinstance(query, str) and _normalise(query)
            ]
            if budget is not None:
                budget.spend(len(pending), field)
            for position in pending:
                hits[position] = self._resolve_fuzzy(queries[position], cutoff)
        unknown = [query for query, hit in zip(queries, hits, strict=True) if hit is None]
        if unknown:
            raise UnknownItemsError(unknown, field=field)
        return [hit for hit in hits if hit is not None]

    def search(self, query: str, limit: int = 10) -> list[ItemMatch]:
        """Items whose text contains every word of `query`, then fuzzy matches.

        Substring hits come first (shorter texts first: they match more specifically),
        scored by the share of the text the query covers; fuzzy hits fill up the rest.
        An empty query lists the first `limit` items by id.
        """
        if limit <= 0:
            return []
        norm = _normalise(query)
        if not norm:
            return [
                ItemMatch(int(i), t, 0.0)
                for i, t in zip(self.item_ids[:limit].tolist(), self.texts[:limit], strict=True)
            ]
        words = norm.split(" ")
        contained = [
            i for i, text in enumerate(self._norm_texts) if all(word in text for word in words)
        ]
        contained.sort(key=lambda i: (len(self._norm_texts[i]), int(self.item_ids[i])))
        hits = [
            ItemMatch(
                int(self.item_ids[i]),
                self.texts[i],
                round(min(1.0, len(norm) / max(1, len(self._norm_texts[i]))), 4),
            )
            for i in contained[:limit]
        ]
        if len(hits) < limit:
            seen = {hit.item_id for hit in hits}
            for index, similarity in self._close_matches(norm, limit, 0.5):
                item_id = int(self.item_ids[index])
                if item_id not in seen:
                    hits.append(ItemMatch(item_id, self.texts[index], round(similarity, 4)))
                    seen.add(item_id)
                if len(hits) >= limit:
                    break
        return hits

    def _close_matches(self, norm: str, n: int | None, cutoff: float) -> list[tuple[int, float]]:
        """The `n` (None: all) most similar texts at or above `cutoff`, best first (ties:
        lower index)."""
        with self._lookups_lock:
            self._lookups += 1
        hits = process.extract(
            norm,
            self._norm_texts,
            scorer=fuzz.ratio,
            processor=None,
            limit=n,
            score_cutoff=cutoff * 100,
        )
        hits.sort(key=lambda hit: (-hit[1], hit[2]))
        return [(index, score / 100) for _, score, index in hits]
