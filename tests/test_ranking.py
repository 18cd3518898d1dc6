"""The ranking core: the protocol table, the history rule, top-K and the prediction record."""

from __future__ import annotations

import json
import typing

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.errors import ConfigError
from recalign.ranking import (
    FULL_RANKING,
    PROTOCOL_NAMES,
    PROTOCOLS,
    ProtocolName,
    banned_items,
    canonical_protocol,
    check_protocol,
    get_protocol,
    mask_scores,
    prediction_record,
    protocol_order,
    record_keys,
    target_positions,
    top_k,
    unpad,
)

# --- the protocol table ------------------------------------------------------------------
# (name, prompt task, ranks the catalogue, predicts a rating,
#  exclude_history recorded with the option on, with it off)
TABLE = [
    ("retrieval", "retrieval", True, False, True, False),
    ("ranking", "ranking", False, False, True, True),
    ("sampled", "retrieval", False, False, True, True),
    ("rating", "rating", False, True, None, None),
]


@pytest.mark.parametrize(("name", "task", "catalogue", "rating", "on", "off"), TABLE)
def test_protocol_table(name, task, catalogue, rating, on, off):
    protocol = get_protocol(name)
    assert protocol.task == task
    assert (protocol.ranks == "catalogue") is catalogue
    assert protocol.predicts_rating is rating
    assert protocol.recorded_history(True) is on
    assert protocol.recorded_history(False) is off


def test_the_protocol_list_is_one_list():
    from recalign.evaluation.options import EvalOptions
    from recalign.pipeline.config import EvaluationSection

    assert PROTOCOL_NAMES == tuple(PROTOCOLS) == ("retrieval", "ranking", "sampled", "rating")
    assert typing.get_args(ProtocolName) == PROTOCOL_NAMES
    assert EvaluationSection().protocols == list(PROTOCOL_NAMES)
    assert EvalOptions().protocol == FULL_RANKING == "retrieval"
    for name in PROTOCOL_NAMES:
        assert EvalOptions(protocol=name).protocol == name


def test_unknown_and_legacy_names_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown protocol 'sampled-100'; expected one of"):
        get_protocol("sampled-100")
    # `full` is only read from old files (canonical_protocol); asked for, it is explained.
    with pytest.raises(ConfigError, match="'full' is now called 'retrieval'"):
        check_protocol("full")
    assert check_protocol("sampled") == "sampled"


def test_legacy_names_map_once():
    assert canonical_protocol("full") == "retrieval"
    assert [canonical_protocol(n) for n in PROTOCOL_NAMES] == list(PROTOCOL_NAMES)
    assert canonical_protocol("something-else") == "something-else"
    assert canonical_protocol(None) is None


def test_protocol_order_is_the_tables_then_unknown_names():
    names = ["zeta", "rating", "alpha", "sampled", "retrieval", "ranking"]
    assert sorted(names, key=protocol_order) == [
        "retrieval",
        "ranking",
        "sampled",
        "rating",
        "alpha",
        "zeta",
    ]


def test_history_words_per_protocol():
    retrieval = get_protocol("retrieval")
    assert retrieval.history_words(True) == "the user's past items are never recommended"
    assert retrieval.history_words(False) == "the user's past items may be recommended"
    assert retrieval.history_words(None) == "not recorded"
    assert "never interacted with" in get_protocol("sampled").history_words(True)
    assert get_protocol("rating").history_words(None) == "not applicable (nothing is ranked)"


# --- the history rule --------------------------------------------------------------------
def test_banned_items_follow_the_option_and_add_exclusions():
    histories = [[3, 1], [], (2,)]
    assert banned_items(histories, True) == [[3, 1], [], [2]]
    assert banned_items(histories, False) == [[], [], []]
    assert banned_items(histories, False, also=[[5], [6, 7], []]) == [[5], [6, 7], []]
    assert banned_items(histories, True, also=[[5], [], [9]]) == [[3, 1, 5], [], [2, 9]]
    assert banned_items([np.array([4, 5])], True) == [[4, 5]]
    assert all(type(i) is int for i in banned_items([np.array([4, 5])], True)[0])
    with pytest.raises(ValueError, match="2 exclusion lists for 3 histories"):
        banned_items(histories, True, also=[[], []])


