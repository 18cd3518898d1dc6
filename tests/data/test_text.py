from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.data.text import build_item_texts, clean_text, disambiguate


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # double-escaped scrape
        ("  OPI\tNail \n Lacquer  ", "OPI Nail Lacquer"),
        ("5&quot; brush &#39;pro&#39;", "5\" brush 'pro'"),
        ("", ""),
        (None, ""),
        ("   ", ""),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_word_budget():
    assert clean_text(" ".join(f"w{i}" for i in range(30)), max_words=24).split() == [
        f"w{i}" for i in range(24)
    ]
    assert clean_text("a b c", max_words=2) == "a b"


def _items(**columns):
    n = len(next(iter(columns.values())))
    return pl.DataFrame(
        {
            "item_id": list(range(1, n + 1)),
            "source_id": [f"S{i}" for i in range(1, n + 1)],
            **columns,
        }
    )


def test_fallback_chain_title_short_text_id():
    items = _items(title=["Lipstick", "", None], short_text=["x", "blue shampoo", ""])
    out = build_item_texts(items)
    assert out["text"].to_list() == ["Lipstick", "blue shampoo", "item S3"]
    assert out["text_source"].to_list() == ["title", "short_text", "id"]
    assert out["disambiguated"].to_list() == [False, False, False]


def test_duplicates_get_brand_when_brand_separates_them():
    items = _items(title=["Mascara", "Mascara", "Comb"], brand=["Blinc", "Maybelline", "Mason"])
    out = build_item_texts(items)
    assert out["text"].to_list() == ["Mascara (Blinc)", "Mascara (Maybelline)", "Comb"]
    assert out["disambiguated"].to_list() == [True, True, False]


def test_duplicates_use_year_then_counter():
    items = _items(
        title=["Hamlet", "Hamlet", "Chasing Amy", "Chasing Amy", "Chasing Amy"],
        release_year=["1996", "1948", "1997", "1997", "1997"],
    )
    out = build_item_texts(items)
    assert out["text"].to_list() == [
        "Hamlet (1996)",
        "Hamlet (1948)",
        "Chasing Amy (1997)",
        "Chasing Amy (1997) (2)",
        "Chasing Amy (1997) (3)",
    ]


def test_counter_without_disambiguator_keeps_first_and_skips_taken_texts():
    # "Palette (2)" is already another item's title: the counter must skip it.
    items = _items(title=["Palette", "Palette", "Palette (2)", "Palette"])
    out = build_item_texts(items)
    assert out["text"].to_list() == ["Palette", "Palette (3)", "Palette (2)", "Palette (4)"]
    assert out["disambiguated"].to_list() == [False, True, False, True]


def test_word_budget_then_dedup():
    long = " ".join(["word"] * 30)
    items = _items(title=[long + " red", long + " blue"])
    out = build_item_texts(items, max_words=24)
    texts = out["text"].to_list()
    assert texts[0] == " ".join(["word"] * 24)
    assert texts[1] == " ".join(["word"] * 24) + " (2)"


def test_deterministic_given_rows_in_any_order():
    items = _items(title=["A", "A", "B", "A"], brand=[None, "x", None, "y"])
    first = build_item_texts(items)
    second = build_item_texts(items.reverse())
    assert first.equals(second)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "a", "a (2)", "b", "a b", "&amp;", "  a  "]),
            st.sampled_from([None, "", "x", "y"]),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_texts_are_always_unique_and_non_empty(rows):
    items = _items(title=[r[0] for r in rows], brand=[r[1] for r in rows])
    out = build_item_texts(items)
    texts = out["text"].to_list()
    assert len(set(texts)) == len(texts)
    assert all(texts)
    # Only items that shared a text are changed.
    changed = out.filter(pl.col("disambiguated"))
    base = [
        clean_text(t) or f"item S{i}" for i, t in zip(out["item_id"], out["title"], strict=True)
    ]
    for row in changed.iter_rows(named=True):
        assert base.count(base[row["item_id"] - 1]) > 1


def test_disambiguate_returns_flags():
    texts, changed = disambiguate(["x", "y"], _items(title=["x", "y"]))
    assert texts == ["x", "y"] and changed == [False, False]
