"""The synthetic demo shop: determinism, the prepared-dataset contract, learnable habits."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict

import numpy as np
import polars as pl
import pytest

from recalign.constants import (
    BRAND,
    CATEGORIES,
    DISAMBIGUATED,
    HISTORY,
    ITEM_ID,
    ITEMS,
    ITEMS_FILE,
    RATINGS,
    SEQUENCES_FILE,
    SOURCE_ID,
    STATS_FILE,
    TARGET_ITEM,
    TEXT,
    TEXT_SOURCE,
    TIMESTAMPS,
    TITLE,
    USER_ID,
)
from recalign.data.store import load_prepared
from recalign.data.synthetic import (
    build_catalogue,
    generate_synthetic_items,
    iter_synthetic_users,
    write_synthetic,
)
from recalign.errors import ConfigError
from recalign.evaluation.metrics import per_user_ranking_metrics, target_ranks


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The default-sized shop (2,000 users x 500 items), written once for the module."""
    return write_synthetic(tmp_path_factory.mktemp("shop"), users=2000, items=500, seed=0)


def test_same_seed_gives_identical_files(tmp_path):
    # ... whatever the batch size used to stream the users.
    a = write_synthetic(tmp_path / "a", users=300, items=120, seed=5, batch_size=64)
    b = write_synthetic(tmp_path / "b", users=300, items=120, seed=5, batch_size=1000)
    for name in (SEQUENCES_FILE, ITEMS_FILE, STATS_FILE):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert a.data_hash == b.data_hash


def test_different_seeds_differ(tmp_path):
    a = write_synthetic(tmp_path / "a", users=200, items=120, seed=1)
    b = write_synthetic(tmp_path / "b", users=200, items=120, seed=2)
    assert a.data_hash != b.data_hash
    assert a.items.get_column(TEXT).to_list() != b.items.get_column(TEXT).to_list()
    assert a.sequences.get_column(ITEMS).to_list() != b.sequences.get_column(ITEMS).to_list()


def test_users_do_not_depend_on_batch_size():
    small = pl.concat(iter_synthetic_users(120, users=50, seed=3, batch_size=7))
    large = pl.concat(iter_synthetic_users(120, users=50, seed=3, batch_size=1000))
    assert small.equals(large)
    # A user's sequence depends only on (seed, user): the first 20 of 50 users are the
    # same when only 20 are generated.
    prefix = pl.concat(iter_synthetic_users(120, users=20, seed=3))
    assert prefix.equals(large.head(20))


def test_items_follow_the_contract():
    items = generate_synthetic_items(500, seed=0)
    assert items.height == 500
    assert items.get_column(ITEM_ID).to_list() == list(range(1, 501))
    assert items.get_column(TEXT).n_unique() == 500
    assert items.get_column(SOURCE_ID).n_unique() == 500
    assert set(items.get_column(TEXT_SOURCE)) == {"title"}
    assert not items.get_column(DISAMBIGUATED).any()
    assert items.get_column(TEXT).equals(items.get_column(TITLE), check_names=False)
    assert items.schema[CATEGORIES] == pl.List(pl.String)
    row = items.row(0, named=True)
    # "Brand Line Variant No. N Product": the brand leads, the product type is a category.
    assert row[TITLE].startswith(row[BRAND] + " ")
    assert row[CATEGORIES][0] == "Beauty" and row[CATEGORIES][2] in row[TITLE]
    assert " No. " in row[TITLE] and row[TITLE].endswith(row[CATEGORIES][2])


def test_popularity_is_skewed(demo):
    counts = np.sort(
        demo.sequences.select(pl.col(ITEMS).explode().value_counts()).unnest(ITEMS)["count"]
    )[::-1]
    top_decile = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_decile > 0.3  # a uniform catalogue would give 0.1


