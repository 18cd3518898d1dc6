"""How an item is shown to a model: its text, a random id token, a semantic id, or one
of the ids followed by the text.

Id tokens come from a seeded random permutation of the catalogue (`<item_4821>`), never
the sequential dataset ids: P5 showed sequential ids leak answers, because items bought
together get neighbouring ids and share sub-word tokens. Semantic ids
(`recalign.samples.semantic`) are codes of a few added tokens that similar texts share a
prefix of; they are computed once per catalogue and passed in as `codes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from recalign.errors import ConfigError

if TYPE_CHECKING:  # numpy is imported where it draws: the config schemas read this module
    import numpy as np

ItemRepr = Literal["title", "id", "id+title", "semantic", "semantic+title"]
ITEM_REPRS: tuple[str, ...] = ("title", "id", "id+title", "semantic", "semantic+title")
SEMANTIC_REPRS: tuple[str, ...] = ("semantic", "semantic+title")


def is_semantic(mode: str) -> bool:
    return mode in SEMANTIC_REPRS


# Salt mixed into the id seed so the permutation is independent of other seeded streams.
_ID_STREAM = 0x1D


def id_tokens(num_items: int, seed: int = 0) -> list[str]:
    """`tokens[i]` is item i's id token (index 0 unused); a permutation of 1..num_items."""
    import numpy as np

    rng = np.random.default_rng([seed, _ID_STREAM])
    perm = rng.permutation(num_items) + 1
    return ["", *(f"<item_{n}>" for n in perm.tolist())]


def item_representations(
    item_texts: np.ndarray,
    mode: str = "title",
    seed: int = 0,
    codes: Sequence[str] | None = None,
) -> list[str]:
    """The string shown for each item id (index 0 unused), as a list for fast indexing.

    `item_texts` is `PreparedDataset.item_texts` (indexed by dense item id); `codes`, the
    semantic id of each item id (index 0 unused), is needed by the semantic modes.
    """
    if mode not in ITEM_REPRS:
        raise ConfigError(f"unknown item representation {mode!r}; choose from {ITEM_REPRS}")
    texts = [str(t) for t in item_texts.tolist()]
    if mode == "title":
        return texts
    if is_semantic(mode):
        if codes is None or len(codes) != len(texts):
            raise ConfigError(
                f"item representation {mode!r} needs one semantic id per item "
                f"({len(texts) - 1}), got {None if codes is None else len(codes) - 1}"
            )
        tokens = ["", *(str(c) for c in list(codes)[1:])]
    else:
        tokens = id_tokens(len(texts) - 1, seed)
    if mode in ("id", "semantic"):
        return tokens
    return ["", *(f"{tok} {text}" for tok, text in zip(tokens[1:], texts[1:], strict=True))]
