"""Evaluate a trained language model (a run directory) under one protocol.

    retrieval  constrained beam search over the whole catalogue -> top-K items
    ranking    the ranking prompt's K candidates ranked by answer log-likelihood
    sampled    1 + 99: the target and 99 seeded unseen items, scored under the
               retrieval prompt (P5-style; reported separately from full ranking)
    rating     expected rating from the probabilities of the answers "1".."5"

The evaluator builds the evaluation prompts with `recalign.samples.evaluation`, runs the
protocol through `recalign.inference`, and writes `predictions.jsonl` + `metrics.json`
through `recalign.evaluation.outputs` — the same files the baselines write.
Users can be split into shards (`shard`, `num_shards`) whose outputs merge exactly.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.constants import ITEM_ID, MANIFEST_FILE, TEXT, USER_ID
from recalign.errors import ConfigError, IncompatibleArtifactError, RecalignError

logger = logging.getLogger(__name__)

# Which evaluation prompts each protocol uses.
PROTOCOL_TASK = {
    "retrieval": "retrieval",
    "ranking": "ranking",
    "sampled": "retrieval",
    "rating": "rating",
}
_SAMPLED_STREAM = 0x5A3  # salt of the sampled-candidates rng, independent of other streams


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate; every field is recorded in `metrics.json` (`options`)."""

    protocol: str = "retrieval"
    split: str = "test"
    max_users: int | None = None
    template: str = "default"
    exclude_history: bool = True
    k: int = 20
    num_beams: int = 20
    batch_size: int = 16
    decoder: str = "fast"  # "fast" or "reference" (generate + prefix_allowed_tokens_fn)
    length_penalty: float = 0.0
    num_candidates: int = 20  # ranking prompt
    num_negatives: int = 99  # sampled protocol
    length_normalize: bool = False
    greedy_rating: bool = False
    seed: int = 0
    shard: int | None = None
    num_shards: int | None = None
    which: str = "best"
    n_boot: int = 1000

    def validate(self) -> None:
        if self.protocol not in PROTOCOL_TASK:
            raise ConfigError(
                f"unknown protocol {self.protocol!r}; expected one of {', '.join(PROTOCOL_TASK)}"
            )
        if self.split not in ("test", "valid"):
            raise ConfigError(f"split must be 'test' or 'valid', got {self.split!r}")
        if self.max_users is not None and self.max_users < 1:
            raise ConfigError(f"--max-users must be at least 1, got {self.max_users}")
        if self.decoder not in ("fast", "reference"):
            raise ConfigError(f"decoder must be 'fast' or 'reference', got {self.decoder!r}")
        if self.num_negatives < 1:
            raise ConfigError(f"the sampled protocol needs >= 1 negative, got {self.num_negatives}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")


def _samples_manifest(
    run_dir: Path, manifest: dict[str, Any]
) -> tuple[dict[str, Any], Path | None]:
    """The manifest of the samples the run was trained on, and their directory."""
    samples_dir = manifest.get("samples_dir")
    if not isinstance(samples_dir, str):
        return {}, None
    path = Path(samples_dir)
    path = path if path.is_absolute() else run_dir / path
    try:
        return json.loads((path / MANIFEST_FILE).read_text()), path
    except (OSError, json.JSONDecodeError):
        logger.warning("cannot read the samples manifest of %s at %s", run_dir, path)
        return {}, None


def check_catalogue(
    trained: pl.DataFrame | None, current: dict[int, str], *, data_hash_trained: Any, data_hash: Any
) -> None:
    """Refuse a dataset whose catalogue differs from the one the model was trained on.

    `trained` is the samples' `item_texts.parquet` (item_id, text); without it, the
    dataset hashes are compared instead.
    """
    if trained is None:
        if data_hash_trained and data_hash and data_hash_trained != data_hash:
            raise IncompatibleArtifactError(
                f"the dataset (data_hash {str(data_hash)[:12]}) is not the one the run was "
                f"trained on (data_hash {str(data_hash_trained)[:12]}), and the run's item "
                "catalogue cannot be read to compare: evaluate on the dataset the run used"
            )
        return
    old = dict(
        zip(trained.get_column(ITEM_ID).to_list(), trained.get_column(TEXT).to_list(), strict=True)
    )
    problems = []
    for item in sorted(set(old) | set(current)):
        if item not in current:
            problems.append(f"item {item} ({old[item]!r}) is missing from the dataset")
        elif item not in old:
            problems.append(f"item {item} ({current[item]!r}) is new (the model never saw it)")
        elif old[item] != current[item]:
            problems.append(f"item {item} is {current[item]!r} here but {old[item]!r} in training")
        if len(problems) >= 5:
            break
    if problems:
        total = len(set(old) ^ set(current)) + sum(
            1 for i in set(old) & set(current) if old[i] != current[i]
        )
        raise IncompatibleArtifactError(
            f"the dataset's catalogue differs from the one the model was trained on "
            f"({total} item(s)): " + "; ".join(problems)
        )