def test_dataset_contract(demo):
    reloaded = load_prepared(demo.path)  # validates the tables
    seq = reloaded.sequences
    assert seq.get_column(USER_ID).to_list() == list(range(1, 2001))
    lengths = seq.get_column(ITEMS).list.len()
    assert lengths.min() >= 5 and lengths.max() <= 30
    assert 8 <= lengths.mean() <= 14
    # No item is bought twice by a user.
    assert (seq.get_column(ITEMS).list.n_unique() == lengths).all()
    ratings = seq.select(pl.col(RATINGS).explode()).to_series()
    assert ratings.dtype == pl.Float64
    assert set(ratings.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings.n_unique() >= 4
    assert seq.select(
        (pl.col(TIMESTAMPS).list.diff().list.drop_nulls().list.min() > 0).all()
    ).item()
    stats = json.loads((demo.path / STATS_FILE).read_text())
    assert stats["users"] == 2000 and stats["items"] == 500
    assert stats["interactions"] == int(lengths.sum())
    assert stats["has_ratings"] and stats["has_timestamps"]
    assert stats["title_coverage"] == 1.0
    assert reloaded.manifest["options"] == {"users": 2000, "items": 500, "seed": 0}
    split = reloaded.split
    assert split.test.height == split.valid.height == 2000


def test_ratings_follow_affinity(demo):
    """Items of a user's dominant category are rated higher than the user's other items."""
    category = dict(
        zip(
            demo.items[ITEM_ID].to_list(),
            [c[1] for c in demo.items[CATEGORIES].to_list()],
            strict=True,
        )
    )
    inside, outside = [], []
    for items, ratings in demo.sequences.select(ITEMS, RATINGS).iter_rows():
        cats = [category[i] for i in items]
        top = Counter(cats).most_common(1)[0][0]
        for c, r in zip(cats, ratings, strict=True):
            (inside if c == top else outside).append(r)
    assert np.mean(inside) > np.mean(outside) + 0.2


def test_complements_follow_each_other():
    catalogue = build_catalogue(500, seed=0)
    pairs = followed = 0
    for batch in iter_synthetic_users(catalogue, users=500, seed=0):
        for items in batch.get_column(ITEMS).to_list():
            for a, b in itertools.pairwise(items):
                pairs += 1
                followed += b == catalogue.next_in_line[a]
    # About P_COMPLEMENT of the steps whose line continues; random would be ~1/500.
    assert 0.25 < followed / pairs < 0.6


def test_a_complement_can_be_read_from_the_titles():
    """The next product of a line: the same words before the number, the next number."""
    import re

    catalogue = build_catalogue(500, seed=0)
    titles = dict(
        zip(catalogue.items[ITEM_ID].to_list(), catalogue.items[TITLE].to_list(), strict=True)
    )
    pattern = re.compile(r"^(?P<line>.+) No\. (?P<step>\d) (?P<product>.+)$")
    pairs = 0
    for item, title in titles.items():
        nxt = int(catalogue.next_in_line[item])
        if not nxt:
            continue
        a, b = pattern.match(title), pattern.match(titles[nxt])
        assert a and b, (title, titles[nxt])
        assert a["line"] == b["line"]
        assert int(b["step"]) == int(a["step"]) + 1 and a["product"] != b["product"]
        pairs += 1
    assert pairs > 300  # most of the 500 items continue their line


def _hit_at_10(ranked: list[list[int]], targets: list[int]) -> float:
    return float(per_user_ranking_metrics(target_ranks(ranked, targets))["hit@10"].mean())


def _top_k(candidates, history, k=10):
    seen, out = set(history), []
    for item in candidates:
        if item not in seen:
            seen.add(item)
            out.append(item)
            if len(out) == k:
                break
    return out


def test_patterns_are_learnable(demo):
    """A first-order Markov predictor beats popularity clearly on the test split."""
    test = demo.split.test
    popularity: Counter = Counter()
    transitions: dict[int, Counter] = defaultdict(Counter)
    for history in test.get_column(HISTORY).to_list():
        popularity.update(history)
        for a, b in itertools.pairwise(history):
            transitions[a][b] += 1
    popular = [i for i, _ in popularity.most_common()]
    histories = test.get_column(HISTORY).to_list()
    targets = test.get_column(TARGET_ITEM).to_list()
    pop = _hit_at_10([_top_k(popular, h) for h in histories], targets)
    markov = _hit_at_10(
        [_top_k([i for i, _ in transitions[h[-1]].most_common()] + popular, h) for h in histories],
        targets,
    )
    assert 0.02 < pop < 0.3
    assert markov > 2.5 * pop and markov > 0.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0, "items": 100}, "at least one user"),
        ({"users": 10, "items": 5}, "at least 10 items"),
        ({"users": 10, "items": 100, "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_sizes_are_config_errors(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        write_synthetic(tmp_path, **kwargs)


def test_tiny_catalogue_still_works(tmp_path):
    ds = write_synthetic(tmp_path, users=50, items=10, seed=0)
    assert ds.items.height == 10
    assert (ds.sequences.get_column(ITEMS).list.len() >= 5).all()


def test_generation_is_chunked(tmp_path, monkeypatch):
    """Users arrive in batches, lazily: nothing holds every user at once."""
    import types

    import recalign.data.synthetic as synthetic

    assert [b.height for b in iter_synthetic_users(100, users=25, batch_size=10)] == [10, 10, 5]
    seen = {}

    def spy(out_dir, name, batches, items, *record, **kwargs):
        seen["lazy"] = isinstance(batches, types.GeneratorType)
        seen["sizes"] = [batch.height for batch in batches]
        return None

    monkeypatch.setattr(synthetic, "write_prepared_streaming", spy)
    synthetic.write_synthetic(tmp_path, users=95, items=100, batch_size=40)
    assert seen == {"lazy": True, "sizes": [40, 40, 15]}
