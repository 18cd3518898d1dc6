"""`Recommender`: top-K lists, candidate ranking and ratings from a run directory.

    rec = Recommender.load("runs/beauty-t5")
    rec.recommend(["Maybelline Great Lash Mascara", 1234], k=10)
    rec.rank(history, candidates=[5, 17, 99])
    rec.rate(history, item=17)
    rec.search_items("mascara")

One class over a small `Backend` protocol (a baseline or a language model), so the
CLI and the HTTP API never care which model a run holds. Entries of a history may be
item ids or texts; texts are resolved exactly or by a fuzzy title search, and every
result reports how each entry matched.

Thread-safety: a catalogue is never changed in place (adding items swaps in a new one,
under the lock); backend calls are serialised by a lock, because a torch model shares
its buffers (and CPU threads) between callers anyway — concurrency comes from
*batching* callers (see `recalign.serving.app`), not from running the model twice at
once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recalign.artifacts import BaselineDir, PipelineDir, RunDir, read_manifest
from recalign.constants import MANIFEST_FILE
from recalign.errors import IncompatibleArtifactError, RecalignError
from recalign.serving.backends import (
    Backend,
    UnsupportedOperationError,
    describe_score,
    popularity_backend,
)
from recalign.serving.resolve import (
    FuzzyBudget,
    ItemCatalog,
    ItemMatch,
    ResolvedItem,
    UnknownItemsError,
)

logger = logging.getLogger(__name__)

ItemRef = int | str


class InvalidRequestError(RecalignError):
    """A request that is well-formed but cannot be answered as asked (k < 1, duplicates...)."""


@dataclass(frozen=True)
class Recommendation:
    item_id: int
    text: str
    score: float
    rank: int  # 1 = best

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NewItem:
    """An item added while serving: its new id, its text, and how the model is shown it
    (the text itself, or a semantic id)."""

    item_id: int
    text: str
    shown_as: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecommendResult:
    items: list[Recommendation]
    history: list[ResolvedItem] = field(default_factory=list)

    @property
    def item_ids(self) -> list[int]:
        return [r.item_id for r in self.items]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [r.to_dict() for r in self.items],
            "history": [h.to_dict() for h in self.history],
        }


@dataclass(frozen=True)
class RatingResult:
    item: ResolvedItem
    rating: float
    history: list[ResolvedItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item.to_dict(),
            "rating": self.rating,
            "history": [h.to_dict() for h in self.history],
        }


def _ranked(catalog: ItemCatalog, ids: np.ndarray, scores: np.ndarray) -> list[Recommendation]:
    return [
        Recommendation(int(i), catalog.text(int(i)), float(s), rank)
        for rank, (i, s) in enumerate(zip(ids.tolist(), scores.tolist(), strict=True), start=1)
    ]


class Recommender:
    """Recommendations from one model over one catalogue; safe to share between threads."""

    def __init__(
        self,
        backend: Backend,
        catalog: ItemCatalog,
        *,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.catalog = catalog
        self.info = dict(info or {})
        self.added = 0  # items added while serving (`add_items`)
        self._lock = threading.Lock()

    # --- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        *,
        data_dir: str | Path | None = None,
        device: str | None = None,
        model: str | None = None,
    ) -> Recommender:
        """Open a run directory (LLM run, baseline run, or a prepared dataset -> popularity).

        A `recalign run` directory holds several models: `model` picks one by name
        (`llm`, the fine-tuned model, by default, or a baseline in its `baselines/`).
        `data_dir` overrides the prepared dataset the run's manifest points to. Raises a
        `RecalignError` saying what is missing or broken, before any request is served.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise RecalignError(
                f"{run_dir} does not exist or is not a directory (expected a run dir)"
            )
        kind = read_manifest(run_dir).kind  # names a missing, corrupt or outdated manifest
        info: dict[str, Any] = {}
        if kind == "pipeline":
            pipeline = PipelineDir(run_dir)
            models = pipeline_models(pipeline)
            name = model or LLM_MODEL
            run_dir = _pick_model(pipeline, models, name, chosen=model is not None)
            data_dir = data_dir or pipeline.data
            kind = read_manifest(run_dir).kind
            info = {"pipeline": str(pipeline.path), "served": name, "models": list(models)}
        elif model is not None:
            raise RecalignError(
                f"--model {model}: {run_dir} holds one model (a {kind!r} run), not the models "
                "of a `recalign run` directory; serve it without --model"
            )
        loader = LOADERS.get(kind)
        if loader is None:
            raise RecalignError(
                f"{run_dir / MANIFEST_FILE}: kind {kind!r} cannot be served; expected one of "
                f"{sorted(LOADERS)} (a training run, a baseline run or a prepared dataset)"
            )
        loaded = loader(run_dir, data_dir, device)
        loaded.info.update(info)
        return loaded

    # --- single requests -------------------------------------------------------------
    def resolve(
        self,
        entries: Sequence[ItemRef],
        *,
        fuzzy: bool = True,
        field: str = "history",
        budget: FuzzyBudget | None = None,
    ) -> list[ResolvedItem]:
        return self.catalog.resolve(entries, fuzzy=fuzzy, field=field, budget=budget)

    def recommend(
        self,
        history: Sequence[ItemRef],
        k: int = 10,
        *,
        exclude_history: bool = True,
        fuzzy: bool = True,
    ) -> RecommendResult:
        """Top-`k` items after `history` (ids or texts, oldest first)."""
        return self.recommend_batch([history], k, exclude_history=exclude_history, fuzzy=fuzzy)[0]

    def rank(
        self,
        history: Sequence[ItemRef],
        candidates: Sequence[ItemRef],
        *,
        fuzzy: bool = True,
    ) -> RecommendResult:
        """`candidates` re-ordered best first, with the model's score for each."""
        return self.rank_batch([history], [candidates], fuzzy=fuzzy)[0]

    def rate(
        self,
        history: Sequence[ItemRef],
        item: ItemRef,
        *,
        ratings: Sequence[float] | None = None,
        fuzzy: bool = True,
    ) -> RatingResult:
        """Predicted rating of `item` for a user with `history` (and its `ratings`, if known)."""
        return self.rate_batch([history], [item], ratings=[ratings], fuzzy=fuzzy)[0]

    def search_items(self, query: str, limit: int = 10) -> list[ItemMatch]:
        return self.catalog.search(query, limit)

    # --- batched: many users in one model call ---------------------------------------
    def recommend_batch(
        self,
        histories: Sequence[Sequence[ItemRef]],
        k: int = 10,
        *,
        exclude_history: bool = True,
        fuzzy: bool = True,
    ) -> list[RecommendResult]:
        resolved = [self.resolve(h, fuzzy=fuzzy) for h in histories]
        ids = [[r.item_id for r in h] for h in resolved]
        lists = self.recommend_ids(ids, k, exclude_history=exclude_history)
        return [RecommendResult(items, h) for items, h in zip(lists, resolved, strict=True)]

    def rank_batch(
        self,
        histories: Sequence[Sequence[ItemRef]],
        candidates: Sequence[Sequence[ItemRef]],
        *,
        fuzzy: bool = True,
    ) -> list[RecommendResult]:
        if len(histories) != len(candidates):
            raise InvalidRequestError("one candidate list per history is needed")
        resolved = [self.resolve(h, fuzzy=fuzzy) for h in histories]
        cands = [self.resolve(c, fuzzy=fuzzy, field="candidates") for c in candidates]
        lists = self.rank_ids(
            [[r.item_id for r in h] for h in resolved], [[r.item_id for r in c] for c in cands]
        )
        return [RecommendResult(items, h) for items, h in zip(lists, resolved, strict=True)]

    def rate_batch(
        self,
        histories: Sequence[Sequence[ItemRef]],
        items: Sequence[ItemRef],
        *,
        ratings: Sequence[Sequence[float] | None] | None = None,
        fuzzy: bool = True,
    ) -> list[RatingResult]:
        if len(histories) != len(items):
            raise InvalidRequestError("one item per history is needed")
        resolved = [self.resolve(h, fuzzy=fuzzy) for h in histories]
        targets = [self.catalog.resolve([i], fuzzy=fuzzy, field="item")[0] for i in items]
        values = self.rate_ids(
            [[r.item_id for r in h] for h in resolved],
            [t.item_id for t in targets],
            ratings=ratings,
        )
        return [RatingResult(t, v, h) for t, v, h in zip(targets, values, resolved, strict=True)]

    # --- on resolved ids (what the HTTP batcher calls) -------------------------------
    def recommend_ids(
        self, histories: Sequence[Sequence[int]], k: int, *, exclude_history: bool = True
    ) -> list[list[Recommendation]]:
        if k < 1:
            raise InvalidRequestError(f"k must be at least 1, got {k}")
        self._check_ids(histories)
        with self._lock:
            top = self.backend.recommend(histories, k, exclude_history)
        return [_ranked(self.catalog, ids, scores) for ids, scores in top]

    def rank_ids(
        self, histories: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]]
    ) -> list[list[Recommendation]]:
        self._check_ids(histories)
        self._check_ids(candidates, field="candidates")
        for cands in candidates:
            if not len(cands):
                raise InvalidRequestError("candidates must not be empty")
            if len(set(cands)) != len(cands):
                dupes = sorted({c for c in cands if list(cands).count(c) > 1})
                raise InvalidRequestError(f"duplicate candidates: {dupes}")
        with self._lock:
            scores = self.backend.rank(histories, candidates)
        out = []
        for cands, row in zip(candidates, scores, strict=True):
            cands_arr = np.asarray(cands, dtype=np.int64)
            # Stable: equal scores keep the caller's candidate order.
            order = np.argsort(-np.asarray(row, dtype=np.float64), kind="stable")
            out.append(_ranked(self.catalog, cands_arr[order], np.asarray(row)[order]))
        return out

    def rate_ids(
        self,
        histories: Sequence[Sequence[int]],
        items: Sequence[int],
        *,
        ratings: Sequence[Sequence[float] | None] | None = None,
    ) -> list[float]:
        self._check_ids(histories)
        self._check_ids([items], field="item")
        ratings = list(ratings) if ratings is not None else [None] * len(histories)
        for history, rated in zip(histories, ratings, strict=True):
            if rated is not None and len(rated) != len(history):
                raise InvalidRequestError(
                    f"ratings must align with history ({len(rated)} ratings for "
                    f"{len(history)} items)"
                )
        with self._lock:
            values = self.backend.rate(histories, items, ratings)
        return [float(v) for v in np.asarray(values, dtype=np.float64)]

    # --- items added while serving ---------------------------------------------------
    def add_items(self, texts: Sequence[str], *, up_to: int | None = None) -> list[NewItem]:
        """Add items by their text, recommendable at once without retraining.

        For a language model shown titles or semantic ids (`LLMBackend.add_items`); a
        baseline knows only the items it was fitted on, and says so. The items live as
        long as this recommender (`recalign serve --new-items FILE` adds them again at
        start). Texts must be new: equal to no catalogue text (ignoring case and
        spacing) nor to each other. `up_to` caps the items added over this recommender's
        life (a server's `max_new_items`).
        """
        cleaned = [" ".join(str(t).split()) for t in texts]
        if not cleaned:
            raise InvalidRequestError("no items to add")
        empty = [n for n, t in enumerate(cleaned) if not t]
        if empty:
            raise InvalidRequestError(f"item texts must not be empty (entries {empty[:10]})")
        add = getattr(self.backend, "add_items", None)
        if add is None:
            raise UnsupportedOperationError(
                f"the model {self.backend.name!r} ({self.backend.kind}) scores only the items "
                "it was fitted on; new items need a language-model run that shows items by "
                "title or semantic id"
            )
        seen: dict[str, int] = {}
        for n, text in enumerate(cleaned):
            if text.casefold() in seen:
                raise InvalidRequestError(
                    f"entries {seen[text.casefold()]} and {n} have the same text {text!r}"
                )
            seen[text.casefold()] = n
        with self._lock:
            if up_to is not None and self.added + len(cleaned) > up_to:
                raise InvalidRequestError(
                    f"{len(cleaned)} new item(s) asked for, but only "
                    f"{max(up_to - self.added, 0)} more may be added to this server"
                )
            catalog = self.catalog
            known = {t: catalog.find_text(t) for t in cleaned}
            taken = {t: i for t, i in known.items() if i is not None}
            if taken:
                shown = ", ".join(f"{t!r} (item {i})" for t, i in list(taken.items())[:5])
                raise InvalidRequestError(f"already in the catalogue: {shown}")
            ids = list(range(catalog.next_id, catalog.next_id + len(cleaned)))
            shown_as = add(ids, cleaned)
            self.catalog = catalog.with_items(ids, cleaned)
            self.added += len(ids)
        logger.info("added %d item(s): ids %d-%d", len(ids), ids[0], ids[-1])
        return [NewItem(i, t, s) for i, t, s in zip(ids, cleaned, shown_as, strict=True)]

    def _check_ids(self, lists: Sequence[Sequence[int]], field: str = "history") -> None:
        unknown = sorted({int(i) for ids in lists for i in ids if int(i) not in self.catalog})
        if unknown:
            raise UnknownItemsError(unknown, field=field)

    def describe(self) -> dict[str, Any]:
        """What `/health` reports: which model, which catalogue, what it can do."""
        return {
            "kind": self.backend.kind,
            "model": self.backend.name,
            "num_items": len(self.catalog),
            "added_items": self.added,
            "can_rate": bool(self.backend.can_rate),
            "score": describe_score(self.backend),
            **self.info,
        }