def _run_model_name(run_dir: Path, manifest: dict[str, Any]) -> str:
    spec = manifest.get("model") or {}
    source = spec.get("preset") or spec.get("source")
    return f"{run_dir.name}:{Path(str(source)).name}" if source else run_dir.name


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    device: str | None = None,
    show_progress: bool = False,
) -> dict:
    """Evaluate the model of `run_dir` on `data_dir`; write `out_dir`; return metrics.json."""
    from recalign.data.store import load_prepared
    from recalign.evaluation.outputs import write_evaluation
    from recalign.manifest import read_manifest
    from recalign.models.loading import load_run_model
    from recalign.samples.evaluation import build_eval_samples
    from recalign.samples.generate import ITEM_TEXTS_FILE, shard_users
    from recalign.samples.representation import item_representations

    options = options or EvalOptions()
    options.validate()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RecalignError(f"{run_dir} is not a directory (expected a training run directory)")
    manifest = read_manifest(run_dir)
    if manifest.get("kind") != "run":
        raise RecalignError(
            f"{run_dir} is not a training run directory (its manifest is of kind "
            f"{manifest.get('kind')!r}); pass the directory `recalign train --out` wrote"
        )
    if not (run_dir / "model").is_dir() and options.which == "best":
        raise RecalignError(
            f"{run_dir} has no trained model ({run_dir / 'model'} is missing): the run has not "
            "finished; train it (or resume it), or evaluate its latest checkpoint with which='last'"
        )
    dataset = load_prepared(data_dir)
    samples_manifest, samples_dir = _samples_manifest(run_dir, manifest)
    item_repr = manifest.get("item_repr") or samples_manifest.get("item_repr") or "title"
    id_seed = int(samples_manifest.get("id_seed") or 0)
    max_history = int(samples_manifest.get("max_history") or 20)
    reprs = item_representations(dataset.item_texts, item_repr, seed=id_seed)
    item_ids = dataset.items.get_column(ITEM_ID).to_list()
    trained_items = None
    if samples_dir is not None and (samples_dir / ITEM_TEXTS_FILE).is_file():
        trained_items = pl.read_parquet(samples_dir / ITEM_TEXTS_FILE)
    check_catalogue(
        trained_items,
        {i: reprs[i] for i in item_ids},
        data_hash_trained=manifest.get("data_hash"),
        data_hash=dataset.data_hash,
    )
    if options.protocol == "retrieval" and options.k > len(item_ids):
        raise ConfigError(
            f"K = {options.k} is above the catalogue size ({len(item_ids)} items): "
            "ask for at most as many items as the catalogue has"
        )

    task = PROTOCOL_TASK[options.protocol]
    samples = build_eval_samples(
        dataset,
        task,
        options.split,
        template=options.template,
        max_users=options.max_users,
        num_candidates=options.num_candidates,
        item_repr=item_repr,
        max_history=max_history,
        seed=options.seed,
        id_seed=id_seed,
    )
    samples = samples[
        shard_users(samples.get_column(USER_ID).to_numpy(), options.shard, options.num_shards)
    ]
    if samples.height == 0:
        raise RecalignError("no users to evaluate in this shard (fewer users than shards?)")

    loaded = load_run_model(run_dir, which=options.which, device=device)
    started = time.perf_counter()
    bar = _progress(samples.height, show_progress, options.protocol)
    try:
        predictions = PROTOCOLS[options.protocol](
            loaded, dataset, samples, reprs, item_ids, options, bar.update
        )
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    extra = {
        "options": {k: v for k, v in asdict(options).items() if k not in ("shard", "num_shards")},
        "run_dir": str(run_dir),
        "dataset": dataset.name,
        "data_hash": dataset.data_hash,
        "item_repr": item_repr,
        "family": loaded.family,
        "shard": options.shard,
        "num_shards": options.num_shards,
        "seconds": round(seconds, 3),
        "users_per_second": round(samples.height / seconds, 3) if seconds > 0 else None,
    }
    return write_evaluation(
        out_dir,
        predictions,
        protocol=options.protocol,
        split=options.split,
        model=_run_model_name(run_dir, manifest),
        exclude_history=_history_rule(options),
        template=str(samples.get_column("template")[0]),
        extra=extra,
        n_boot=options.n_boot,
        seed=options.seed,
    )


def _history_rule(options: EvalOptions) -> bool | None:
    """What `exclude_history` means per protocol: banned in the search for retrieval;
    ranking and sampled candidates are unseen items by construction; rating ranks nothing."""
    if options.protocol == "retrieval":
        return options.exclude_history
    return None if options.protocol == "rating" else True


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool, label: str) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    # tqdm shows users/s and the ETA from the update rate.
    return tqdm(total=total, unit="user", desc=label, dynamic_ncols=True, smoothing=0.1)


