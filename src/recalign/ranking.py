"""The ranking core: the protocol table, the history rule, top-K and the prediction record.

Every model is ranked by the rules here, once: the language model's evaluator
(`recalign.evaluation.llm`) and constrained search (`recalign.inference.retrieval` bans
what `banned_items` names), the baselines (scoring and early stopping), the server, the
evaluation writer and the report.

Why a top-level module and not `recalign.evaluation.ranking`: like `recalign.constants`,
this is a contract between the stages, and the stages that rank (baselines, inference,
serving) and the run config should not import the evaluation package — its writers,
metrics and bootstrap — to learn a protocol's name. It needs nothing of the project but
the constants and the errors, and imports numpy only where it ranks, so the CLI and the
run config can read the protocol table without it.

Protocols (`PROTOCOLS`, in the report's order):

    retrieval  full ranking over the whole catalogue: the LLM by constrained beam
               search, the baselines by scoring every item
    ranking    the K candidates listed in the ranking prompt
    sampled    1 + n: the target and n seeded items the user never interacted with
               (P5-style; reported apart, never mixed with full ranking)
    rating     the held-out item's rating; nothing is ranked

Full ranking has one name, `retrieval`, for every model. Evaluations written before the
names were unified call a baseline's full ranking `full`; `canonical_protocol` maps that
name where `metrics.json` is read (`recalign.evaluation.outputs.read_metrics`), nowhere
else.

The history rule (recorded in `metrics.json` as `exclude_history`): under full ranking
the user's own history items are banned when `exclude_history` is true (the default) and
allowed when it is false; `ranking` and `sampled` candidates are items the user never
interacted with by construction, so they record true whatever the option; `rating` ranks
nothing and records null.

Top-K order: score descending, ties to the lower item id. Score matrices are
(users, num_items + 1), indexed by item id; column 0 is padding and never returned. When
fewer than K items remain, the list is padded with id 0 and score -inf (`unpad` strips
it).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from recalign.constants import ITEM, PREDICTION, RANKED, RATING, SCORES, TARGET, USER_ID
from recalign.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# What a protocol ranks.
CATALOGUE, PROMPT_CANDIDATES, SAMPLED_CANDIDATES, NOTHING = (
    "catalogue",
    "prompt candidates",
    "sampled candidates",
    "nothing",
)
# What `exclude_history` means for a protocol (see the module docstring).
HISTORY_OPTION, HISTORY_UNSEEN, HISTORY_NOT_RANKED = "option", "unseen", "not ranked"


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol, as every model, writer and report sees it."""

    name: str
    task: str  # the samples task whose evaluation prompts the language model reads
    ranks: str  # CATALOGUE, PROMPT_CANDIDATES, SAMPLED_CANDIDATES or NOTHING
    history: str  # HISTORY_OPTION, HISTORY_UNSEEN or HISTORY_NOT_RANKED
    title: str  # the report's section title
    short_title: str  # the report's verdict lines start with it

    @property
    def predicts_rating(self) -> bool:
        """True where a prediction is a rating record, false where it is a ranked list."""
        return self.ranks == NOTHING

    def recorded_history(self, exclude_history: bool) -> bool | None:
        """What `metrics.json` records as `exclude_history` under this protocol."""
        if self.history == HISTORY_OPTION:
            return bool(exclude_history)
        return True if self.history == HISTORY_UNSEEN else None

    def history_words(self, recorded: Any) -> str:
        """What a recorded `exclude_history` means under this protocol, in words."""
        if self.history == HISTORY_UNSEEN:
            return "the candidates are the held-out item and items the user never interacted with"
        if self.history == HISTORY_NOT_RANKED:
            return "not applicable (nothing is ranked)"
        if recorded is True:
            return "the user's past items are never recommended"
        if recorded is False:
            return "the user's past items may be recommended"
        return "not recorded"


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "retrieval",
            "retrieval",
            CATALOGUE,
            HISTORY_OPTION,
            "Full ranking over the catalogue (retrieval)",
            "Full ranking",
        ),
        Protocol(
            "ranking",
            "ranking",
            PROMPT_CANDIDATES,
            HISTORY_UNSEEN,
            "Ranking K candidates in the prompt",
            "Ranking candidates",
        ),
        Protocol(
            "sampled",
            "retrieval",
            SAMPLED_CANDIDATES,
            HISTORY_UNSEEN,
            "Sampled 1 + 99 candidates (not comparable with full ranking)",
            "Sampled candidates",
        ),
        Protocol("rating", "rating", NOTHING, HISTORY_NOT_RANKED, "Rating prediction", "Rating"),
    )
}
PROTOCOL_NAMES: tuple[str, ...] = tuple(PROTOCOLS)
# The names as a type, for typed configs (pydantic validates a Literal built at runtime).
ProtocolName = Literal[PROTOCOL_NAMES]  # type: ignore[valid-type]
FULL_RANKING = "retrieval"  # the protocol every model ranks the whole catalogue under
RATING_PROTOCOL = "rating"
TOP_K = 20  # items in a ranked list unless asked otherwise, for every model (DESIGN.md)
# Names that earlier versions wrote into metrics.json, and the protocol they mean now.
LEGACY_NAMES = {"full": FULL_RANKING}


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; a clear error for anything else (a legacy name too:
    only files are read under those)."""
    protocol = PROTOCOLS.get(name)
    if protocol is not None:
        return protocol
    hint = f" ({name!r} is now called {LEGACY_NAMES[name]!r})" if name in LEGACY_NAMES else ""
    raise ConfigError(
        f"unknown protocol {name!r}{hint}; expected one of {', '.join(PROTOCOL_NAMES)}"
    )


def check_protocol(name: str) -> str:
    """`name` if it is a protocol, else a `ConfigError` that lists them."""
    return get_protocol(name).name


def protocol_order(name: str) -> tuple[int, str]:
    """A sort key: the table's order, then names it does not know, alphabetically."""
    return (PROTOCOL_NAMES.index(name) if name in PROTOCOLS else len(PROTOCOLS), name)