def test_mask_scores_bans_padding_and_listed_items_in_a_copy():
    scores = np.array([[9.0, 1.0, 2.0, 3.0], [9.0, 4.0, 5.0, 6.0]])
    masked = mask_scores(scores, [[3], [1, 2]])
    assert masked.dtype == np.float32
    np.testing.assert_array_equal(
        masked, [[-np.inf, 1.0, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf, 6.0]]
    )
    assert scores[0, 0] == 9.0  # the input is untouched
    with pytest.raises(ValueError, match="1 banned lists for 2 score rows"):
        mask_scores(scores, [[1]])


# --- top-K -------------------------------------------------------------------------------
def test_top_k_hand_computed_with_ties_and_padding():
    scores = np.array([[9.0, 1.0, 3.0, 3.0, 2.0], [9.0, 0.0, 0.0, 5.0, 0.0]])
    ids, values = top_k(scores, 3)
    # column 0 (padding) never comes back; the 3.0 tie goes to the lower id
    assert ids.tolist() == [[2, 3, 4], [3, 1, 2]]
    assert values.tolist() == [[3.0, 3.0, 2.0], [5.0, 0.0, 0.0]]


def test_top_k_bans_and_pads_when_fewer_than_k_items_remain():
    scores = np.array([[0.0, 1.0, 2.0, 3.0]])
    ids, values = top_k(scores, 3, [[3, 2]])
    assert ids.tolist() == [[1, 0, 0]]
    assert values[0, 0] == 1.0 and np.isneginf(values[0, 1:]).all()
    kept_ids, kept_scores = unpad(ids[0], values[0])
    assert kept_ids.tolist() == [1] and kept_scores.tolist() == [1.0]


def test_top_k_never_returns_more_than_the_catalogue():
    ids, _ = top_k(np.array([[0.0, 2.0, 1.0]]), 10)
    assert ids.tolist() == [[1, 2]]


def test_a_constant_scorer_ranks_by_item_id():
    ids, _ = top_k(np.zeros((1, 8)), 7, [[2, 5]])
    assert ids.tolist() == [[1, 3, 4, 6, 7, 0, 0]]
    positions = target_positions(np.zeros((3, 8)), [4, 5, 1], [[2, 5], [5], []])
    assert positions.tolist() == [2, -1, 0]


@st.composite
def ranking_case(draw):
    n = draw(st.integers(min_value=2, max_value=30))
    # Few distinct values, so ties are common.
    row = draw(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 2.0]), min_size=n + 1, max_size=n + 1))
    banned = draw(st.lists(st.integers(1, n), max_size=n))
    return n, row, banned, draw(st.integers(1, n)), draw(st.integers(1, n))


@settings(max_examples=80, deadline=None)
@given(ranking_case())
def test_top_k_and_target_positions_match_a_full_sort(case):
    n, row, banned, k, target = case
    scores = np.array([row], dtype=np.float32)
    allowed = [i for i in range(1, n + 1) if i not in set(banned)]
    order = sorted(allowed, key=lambda i: (-scores[0, i], i))
    ids, values = top_k(scores, k, [banned])
    got = [i for i in ids[0].tolist() if i != 0]
    assert got == order[:k]
    assert ids[0].tolist() == got + [0] * (min(k, n) - len(got))
    assert np.all(np.diff(values[0][: len(got)]) <= 0)
    [position] = target_positions(scores, [target], [banned]).tolist()
    assert position == (order.index(target) if target in order else -1)


# --- the prediction record ---------------------------------------------------------------
def test_ranked_record():
    record = prediction_record(
        np.int64(7), np.int64(3), ranked=np.array([3, 1]), scores=np.float32([0.5, 0.25])
    )
    assert record == {"user_id": 7, "target": 3, "ranked": [3, 1], "scores": [0.5, 0.25]}
    assert json.dumps(record)  # plain ints and floats
    assert prediction_record(1, 2, ranked=[2]) == {"user_id": 1, "target": 2, "ranked": [2]}
    assert set(record_keys("sampled")) <= set(record)


def test_rating_record():
    record = prediction_record(7, np.int32(3), rating=np.float64(4), prediction=np.float32(3.5))
    assert record == {"user_id": 7, "item": 3, "rating": 4.0, "prediction": 3.5}
    assert json.dumps(record)
    assert set(record_keys("rating")) == set(record)


def test_a_record_is_either_ranked_or_rated():
    with pytest.raises(ValueError, match="either a ranked list or a rating"):
        prediction_record(1, 2)
    with pytest.raises(ValueError, match="either a ranked list or a rating"):
        prediction_record(1, 2, ranked=[2], prediction=3.0)
    with pytest.raises(ValueError, match="needs the true rating"):
        prediction_record(1, 2, prediction=3.0)
