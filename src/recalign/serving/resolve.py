"""Turn what a user types (item ids or texts) into catalogue item ids, and search titles.

A history may mix ids and texts. Resolution is deliberately conservative and always
reports *how* each entry matched, so a caller can show "did you mean ..." instead of
silently recommending from the wrong item:

1. an integer is an item id;
2. a string equal to an item's text is that item (``exact``);
3. the same ignoring case and repeated whitespace (``casefold``);
4. a string of digits that is a valid item id (``id``) — CLI arguments are strings;
5. otherwise, with ``fuzzy`` on, the closest text by `difflib` similarity above a
   cutoff (``fuzzy``, with the similarity): a typo or a dropped word;
6. otherwise, with ``fuzzy`` on, a part of a title (``partial``): the shortest text
   that has every word of the query at the start of one of its words, so
   "OPI Nail Lacquer" finds one of the many "OPI Nail Lacquer, <colour>, 0.5 oz"
   items (difflib compares whole strings, so a short query never reaches its cutoff
   against a long title). Shortest first, as in `search`: it matches most specifically.

A fuzzy or partial match also says how many items fitted (`matches`), so a caller can
say "1 of 34" and suggest an id or more of the title.

Anything left over is collected and raised together in one `UnknownItemsError`, so
an HTTP client learns about every bad entry at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recalign.errors import RecalignError

# difflib ratio below which a fuzzy match is more likely wrong than right (checked on
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
    """Item ids <-> texts of one prepared dataset, read-only and so safe to share across threads."""

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

    @classmethod
    def from_dataset(cls, dataset: Any) -> ItemCatalog:
        """Build from a `PreparedDataset` (its `items` table)."""
        from recalign.constants import ITEM_ID, TEXT

        return cls(
            dataset.items.get_column(ITEM_ID).to_list(),
            dataset.items.get_column(TEXT).to_list(),
        )

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
        if not fuzzy:
            return None
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
    ) -> list[ResolvedItem]:
        """Resolve every entry; raise `UnknownItemsError` naming all that fail."""
        resolved: list[ResolvedItem] = []
        unknown: list[Any] = []
        for query in queries:
            hit = self.resolve_one(query, fuzzy=fuzzy, cutoff=cutoff)
            if hit is None:
                unknown.append(query)
            else:
                resolved.append(hit)
        if unknown:
            raise UnknownItemsError(unknown, field=field)
        return resolved

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
        # difflib.get_close_matches without losing the index: same cheap-bound filtering.
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(norm)
        scored: list[tuple[float, int]] = []
        for index, text in enumerate(self._norm_texts):
            matcher.set_seq1(text)
            if (
                matcher.real_quick_ratio() >= cutoff
                and matcher.quick_ratio() >= cutoff
                and (ratio := matcher.ratio()) >= cutoff
            ):
                scored.append((ratio, index))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [(index, ratio) for ratio, index in scored[:n]]