# --- run-directory loaders (explicit registry, keyed by the manifest's `kind`) -------

LLM_MODEL = "llm"  # the `--model` name of a pipeline's fine-tuned model (its `train/`)


def pipeline_models(pipeline: PipelineDir) -> dict[str, Path]:
    """The models of a `recalign run` directory: `llm` (train/) and each finished baseline."""
    models: dict[str, Path] = {}
    if RunDir.is_one(pipeline.train()):
        models[LLM_MODEL] = pipeline.train()
    if pipeline.baselines.is_dir():
        for directory in sorted(pipeline.baselines.iterdir()):
            # A skipped baseline (e.g. a rating one on data without ratings) has no manifest.
            if BaselineDir.is_one(directory):
                models[directory.name] = directory
    return models


def _pick_model(pipeline: PipelineDir, models: dict[str, Path], name: str, *, chosen: bool) -> Path:
    if name in models:
        return models[name]
    have = ", ".join(models) if models else "no finished model yet"
    if name == LLM_MODEL and not chosen:
        hint = "; serve a baseline with --model NAME" if models else ""
        raise RecalignError(
            f"{pipeline.train()} is missing: the pipeline has not trained yet "
            f"(it has: {have}){hint}"
        )
    raise RecalignError(
        f"--model {name}: {pipeline.path} has no model {name!r}; it has: {have} "
        f"({LLM_MODEL} = the fine-tuned model, the others are baselines/<name>)"
    )