def canonical_protocol(name: Any) -> Any:
    """The current name of a protocol read from a file (`full` -> `retrieval`)."""
    return LEGACY_NAMES.get(name, name) if isinstance(name, str) else name


# --- the history rule --------------------------------------------------------------------
def banned_items(
    histories: Sequence[Collection[int]],
    exclude_history: bool,
    also: Sequence[Collection[int]] | None = None,
) -> list[list[int]]:
    """The items each user may not get under full ranking: their history when
    `exclude_history`, plus `also` (further per-user exclusions)."""
    banned = [[int(i) for i in h] if exclude_history else [] for h in histories]
    if also is not None:
        if len(also) != len(banned):
            raise ValueError(f"{len(also)} exclusion lists for {len(banned)} histories")
        banned = [b + [int(i) for i in extra] for b, extra in zip(banned, also, strict=True)]
    return banned


def _flat(banned: Sequence[Collection[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row, item id) of every banned entry."""
    import numpy as np

    rows = np.repeat(np.arange(len(banned)), [len(b) for b in banned])
    cols = np.fromiter((i for b in banned for i in b), dtype=np.int64, count=len(rows))
    return rows, cols


def mask_scores(scores: np.ndarray, banned: Sequence[Collection[int]] | None = None) -> np.ndarray:
    """A float32 copy of a (users, num_items + 1) score matrix with column 0 (padding)
    and each row's banned item ids at -inf."""
    import numpy as np

    masked = np.array(scores, dtype=np.float32, copy=True)
    masked[:, 0] = -np.inf
    if banned is not None:
        if len(banned) != masked.shape[0]:
            raise ValueError(f"{len(banned)} banned lists for {masked.shape[0]} score rows")
        rows, cols = _flat(banned)
        masked[rows, cols] = -np.inf
    return masked


# --- top-K ---------------------------------------------------------------------------------
def top_k(
    scores: np.ndarray, k: int, banned: Sequence[Collection[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` item ids of each row of a score matrix and their scores, best first.

    Returns two (users, min(k, num_items)) arrays; ties go to the lower item id; a row
    with fewer than k allowed items is padded with id 0 and score -inf.
    """
    import numpy as np

    masked = mask_scores(scores, banned)
    k = min(k, masked.shape[1] - 1)
    if k < 1:
        raise ValueError(f"k must be at least 1 and the catalogue non-empty, got k={k}")
    # argpartition picks the k best in O(n); ties at the boundary are then resolved by
    # sorting on (-score, id) over every item that reaches the k-th best score.
    part = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(masked, part, axis=1).min(axis=1, keepdims=True)
    top_ids = np.empty((masked.shape[0], k), dtype=np.int64)
    for row in range(masked.shape[0]):
        candidates = np.flatnonzero(masked[row] >= kth[row])
        order = np.lexsort((candidates, -masked[row, candidates]))
        top_ids[row] = candidates[order[:k]]
    top_scores = np.take_along_axis(masked, top_ids, axis=1)
    # Fewer than k rankable items: the tail is padding, never a banned item.
    top_ids[np.isneginf(top_scores)] = 0
    return top_ids, top_scores


def unpad(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row of `top_k` without its padding (id 0)."""
    import numpy as np

    ids, scores = np.asarray(ids), np.asarray(scores)
    keep = ids != 0
    return ids[keep], scores[keep]


def target_positions(
    scores: np.ndarray, targets: Sequence[int], banned: Sequence[Collection[int]] | None = None
) -> np.ndarray:
    """0-based position of each row's target in that row's full `top_k` order; -1 where
    the target is banned (a miss). Cheaper than a top-K when only metrics are needed."""
    import numpy as np

    masked = mask_scores(scores, banned)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(masked.shape[0])
    target_scores = masked[rows, targets][:, None]
    ids = np.arange(masked.shape[1])
    better = (masked > target_scores).sum(axis=1)
    tied_lower = ((masked == target_scores) & (ids[None, :] < targets[:, None])).sum(axis=1)
    positions = (better + tied_lower).astype(np.int64)
    if banned is not None:
        banned_rows, banned_ids = _flat(banned)
        positions[banned_rows[banned_ids == targets[banned_rows]]] = -1
    return positions


# --- the prediction record -----------------------------------------------------------------
RANKED_RECORD_KEYS = (USER_ID, TARGET, RANKED)  # + SCORES, optional
RATING_RECORD_KEYS = (USER_ID, ITEM, RATING, PREDICTION)


def prediction_record(
    user_id: int,
    held_out: int,
    *,
    ranked: Sequence[int] | None = None,
    scores: Sequence[float] | None = None,
    rating: float | None = None,
    prediction: float | None = None,
) -> dict[str, Any]:
    """One line of `predictions.jsonl`: what a model made of a user's held-out item.

    A ranked list (`ranked`, best first, with optional `scores`) is recorded as
    `{user_id, target, ranked, scores}`; a rating (`rating` is the truth, `prediction`
    the model's) as `{user_id, item, rating, prediction}`. Values become plain ints and
    floats, so numpy results serialise as the same JSON.
    """
    if (ranked is None) == (prediction is None):
        raise ValueError("a prediction record holds either a ranked list or a rating prediction")
    if ranked is not None:
        record: dict[str, Any] = {
            USER_ID: int(user_id),
            TARGET: int(held_out),
            RANKED: [int(i) for i in ranked],
        }
        if scores is not None:
            record[SCORES] = [float(s) for s in scores]
        return record
    if rating is None:
        raise ValueError("a rating prediction record needs the true rating")
    return {
        USER_ID: int(user_id),
        ITEM: int(held_out),
        RATING: float(rating),
        PREDICTION: float(prediction),
    }


def record_keys(protocol: str) -> tuple[str, ...]:
    """The keys every prediction record of `protocol` must have."""
    return RATING_RECORD_KEYS if get_protocol(protocol).predicts_rating else RANKED_RECORD_KEYS
