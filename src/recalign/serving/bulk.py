"""Recommendations for a file of users (`recalign recommend --users FILE --out FILE`).

The file holds JSON lines `{"user_id": ..., "history": [item ids or texts]}`; every user
becomes one record `{"user_id", "items": [ids], "texts": [...], "scores": [...]}`.
Users are recommended for in batches (one model call each); a history entry that names
no item is an error naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.errors import DataFormatError, RecalignError
from recalign.fileio import iter_jsonl
from recalign.serving.recommender import Recommender
from recalign.serving.resolve import UnknownItemsError

BATCH_USERS = 64  # users per model call


@dataclass(frozen=True)
class UserHistory:
    """One line of a users file."""

    user_id: Any
    history: list[int | str]
    line: int


def read_users(path: Path) -> list[UserHistory]:
    """The users of a JSON-lines file, each with a non-empty history."""
    if not path.is_file():
        raise RecalignError(f"{path} does not exist (expected JSON lines with user_id and history)")
    users = []
    for number, row in iter_jsonl(path):
        if not isinstance(row, dict) or not isinstance(row.get("history"), list):
            raise DataFormatError(
                'expected an object with a "history" list', path=path, line=number, field="history"
            )
        if not row["history"]:
            raise DataFormatError("empty history", path=path, line=number, field="history")
        users.append(UserHistory(row.get("user_id", number), row["history"], number))
    if not users:
        raise DataFormatError("no users in the file", path=path)
    return users


def recommend_users(
    rec: Recommender,
    users: Sequence[UserHistory],
    k: int,
    *,
    exclude_history: bool = True,
    fuzzy: bool = True,
    source: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per user, in order, `BATCH_USERS` users per model call. `source` is the
    users file, named by the error of a history entry that matches no item."""
    for start in range(0, len(users), BATCH_USERS):
        chunk = users[start : start + BATCH_USERS]
        histories = []
        for user in chunk:
            try:
                histories.append([r.item_id for r in rec.resolve(user.history, fuzzy=fuzzy)])
            except UnknownItemsError as error:
                raise DataFormatError(
                    str(error), path=source, line=user.line, field="history"
                ) from None
        lists = rec.recommend_ids(histories, k, exclude_history=exclude_history)
        for user, items in zip(chunk, lists, strict=True):
            yield {
                "user_id": user.user_id,
                "items": [r.item_id for r in items],
                "texts": [r.text for r in items],
                "scores": [r.score for r in items],
            }
