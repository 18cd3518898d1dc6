"""Recommendations for a file of users (`recalign recommend --users FILE --out FILE`),
and new items from a file (`recalign serve --new-items FILE`).

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


def read_item_texts(path: Path, max_length: int) -> list[str]:
    """The new items of a text file: one item text per line, blank lines skipped.

    Every problem names the file and line: not UTF-8, a text over `max_length`
    characters, the same text (ignoring case and spacing) on two lines.
    """
    if not path.is_file():
        raise RecalignError(f"{path} does not exist (expected one item text per line)")
    texts: list[str] = []
    first_line: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFormatError(
                    f"not UTF-8 text (byte {error.start})", path=path, line=number
                ) from None
            text = " ".join(line.split())
            if not text:
                continue
            if len(text) > max_length:
                raise DataFormatError(
                    f"an item text of {len(text)} characters (at most {max_length})",
                    path=path,
                    line=number,
                )
            key = text.casefold()
            if key in first_line:
                raise DataFormatError(
                    f"the same item text as line {first_line[key]}: {text[:80]!r}",
                    path=path,
                    line=number,
                )
            first_line[key] = number
            texts.append(text)
    if not texts:
        raise DataFormatError("no item texts (one per line)", path=path)
    return texts
