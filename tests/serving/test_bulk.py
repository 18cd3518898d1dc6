"""Recommendations for a file of users: batches of model calls, errors naming the line."""

from __future__ import annotations

import json

import pytest

from recalign.errors import DataFormatError
from recalign.serving.bulk import BATCH_USERS, read_users, recommend_users
from tests.serving.conftest import TEXTS


def test_users_are_recommended_for_in_batches(fake_rec, tmp_path):
    path = tmp_path / "users.jsonl"
    count = 2 * BATCH_USERS + 2
    path.write_text(
        "".join(json.dumps({"user_id": u, "history": [1, TEXTS[2]]}) + "\n" for u in range(count))
    )
    records = list(recommend_users(fake_rec, read_users(path), 3, source=path))
    assert [r["user_id"] for r in records] == list(range(count))
    assert fake_rec.backend.calls == [BATCH_USERS, BATCH_USERS, 2]
    assert all(len(r["items"]) == len(r["texts"]) == len(r["scores"]) == 3 for r in records)
    assert not {1, 3} & {i for r in records for i in r["items"]}  # history excluded


def test_an_unknown_item_names_the_file_line_and_field(fake_rec, tmp_path):
    path = tmp_path / "users.jsonl"
    path.write_text('{"history": [1]}\n\n{"history": ["no such product at all"]}\n')
    with pytest.raises(DataFormatError) as error:
        list(recommend_users(fake_rec, read_users(path), 3, fuzzy=False, source=path))
    assert f"{path}, line 3, field 'history'" in str(error.value)
