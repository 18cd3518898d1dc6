"""The item trie: exactly the catalogue's answers, vectorised queries, bans, cache."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.errors import DataFormatError
from recalign.inference.trie import build_trie, item_trie_for

EOS = 1
# Answers: 1-6 tokens from a small alphabet (shared prefixes are common), then EOS.
answers = st.lists(st.integers(2, 7), min_size=1, max_size=6).map(lambda s: (*s, EOS))
catalogues = st.lists(answers, min_size=1, max_size=25, unique=True)


def leaves_by_walking(trie) -> dict[tuple[int, ...], int]:
    """Every complete answer the trie admits, found by following `allowed` from the root."""
    found, stack = {}, [((), 0)]
    while stack:
        prefix, node = stack.pop()
        if trie.node_item[node]:
            assert len(trie.allowed(node)) == 0  # nothing continues after EOS
            found[prefix] = int(trie.node_item[node])
            continue
        for token in trie.allowed(node).tolist():
            stack.append(((*prefix, token), trie.step(node, token)))
    return found


@settings(max_examples=60, deadline=None)
@given(catalogues)
def test_admits_exactly_the_items(seqs):
    ids = list(range(10, 10 + len(seqs)))
    trie = build_trie(seqs, ids, EOS)
    assert leaves_by_walking(trie) == dict(zip(seqs, ids, strict=True))
    for seq, item in zip(seqs, ids, strict=True):
        assert trie.item_at(seq) == item
        assert trie.leaf_of(item) == trie.walk(seq)


@settings(max_examples=60, deadline=None)
@given(catalogues, st.data())
def test_adding_items_equals_building_the_whole_catalogue(seqs, data):
    """Items added to a built trie (a server taking new items) give the same table as a
    trie built over all of them; the answers read back are the ones put in."""
    split = data.draw(st.integers(1, len(seqs)))
    ids = list(range(10, 10 + len(seqs)))
    first = build_trie(seqs[:split], ids[:split], EOS)
    assert first._answers == list(seqs[:split])  # what `with_items` builds on
    grown = first.with_items(seqs[split:], ids[split:])
    whole = build_trie(seqs, ids, EOS)
    for name in ("child_ptr", "child_token", "child_node", "parent", "node_item", "item_leaf"):
        assert (getattr(grown, name) == getattr(whole, name)).all(), name
    assert first.num_items == split  # the first trie is left as it was


@settings(max_examples=60, deadline=None)
@given(catalogues, st.lists(st.integers(1, 8), min_size=1, max_size=8))
def test_never_admits_a_non_item(seqs, probe):
    trie = build_trie(seqs, list(range(1, len(seqs) + 1)), EOS)
    if tuple(probe) not in set(seqs):
        assert trie.item_at(probe) == 0
    # EOS is admitted only where an item ends.
    for seq in seqs:
        for cut in range(len(seq) - 1):
            node = trie.walk(seq[:cut])
            if EOS in trie.allowed(node).tolist():
                assert (*seq[:cut], EOS) in set(seqs)


@settings(max_examples=40, deadline=None)
@given(catalogues)
def test_expand_and_mask_match_allowed(seqs):
    trie = build_trie(seqs, list(range(1, len(seqs) + 1)), EOS)
    nodes = np.arange(trie.num_nodes)
    rows, tokens, nxt = trie.expand(nodes)
    mask = trie.mask(nodes, 9)
    for node in nodes:
        mine = tokens[rows == node]
        assert mine.tolist() == sorted(trie.allowed(node).tolist())
        assert [trie.step(node, t) for t in mine] == nxt[rows == node].tolist()
        assert np.flatnonzero(mask[node]).tolist() == mine.tolist()


@settings(max_examples=40, deadline=None)
@given(catalogues, st.data())
def test_banned_nodes_leave_exactly_the_other_items(seqs, data):
    ids = list(range(1, len(seqs) + 1))
    trie = build_trie(seqs, ids, EOS)
    banned = set(data.draw(st.lists(st.sampled_from(ids), max_size=len(ids))))
    blocked = set(trie.banned_nodes(sorted(banned)).tolist())
    reachable, stack = set(), [0]
    while stack:
        node = stack.pop()
        if trie.node_item[node]:
            reachable.add(int(trie.node_item[node]))
        for token in trie.allowed(node).tolist():
            child = trie.step(node, token)
            if child not in blocked:
                stack.append(child)
    assert reachable == set(ids) - banned
    # No dead ends: every admitted node still leads to an item.
    for node in set(range(trie.num_nodes)) - blocked:
        below = trie.leaf_count[node]
        assert below >= 1


def test_forced_runs():
    # 5 6 7 8 EOS and 5 6 9 EOS: after the root, 5 -> 6 is forced (one step), then a branch.
    trie = build_trie([(5, 6, 7, 8, EOS), (5, 6, 9, EOS), (4, EOS)], [1, 2, 3], EOS)
    assert trie.forced_run[trie.walk([5])] == 1
    assert trie.forced_token[trie.walk([5])] == 6
    assert trie.forced_run[trie.walk([5, 6])] == 0  # two continuations
    assert trie.forced_run[trie.walk([5, 6, 7])] == 1  # 8, then EOS (EOS is never fused)
    assert trie.forced_run[trie.walk([4])] == 0  # only EOS follows
    assert trie.depth[trie.leaf_of(1)] == 5


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        ([(2, 3, EOS), (2, 3, EOS)], "identical answer token ids"),
        ([(2, 3)], "must end with EOS"),
        ([(2, EOS, 3, EOS)], "must end with EOS"),
        ([()], "must end with EOS"),
    ],
)
def test_bad_catalogues(seqs, message):
    with pytest.raises(DataFormatError, match=message):
        build_trie(seqs, list(range(1, len(seqs) + 1)), EOS)


def test_cached_by_tokenizer_and_texts(t5, texts, tmp_path):
    _, tokenizer, _ = t5
    ids = list(range(1, len(texts) + 1))
    first = item_trie_for(tokenizer, "seq2seq", ids, texts, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1
    again = item_trie_for(tokenizer, "seq2seq", ids, texts, cache_dir=tmp_path)
    for name in ("child_ptr", "child_token", "child_node", "parent", "node_item", "item_leaf"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    changed = [*texts[:-1], texts[-1] + " extra"]
    other = item_trie_for(tokenizer, "seq2seq", ids, changed, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert other.item_at(tokenizer(changed[-1])["input_ids"]) == ids[-1]