def _load_dataset_for(artifact: RunDir | BaselineDir, data_dir: str | Path | None) -> Any:
    """The dataset a run or baseline was made from (or `data_dir`), refused if it is not."""
    from recalign.data import load_prepared

    path = Path(data_dir) if data_dir is not None else artifact.dataset_dir()
    if not path.is_dir():
        raise RecalignError(
            f"the prepared dataset of {artifact.path} ({path}) is missing; pass its location "
            "with --data"
        )
    dataset = load_prepared(path)
    expected = artifact.manifest.data_hash
    if expected and expected != dataset.data_hash:
        raise IncompatibleArtifactError(
            f"{artifact.path} was made from data {expected[:12]}…, but {path} is "
            f"{str(dataset.data_hash)[:12]}…; serve it with the prepared dataset it was made from"
        )
    return dataset


def _load_dataset_dir(run_dir: Path, data_dir, device) -> Recommender:
    """A prepared dataset on its own: serve training popularity (no model needed)."""
    from recalign.data import load_prepared

    dataset = load_prepared(run_dir)
    return Recommender(
        popularity_backend(dataset),
        ItemCatalog.from_dataset(dataset),
        info={"run_dir": str(run_dir), "dataset": dataset.name},
    )


def _load_baseline_run(run_dir: Path, data_dir, device) -> Recommender:
    from recalign.baselines import load_baseline
    from recalign.serving.backends import BaselineBackend

    baseline = BaselineDir.open(run_dir)
    dataset = _load_dataset_for(baseline, data_dir)
    model = load_baseline(baseline.model)
    if getattr(model, "kind", "ranking") != "ranking":
        raise RecalignError(
            f"{run_dir} holds the rating baseline {model.name!r}, which predicts ratings of "
            "known users only; serve a ranking baseline (pop, bprmf, sasrec) or an LLM run"
        )
    if getattr(model, "num_items", dataset.num_items) != dataset.num_items:
        raise IncompatibleArtifactError(
            f"{run_dir} was fitted on {model.num_items} items but {dataset.path} has "
            f"{dataset.num_items}; serve it with the prepared dataset it was fitted on"
        )
    backend: Backend = BaselineBackend(model, str(model.name))
    return Recommender(
        backend,
        ItemCatalog.from_dataset(dataset),
        info={"run_dir": str(run_dir), "dataset": dataset.name},
    )


def _load_llm_run(run_dir: Path, data_dir, device) -> Recommender:
    from recalign.serving.llm_backend import LLMBackend

    run = RunDir.open(run_dir)
    dataset = _load_dataset_for(run, data_dir)
    if not run.finished:
        raise RecalignError(
            f"{run_dir} has no trained model (status {run.manifest.status!r}): the run did "
            "not finish; train it again or resume it"
        )
    backend = LLMBackend.from_run(run, dataset, device=device)
    return Recommender(
        backend,
        ItemCatalog.from_dataset(dataset),
        info={"run_dir": str(run_dir), "dataset": dataset.name, "family": backend.family},
    )


Loader = Callable[[Path, "str | Path | None", "str | None"], Recommender]
LOADERS: dict[str, Loader] = {
    "dataset": _load_dataset_dir,
    "baseline": _load_baseline_run,
    "run": _load_llm_run,
}
