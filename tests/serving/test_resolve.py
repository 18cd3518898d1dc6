"""Item resolution (ids, exact, case-insensitive, fuzzy) and title search."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.serving import ItemCatalog, UnknownItemsError
from tests.serving.conftest import TEXTS

CATALOG = ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS)


@pytest.mark.parametrize(
    ("query", "item_id", "match"),
    [
        (3, 3, "id"),
        ("Green Nail Polish", 3, "exact"),
        ("  green   NAIL polish ", 3, "casefold"),
        ("3", 3, "id"),
        ("#12", 12, "id"),
        ("Green Nail Polsh", 3, "fuzzy"),  # typo
        ("Blue Waterproof Mascra", 2, "fuzzy"),
    ],
)
def test_resolve_one(query, item_id, match):
    hit = CATALOG.resolve_one(query)
    assert hit is not None
    assert (hit.item_id, hit.match, hit.text) == (item_id, match, TEXTS[item_id - 1])
    assert hit.query == query
    if match == "fuzzy":
        assert 0.75 <= hit.similarity < 1.0
    else:
        assert hit.similarity == 1.0


def test_fuzzy_can_be_switched_off():
    assert CATALOG.resolve_one("Green Nail Polsh", fuzzy=False) is None
    assert CATALOG.resolve_one("Hair Oil", fuzzy=False) is None


@pytest.mark.parametrize(
    ("query", "item_id", "matches"),
    [
        ("Hair Oil", 9, 1),  # too short for difflib against "Argan Hair Oil" (0.73 < 0.75)
        ("oil ARGAN", 9, 1),  # any order, any case
        ("face", 6, 2),  # "Rose Face Cream" is shorter than "Charcoal Face Mask"
        ("lip", 7, 2),  # word starts: "Mint Lip Balm" and "Red Velvet Lipstick"
        ("coco cond", 11, 1),  # word prefixes
    ],
)
def test_part_of_a_title_resolves_to_the_shortest_text_with_its_words(query, item_id, matches):
    hit = CATALOG.resolve_one(query)
    assert hit is not None
    assert (hit.item_id, hit.match, hit.matches) == (item_id, "partial", matches)
    assert hit.text == TEXTS[item_id - 1]
    assert 0.0 < hit.similarity < 1.0


def test_a_typo_is_still_a_fuzzy_match_with_its_count():
    hit = CATALOG.resolve_one("Green Nail Polsh")
    assert (hit.match, hit.matches) == ("fuzzy", 1)


@pytest.mark.parametrize(
    "query",
    [0, 13, -1, True, "", "   ", "quantum flux capacitor", 1.5, None, "ip", "Hair Oyl Argan"],
)
def test_unresolvable(query):
    assert CATALOG.resolve_one(query) is None


def test_unknown_entries_are_all_named():
    with pytest.raises(UnknownItemsError) as info:
        CATALOG.resolve([1, 99, "Mint Lip Balm", "no such thing"], field="candidates")
    assert info.value.unknown == [99, "no such thing"]
    assert info.value.field == "candidates"
    assert "99" in str(info.value) and "no such thing" in str(info.value)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=len(TEXTS)))
def test_every_text_resolves_to_its_item(item_id):
    text = TEXTS[item_id - 1]
    assert CATALOG.resolve_one(text).item_id == item_id
    assert CATALOG.resolve_one(text.upper()).item_id == item_id


def test_search_substring_shorter_texts_first():
    hits = CATALOG.search("face")
    assert [h.item_id for h in hits[:2]] == [6, 8]  # "Rose Face Cream" (15) < "Charcoal Face Mask"
    assert all("face" in h.text.lower() for h in hits[:2])


def test_search_all_words_any_order_and_limit():
    assert [h.item_id for h in CATALOG.search("hair oil", limit=1)] == [9]
    assert [h.item_id for h in CATALOG.search("oil hair", limit=1)] == [9]
    assert len(CATALOG.search("a", limit=3)) == 3


def test_search_falls_back_to_fuzzy():
    hits = CATALOG.search("lavendr bath salt", limit=1)
    assert [h.item_id for h in hits] == [12]


def test_empty_query_lists_items_by_id():
    assert [h.item_id for h in CATALOG.search("", limit=4)] == [1, 2, 3, 4]
    assert CATALOG.search("x", limit=0) == []


def test_fuzzy_budget_is_charged_before_any_lookup():
    from recalign.serving.resolve import FuzzyBudget, FuzzyBudgetError

    catalog = ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS)
    budget = FuzzyBudget(2)
    # exact, casefold and id entries are free; the two typos take the whole budget
    hits = catalog.resolve(
        ["Mint Lip Balm", "ARGAN HAIR OIL", 4, "Green Nail Polsh", "Mint Lip Baln"], budget=budget
    )
    assert [h.match for h in hits] == ["exact", "casefold", "id", "fuzzy", "fuzzy"]
    assert (budget.used, catalog.fuzzy_lookups) == (2, 2)
    with pytest.raises(FuzzyBudgetError, match="1 text\\(s\\) in candidates"):
        catalog.resolve(["Rose Face Crem"], budget=budget, field="candidates")
    assert (budget.used, catalog.fuzzy_lookups) == (2, 2)  # refused whole, nothing looked up
    # without fuzzy matching nothing is charged, and the typo is simply unknown
    with pytest.raises(UnknownItemsError):
        catalog.resolve(["Rose Face Crem"], fuzzy=False, budget=FuzzyBudget(0))


@pytest.mark.data
def test_near_miss_beauty_titles_resolve_to_their_title(real_data_dir):
    """300 Beauty titles with one character dropped each find their title again among
    12,101 (one lookup each at most: a few typos fall back to a casefold match)."""
    import csv
    import random

    path = real_data_dir / "amazon2014" / "beauty" / "items.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        titles = [row["title"] for row in csv.DictReader(handle, delimiter="\t")]
    catalog = ItemCatalog(list(range(1, len(titles) + 1)), titles)
    rng = random.Random(0)
    ids = rng.sample([i for i, t in enumerate(titles, start=1) if len(t) >= 20], 300)
    typos = []
    for item_id in ids:
        title = titles[item_id - 1]
        cut = rng.randrange(1, len(title) - 1)
        typos.append(title[:cut] + title[cut + 1 :])
    resolved = catalog.resolve(typos)
    # 28 Beauty titles are duplicated: the title, not always the id, is what comes back
    assert [r.text for r in resolved] == [titles[i - 1] for i in ids]
    assert catalog.fuzzy_lookups <= 300
