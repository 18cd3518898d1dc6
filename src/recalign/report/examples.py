"""Example users: their recent history, the LLM's top 5 beside the best baseline's, hits marked.

Examples are chosen deterministically and to differ: the first is the lowest user id
the LLM got right in its top 5 (else the lowest id), each next one the user whose recent
history shares the fewest words with the histories already shown (ties: lowest id).
Different histories should then get visibly different lists — and when a model gives
everyone the same list, the examples show that too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recalign.constants import ITEMS_FILE
from recalign.fileio import read_parquet
from recalign.report.blocks import Block, Heading, Paragraph, Table
from recalign.report.collect import Evaluation

RECENT = 5  # history items shown (and compared) per user
TOP = 5  # recommended items shown per model
MAX_CANDIDATES = 5000  # users considered, lowest ids first: the choice stays quick
HIT_MARK = "✔ "
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


def words(texts: Sequence[str]) -> frozenset[str]:
    return frozenset(w for text in texts for w in _WORD.findall(text.lower()))


def _distance(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return 1.0 - len(a & b) / len(union) if union else 0.0


def choose_examples(
    records: Sequence[Mapping[str, Any]],
    signatures: Mapping[int, frozenset[str]],
    n: int = 3,
) -> list[Mapping[str, Any]]:
    """`n` records with varied histories (see the module docstring); deterministic."""
    pool = sorted(
        (r for r in records if signatures.get(int(r["user_id"]))), key=lambda r: int(r["user_id"])
    )[:MAX_CANDIDATES]
    if not pool:
        return []
    first = next((r for r in pool if r["target"] in list(r.get("ranked", []))[:TOP]), pool[0])
    chosen = [first]
    while len(chosen) < min(n, len(pool)):
        taken = {int(r["user_id"]) for r in chosen}

        def spread(record: Mapping[str, Any]) -> float:
            mine = signatures[int(record["user_id"])]
            return min(_distance(mine, signatures[int(c["user_id"])]) for c in chosen)

        # max() keeps the first of equal spreads: the lowest user id.
        chosen.append(max((r for r in pool if int(r["user_id"]) not in taken), key=spread))
    return chosen


def _item_texts(data_dir: Path) -> dict[int, str]:

    items = read_parquet(data_dir / ITEMS_FILE, columns=["item_id", "text"])
    return dict(zip(items["item_id"].to_list(), items["text"].to_list(), strict=True))


def _histories(data_dir: Path, split: str) -> dict[int, list[int]]:
    from recalign.data import load_prepared

    view = getattr(load_prepared(data_dir).split, split, None)
    if view is None:
        return {}
    return dict(zip(view["user_id"].to_list(), view["history"].to_list(), strict=True))


def _rank_words(record: Mapping[str, Any], who: str) -> str:
    ranked = list(record.get("ranked", []))
    if record["target"] in ranked:
        return f"{who}: rank {ranked.index(record['target']) + 1}"
    return f"{who}: not in its top {len(ranked)}"


def example_blocks(
    llm: Evaluation, rival: Evaluation | None, data_dir: Path, n: int = 3
) -> list[Block]:
    """History -> top 5 of the LLM (and of `rival`) for `n` varied users, hits marked."""
    from recalign.evaluation.outputs import read_predictions

    if not llm.predictions_path.is_file() or not (data_dir / ITEMS_FILE).is_file():
        return []
    texts = _item_texts(data_dir)
    histories = _histories(data_dir, llm.split)
    records = read_predictions(llm.directory)
    signatures = {
        int(r["user_id"]): words(
            [texts.get(i, "") for i in histories.get(r["user_id"], [])[-RECENT:]]
        )
        for r in records
    }
    chosen = choose_examples(records, signatures, n)
    if not chosen:
        return []
    theirs: dict[int, Mapping[str, Any]] = {}
    if rival is not None and rival.predictions_path.is_file():
        wanted = {int(r["user_id"]) for r in chosen}
        theirs = {
            int(r["user_id"]): r
            for r in read_predictions(rival.directory)
            if int(r["user_id"]) in wanted
        }
    blocks: list[Block] = [
        Heading(f"Examples ({llm.split} users, full ranking)", 2),
        Paragraph(
            f"Each user's last {RECENT} items, the item they actually chose next (held out), "
            f"and the top {TOP} recommended for them. {HIT_MARK.strip()} marks the held-out "
            "item: a hit."
        ),
    ]
    for record in chosen:
        blocks.extend(_one_example(record, theirs, llm, rival, histories, texts))
    return blocks


def _one_example(
    record: Mapping[str, Any],
    theirs: Mapping[int, Mapping[str, Any]],
    llm: Evaluation,
    rival: Evaluation | None,
    histories: Mapping[int, list[int]],
    texts: Mapping[int, str],
) -> list[Block]:
    user, target = int(record["user_id"]), record["target"]
    other = theirs.get(user)
    if other is not None and other["target"] != target:  # another split: not comparable
        other = None
    lists = [list(record.get("ranked", []))[:TOP]]
    header = ["rank", llm.base_name]
    ranks = [_rank_words(record, llm.base_name)]
    if other is not None and rival is not None:
        lists.append(list(other.get("ranked", []))[:TOP])
        header.append(rival.base_name)
        ranks.append(_rank_words(other, rival.base_name))
    rows, marked = [], set()
    for i in range(max(len(ranked) for ranked in lists)):
        row = [str(i + 1)]
        for j, ranked in enumerate(lists, start=1):
            item = ranked[i] if i < len(ranked) else None
            text = "" if item is None else str(texts.get(item, item))
            if item is not None and item == target:
                text = HIT_MARK + text
                marked.add((i, j))
            row.append(text)
        rows.append(row)
    history = histories.get(user, [])[-RECENT:]
    return [
        Heading(f"User {user}", 3),
        Paragraph(
            "Last items (oldest first): "
            + " · ".join(str(texts.get(item, item)) for item in history)
        ),
        Paragraph(f"Held out: {texts.get(target, target)} — " + "; ".join(ranks) + "."),
        Table(header, rows, frozenset(marked)),
    ]