# --- protocols -------------------------------------------------------------------------
def _prompts(loaded: Any, samples: pl.DataFrame) -> list[list[int]]:
    """Prompt ids fitted to the budget the run was trained with (whole history items go)."""
    from recalign.models.tokenization import fit_prompts, run_max_source_length

    fitted = fit_prompts(
        loaded.tokenizer,
        loaded.family,
        samples.get_column("input").to_list(),
        samples.get_column("history_bounds").to_list(),
        run_max_source_length(loaded.spec.get("run_dir")),
    )
    logger.info("prompts fitted to the run's budget: %s", fitted.summary())
    return fitted.ids


def _retrieval(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    from recalign.inference.reference import reference_retrieval
    from recalign.inference.retrieval import constrained_retrieval
    from recalign.inference.trie import item_trie_for

    trie = item_trie_for(loaded.tokenizer, loaded.family, item_ids, [reprs[i] for i in item_ids])
    banned = samples.get_column("full_history").to_list() if options.exclude_history else None
    search = constrained_retrieval if options.decoder == "fast" else reference_retrieval
    found = search(
        loaded.model,
        loaded.tokenizer,
        loaded.family,
        trie,
        _prompts(loaded, samples),
        banned,
        k=options.k,
        num_beams=max(options.num_beams, options.k),
        batch_size=options.batch_size,
        length_penalty=options.length_penalty,
        progress=progress,
    )
    return [
        {"user_id": int(u), "target": int(t), "ranked": r.items, "scores": r.scores}
        for u, t, r in zip(
            samples.get_column(USER_ID), samples.get_column("target_item"), found, strict=True
        )
    ]


def _score_lists(
    loaded, prompts, candidate_lists, reprs, options, progress
) -> list[tuple[list[int], list[float]]]:
    from recalign.inference.scoring import rank_by_score, score_candidates
    from recalign.models.tokenization import encode_answer

    out = []
    for prompt, cands in zip(prompts, candidate_lists, strict=True):
        answers = [encode_answer(loaded.tokenizer, loaded.family, reprs[c]) for c in cands]
        scores = score_candidates(
            loaded.model,
            loaded.tokenizer,
            loaded.family,
            prompt,
            answers,
            length_normalize=options.length_normalize,
        )
        out.append(rank_by_score(cands, scores))
        progress(1)
    return out


def _ranking(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    ranked = _score_lists(
        loaded,
        _prompts(loaded, samples),
        samples.get_column("candidates").to_list(),
        reprs,
        options,
        progress,
    )
    return [
        {"user_id": int(u), "target": int(t), "ranked": items, "scores": scores}
        for u, t, (items, scores) in zip(
            samples.get_column(USER_ID), samples.get_column("target_item"), ranked, strict=True
        )
    ]


def sampled_candidate_lists(
    samples: pl.DataFrame, user_items: dict[int, list[int]], num_items: int, n: int, seed: int
) -> list[list[int]]:
    """Target + `n` unseen negatives per user, seeded by (seed, user), in shuffled order.

    Shuffled so that ties in score do not favour the target's position.
    """
    from recalign.evaluation.protocols import sampled_candidates

    lists = []
    for user, target in zip(
        samples.get_column(USER_ID), samples.get_column("target_item"), strict=True
    ):
        rng = np.random.default_rng([seed, _SAMPLED_STREAM, int(user)])
        cands = sampled_candidates(user_items[int(user)], int(target), num_items, n, rng)
        lists.append([int(c) for c in rng.permutation(cands)])
    return lists


def _sampled(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    users = set(samples.get_column(USER_ID).to_list())
    seqs = dataset.sequences.filter(pl.col(USER_ID).is_in(list(users)))
    user_items = dict(
        zip(seqs.get_column(USER_ID).to_list(), seqs.get_column("items").to_list(), strict=True)
    )
    lists = sampled_candidate_lists(
        samples, user_items, max(item_ids), options.num_negatives, options.seed
    )
    ranked = _score_lists(loaded, _prompts(loaded, samples), lists, reprs, options, progress)
    return [
        {"user_id": int(u), "target": int(t), "ranked": items, "scores": scores}
        for u, t, (items, scores) in zip(
            samples.get_column(USER_ID), samples.get_column("target_item"), ranked, strict=True
        )
    ]


def _rating(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    from recalign.inference.scoring import predict_ratings

    predictions = predict_ratings(
        loaded.model,
        loaded.tokenizer,
        loaded.family,
        _prompts(loaded, samples),
        greedy=options.greedy_rating,
        progress=progress,
    )
    return [
        {"user_id": int(u), "item": int(i), "rating": float(r), "prediction": float(p)}
        for u, i, r, p in zip(
            samples.get_column(USER_ID),
            samples.get_column("item"),
            samples.get_column("target"),
            predictions,
            strict=True,
        )
    ]


PROTOCOLS = {"retrieval": _retrieval, "ranking": _ranking, "sampled": _sampled, "rating": _rating}
