from __future__ import annotations

from recalign.report.examples import choose_examples, words


def _record(user, target, ranked):
    return {"user_id": user, "target": target, "ranked": ranked}


SIGNATURES = {
    1: words(["Red Shampoo", "Blue Shampoo"]),
    2: words(["Red Shampoo", "Red Conditioner"]),
    3: words(["Cedar Shaving Cream", "Pine Beard Oil"]),
    4: words(["Jet Black Mascara", "Sand Primer"]),
    5: words(["Cedar Shaving Cream", "Cedar Beard Oil"]),
}


def test_examples_start_with_a_hit_then_spread_over_histories():
    records = [_record(u, 10 + u, [99, 98]) for u in range(1, 6)]
    records[1]["ranked"] = [12, 98]  # user 2 is the first one with a hit in the top 5
    chosen = [r["user_id"] for r in choose_examples(records, SIGNATURES, 3)]
    assert chosen[0] == 2
    # Next: a history sharing no word with user 2's (3, 4 and 5 all qualify: lowest id),
    # then one sharing no word with either (4: makeup, not shaving again).
    assert chosen[1:] == [3, 4]


def test_examples_are_deterministic_and_skip_users_without_history():
    records = [_record(u, 0, [1]) for u in (5, 4, 3, 2, 1, 6)]  # no hit: lowest id first
    signatures = {**SIGNATURES, 6: frozenset()}
    first = choose_examples(records, signatures, 3)
    assert first == choose_examples(list(reversed(records)), signatures, 3)
    assert first[0]["user_id"] == 1
    assert all(r["user_id"] != 6 for r in choose_examples(records, signatures, 6))
    assert choose_examples([], signatures) == []
