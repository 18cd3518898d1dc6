"""Evaluate a language model under one protocol: fine-tuned (a run) or zero-shot.

What is evaluated (`evaluate` dispatches, `recalign.evaluation.targets` resolves):
`evaluate_run` a fine-tuned run (a training run or a `recalign run` directory) with the
prompt settings of its samples and a catalogue check; `evaluate_model` any model
zero-shot (a model directory, a `.gguf` file, a hub name, a tiny preset) with given or
default prompt settings; `evaluate_zero_shot` the base model of a run, before
fine-tuning, on the same users as the run's evaluation (the pipeline's zero-shot row).

    retrieval  constrained beam search over the whole catalogue -> top-K items
    ranking    the ranking prompt's K candidates ranked by answer log-likelihood
    sampled    1 + 99: the target and 99 seeded unseen items, scored under the
               retrieval prompt (P5-style; reported separately from full ranking)
    rating     expected rating from the probabilities of the answers "1".."5"

The protocols' names, prompts and history rule are `recalign.ranking`'s table; this
module only runs them on a language model.

The evaluator builds the evaluation prompts with `recalign.samples.evaluation`, runs the
protocol through `recalign.inference`, and writes `predictions.jsonl` + `metrics.json`
through `recalign.evaluation.outputs` — the same files the baselines write.
Users can be split into shards (`shard`, `num_shards`) whose outputs merge exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recalign.artifacts import InputRecord, PipelineDir, PromptSettings, RunDir, artifact_kind
from recalign.constants import ITEM_ID, MANIFEST_FILE, TARGET_ITEM, TEXT, USER_ID
from recalign.errors import ConfigError, IncompatibleArtifactError, RecalignError
from recalign.evaluation.options import EvalOptions
from recalign.fileio import read_parquet
from recalign.ranking import (
    CATALOGUE,
    banned_items,
    get_protocol,
    prediction_record,
)
from recalign.sharding import shard_users

logger = logging.getLogger(__name__)

_SAMPLED_STREAM = 0x5A3  # salt of the sampled-candidates rng, independent of other streams


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


def evaluate(
    target: str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    prompt: PromptSettings | None = None,
    tokenizer: str | Path | None = None,
    dtype: str | None = None,
    device: str | None = None,
    show_progress: bool = False,
) -> dict:
    """Evaluate whatever `target` names: a training run or a `recalign run` directory
    (fine-tuned), or a model evaluated zero-shot (see `recalign.evaluation.targets`).

    `prompt`, `tokenizer` and `dtype` apply to zero-shot models only: a run's prompts
    are the ones it was trained with. Returns the metrics.json dict.
    """
    from recalign.evaluation.targets import resolve_target

    resolved = resolve_target(target)
    if resolved.run_dir is not None:
        given = [
            name
            for name, value in (
                ("prompt settings (--samples, --max-history, --item-repr)", prompt),
                ("a tokenizer (--tokenizer)", tokenizer),
                ("a dtype (--dtype)", dtype),
            )
            if value is not None
        ]
        if given:
            raise ConfigError(
                f"{target} is a fine-tuned run, evaluated with the prompts, tokenizer and "
                f"weights it was trained with: {' and '.join(given)} are for evaluating a "
                "model zero-shot"
            )
        return evaluate_run(
            resolved.run_dir,
            data_dir if data_dir is not None else resolved.data_dir,
            out_dir,
            options,
            device=device,
            show_progress=show_progress,
        )
    if data_dir is None:
        raise ConfigError(
            f"evaluating the model {target} zero-shot needs a prepared dataset: pass --data"
        )
    return evaluate_model(
        str(resolved.spec),
        data_dir,
        out_dir,
        options,
        prompt=prompt,
        tokenizer=tokenizer,
        dtype=dtype,
        device=device,
        show_progress=show_progress,
    )


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    device: str | None = None,
    show_progress: bool = False,
) -> dict:
    """Evaluate the fine-tuned model of `run_dir` on `data_dir`; write `out_dir`.

    `run_dir` is a training run or a `recalign run` directory (its `train/` run).
    `data_dir` None: the pipeline's `data/`, else the dataset the run's manifests record.
    The prompts are built as the run's samples were (item representation, history
    length, id seed, templates), and a dataset whose catalogue differs from the one the
    model was trained on is refused. Returns the metrics.json dict.
    """
    from recalign.data.store import load_prepared
    from recalign.evaluation.targets import describe_run
    from recalign.models.loading import load_run_model

    options = options or EvalOptions()
    run = _open_run(run_dir, data_dir)
    run.run.weights(options.which)  # a run without that model fails before any work
    dataset = load_prepared(run.data_dir)
    catalogue = _Catalogue.of(dataset, run.prompt, options)
    _check_trained_catalogue(run.run, dataset, catalogue.texts())
    loaded = load_run_model(run.run.path, which=options.which, device=device)
    info = describe_run(run.run, options.which)
    return _run_protocol(
        loaded,
        catalogue,
        out_dir,
        options,
        info,
        extra={"run_dir": str(run.run.path)},
        inputs={"run": run.run.record_for(out_dir)},
        show_progress=show_progress,
    )


def _check_trained_catalogue(run: RunDir, dataset: Any, current: dict[int, str]) -> None:
    """A dataset other than the run's is taken only with the catalogue it was trained on
    (compared with its samples' item texts, when they can be found)."""
    from recalign.artifacts import SamplesDir

    if dataset.data_hash == run.manifest.data_hash:
        return
    trained = None
    samples = run.samples_dir()
    if samples is not None:
        trained = read_parquet(SamplesDir.open(samples).item_texts)
    check_catalogue(
        trained, current, data_hash_trained=run.manifest.data_hash, data_hash=dataset.data_hash
    )


def evaluate_model(
    spec: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    prompt: PromptSettings | None = None,
    tokenizer: str | Path | None = None,
    dtype: str | None = None,
    device: str | None = None,
    show_progress: bool = False,
    overrides: dict[str, Any] | None = None,
    facts: dict[str, Any] | None = None,
    inputs: dict[str, InputRecord] | None = None,
) -> dict:
    """Evaluate a model zero-shot (no fine-tuning) on `data_dir`; write `out_dir`.

    `spec` is anything `recalign.models.loading.load_model` takes: a model directory
    (imported GGUF, local HF checkpoint, LoRA adapter), a `.gguf` file, a hub name, or a
    tiny preset (random init, seeded by `options.seed`; its tokenizer from `tokenizer`,
    else trained on the dataset). `prompt` says how prompts are built — pass
    `SamplesDir.open(SAMPLES).prompt_settings()` to match a samples directory (e.g. the one
    a fine-tuned run of the same model trained on); default: the samples stage's
    defaults. With the same `options`, the users (and sampled candidates) are those a
    fine-tuned run's evaluation scores, so the two rows compare. `overrides` resize a
    tiny preset; `facts` override what `model_info` says about the model; `inputs` add
    to what the manifest records. Returns metrics.json.
    """
    from recalign.data.store import load_prepared
    from recalign.evaluation.targets import describe_model
    from recalign.models import TINY_PRESETS
    from recalign.models.loading import load_model

    options = options or EvalOptions()
    if options.which != "best":
        raise ConfigError(
            f"which={options.which!r} picks a checkpoint of a training run; {spec} is a model"
        )
    prompt = prompt or PromptSettings()
    dataset = load_prepared(data_dir)
    catalogue = _Catalogue.of(dataset, prompt, options)
    spec = str(spec)
    if spec in TINY_PRESETS:
        import torch

        torch.manual_seed(options.seed)  # the random init is part of what is evaluated
    loaded = load_model(
        spec,
        dataset=dataset,
        tokenizer_path=tokenizer,
        device=device,
        dtype=dtype,
        overrides=overrides,
    )
    loaded.model.eval()
    info = {**describe_model(spec, loaded.family), **(facts or {})}
    return _run_protocol(
        loaded,
        catalogue,
        out_dir,
        options,
        info,
        inputs={**_model_input(spec, out_dir), **(inputs or {})},
        show_progress=show_progress,
    )


def _model_input(spec: str, out_dir: str | Path) -> dict[str, InputRecord]:
    """A model directory `recalign models import` wrote is an input with a content hash."""
    from recalign.artifacts import ModelDir

    path = Path(spec).expanduser()
    if path.is_dir() and artifact_kind(path) == "model":
        return {"model": ModelDir.open(path).record_for(out_dir)}
    return {}


def evaluate_zero_shot(
    run_dir: str | Path,
    data_dir: str | Path | None,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    device: str | None = None,
    show_progress: bool = False,
) -> dict:
    """The zero-shot row of a fine-tuned run: its base model, before fine-tuning, with
    the run's prompt settings and tokenizer, on the same users as `evaluate_run` with the
    same `options`.

    The base is the run's model source (a model directory, file or hub name); for a tiny
    preset, the saved random-init base of a LoRA run (`RUN_DIR/base`), else a fresh
    random init of the same size with the run's tokenizer — a floor, not a pretrained
    model. Returns the metrics.json dict.
    """
    from dataclasses import replace

    from recalign.evaluation.targets import model_name
    from recalign.models import TINY_PRESETS
    from recalign.models.loading import recorded_model_source

    opened = _open_run(run_dir, data_dir)
    run = opened.run
    spec_info = run.manifest.model
    source = spec_info.get("source")
    if not isinstance(source, str) or not source:
        raise RecalignError(f"{run.path / MANIFEST_FILE} does not record the model it fine-tuned")
    tokenizer = spec_info.get("tokenizer_path")
    if tokenizer:
        tokenizer = recorded_model_source(run.path, str(tokenizer))
    overrides = None
    if source in TINY_PRESETS:
        spec = source
        overrides = spec_info.get("overrides") or None
        if run.base.is_dir():
            spec, tokenizer, overrides = str(run.base), None, None
        else:
            tokenizer = str(run.tokenizer)
    else:
        spec = recorded_model_source(run.path, source)
    # The base may be loaded from RUN_DIR/base, but it is the run's source that is evaluated.
    facts: dict[str, Any] = {"name": model_name(source), "source": source, "run_dir": str(run.path)}
    if source in TINY_PRESETS:
        facts.update(model_preset=source, random_init=True)
    return evaluate_model(
        spec,
        opened.data_dir,
        out_dir,
        options,
        # The run's prompts, not fitted to its budget: a zero-shot model is not.
        prompt=replace(opened.prompt, max_source_length=None),
        tokenizer=tokenizer,
        device=device,
        overrides=overrides,
        facts=facts,
        inputs={"run": run.record_for(out_dir)},
        show_progress=show_progress,
    )


@dataclass(frozen=True)
class _Run:
    """A training run opened for evaluation, with its inputs found."""

    run: RunDir
    prompt: PromptSettings
    data_dir: Path


def _open_run(target: str | Path, data_dir: str | Path | None) -> _Run:
    """A training run (or the `train/` run of a pipeline directory) and its dataset:
    `data_dir`, else the pipeline's `data/`, else the one the run recorded."""
    path = Path(target)
    if artifact_kind(path) == "pipeline":
        layout = PipelineDir(path)
        path, data_dir = layout.train(), data_dir or layout.data
    run = RunDir.open(path)
    return _Run(run, run.prompt_settings(), Path(data_dir) if data_dir else run.dataset_dir())


def _eval_samples(
    dataset: Any, prompt: PromptSettings, options: EvalOptions, num_items: int
) -> pl.DataFrame:
    """The evaluation prompts of this shard's users."""
    from recalign.samples.evaluation import build_eval_samples

    protocol = get_protocol(options.protocol)
    if protocol.ranks == CATALOGUE and options.k > num_items:
        raise ConfigError(
            f"K = {options.k} is above the catalogue size ({num_items} items): "
            "ask for at most as many items as the catalogue has"
        )
    if prompt.separator != PromptSettings().separator:
        logger.warning(
            "the samples joined history items with %r, but evaluation prompts join them "
            "with %r: the prompts differ from the training ones",
            prompt.separator,
            PromptSettings().separator,
        )
    samples = build_eval_samples(
        dataset,
        protocol.task,
        options.split,
        template=options.template,
        max_users=options.max_users,
        num_candidates=options.num_candidates,
        item_repr=prompt.item_repr,
        max_history=prompt.max_history,
        seed=options.seed,
        templates=prompt.load_templates(),
        id_seed=prompt.id_seed,
        codes=prompt.item_codes(num_items),
    )
    samples = samples[
        shard_users(samples.get_column(USER_ID).to_numpy(), options.shard, options.num_shards)
    ]
    if samples.height == 0:
        raise RecalignError("no users to evaluate in this shard (fewer users than shards?)")
    return samples


@dataclass(frozen=True)
class _Catalogue:
    """What a protocol runs over: the dataset, its evaluation users' samples, every item
    as the prompts show it, and the prompt settings all of them were built with."""

    dataset: Any
    samples: pl.DataFrame
    reprs: list[str]
    item_ids: list[int]
    prompt: PromptSettings

    @classmethod
    def of(cls, dataset: Any, prompt: PromptSettings, options: EvalOptions) -> _Catalogue:
        reprs = prompt.representations(dataset.item_texts)
        item_ids = dataset.items.get_column(ITEM_ID).to_list()
        samples = _eval_samples(dataset, prompt, options, len(item_ids))
        return cls(dataset, samples, reprs, item_ids, prompt)

    def texts(self) -> dict[int, str]:
        return {i: self.reprs[i] for i in self.item_ids}


def _run_protocol(
    loaded: Any,
    catalogue: _Catalogue,
    out_dir: str | Path,
    options: EvalOptions,
    info: dict[str, Any],
    *,
    inputs: dict[str, InputRecord],
    show_progress: bool,
    extra: dict[str, Any] | None = None,
) -> dict:
    """Run the protocol on the prepared users and write the evaluation directory of the
    model `info` describes (`recalign.evaluation.targets`)."""
    from recalign.evaluation.outputs import write_evaluation
    from recalign.evaluation.targets import model_label

    dataset, samples, prompt = catalogue.dataset, catalogue.samples, catalogue.prompt

    # Prompts are fitted to the budget asked for, else to the one the run trained with.
    budget = options.max_source_length or prompt.max_source_length
    options = options.model_copy(update={"max_source_length": budget})
    started = time.perf_counter()
    bar = _progress(samples.height, show_progress, options.protocol)
    try:
        predictions = _RUNNERS[options.protocol](
            loaded, dataset, samples, catalogue.reprs, catalogue.item_ids, options, bar.update
        )
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    extra = {
        "options": options.model_dump(exclude={"shard", "num_shards"}),
        "model_info": info,
        **(extra or {}),
        "prompt": prompt.to_dict(),
        "dataset": dataset.name,
        "data_hash": dataset.data_hash,
        "item_repr": prompt.item_repr,
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
        model=model_label(info),
        exclude_history=get_protocol(options.protocol).recorded_history(options.exclude_history),
        template=str(samples.get_column("template")[0]),
        extra=extra,
        n_boot=options.n_boot,
        seed=options.seed,
        cold_items=dataset.cold_items,
        inputs={**inputs, **_dataset_input(dataset, out_dir)},
    )


def _dataset_input(dataset: Any, out_dir: str | Path) -> dict[str, InputRecord]:
    record = dataset.record_for(out_dir)
    return {} if record is None else {"dataset": record}


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
def _prompts(loaded: Any, samples: pl.DataFrame, options: EvalOptions) -> list[list[int]]:
    """Prompt ids fitted to the budget (`options.max_source_length`; None: not fitted):
    whole history items go, never the instruction or the frame."""
    from recalign.models.tokenization import fit_prompts

    budget = options.max_source_length
    fitted = fit_prompts(
        loaded.tokenizer,
        loaded.family,
        samples.get_column("input").to_list(),
        samples.get_column("history_bounds").to_list(),
        budget,
    )
    if budget is not None:
        logger.info("prompts fitted to %d tokens: %s", budget, fitted.summary())
    return fitted.ids


def _retrieval(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    from recalign.inference.reference import reference_retrieval
    from recalign.inference.retrieval import constrained_retrieval
    from recalign.inference.trie import item_trie_for

    trie = item_trie_for(loaded.tokenizer, loaded.family, item_ids, [reprs[i] for i in item_ids])
    banned = banned_items(samples.get_column("full_history").to_list(), options.exclude_history)
    search = constrained_retrieval if options.decoder == "fast" else reference_retrieval
    found = search(
        loaded.model,
        loaded.tokenizer,
        loaded.family,
        trie,
        _prompts(loaded, samples, options),
        banned,
        k=options.k,
        num_beams=max(options.num_beams, options.k),
        batch_size=options.batch_size,
        length_penalty=options.length_penalty,
        progress=progress,
    )
    return _ranked_records(samples, [(r.items, r.scores) for r in found])


def _ranked_records(
    samples: pl.DataFrame, lists: list[tuple[list[int], list[float]]]
) -> list[dict]:
    """The prediction record of each user's ranked list (items and scores, best first)."""
    return [
        prediction_record(user, target, ranked=items, scores=scores)
        for user, target, (items, scores) in zip(
            samples.get_column(USER_ID), samples.get_column(TARGET_ITEM), lists, strict=True
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
        _prompts(loaded, samples, options),
        samples.get_column("candidates").to_list(),
        reprs,
        options,
        progress,
    )
    return _ranked_records(samples, ranked)


def sampled_candidate_lists(
    samples: pl.DataFrame, user_items: dict[int, list[int]], num_items: int, n: int, seed: int
) -> list[list[int]]:
    """Target + `n` unseen negatives per user, seeded by (seed, user), in shuffled order.

    Shuffled so that ties in score do not favour the target's position.
    """
    from recalign.evaluation.protocols import sampled_candidates

    lists = []
    for user, target in zip(
        samples.get_column(USER_ID), samples.get_column(TARGET_ITEM), strict=True
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
    ranked = _score_lists(
        loaded, _prompts(loaded, samples, options), lists, reprs, options, progress
    )
    return _ranked_records(samples, ranked)


def _rating(loaded, dataset, samples, reprs, item_ids, options, progress) -> list[dict]:
    from recalign.inference.scoring import predict_ratings

    predictions = predict_ratings(
        loaded.model,
        loaded.tokenizer,
        loaded.family,
        _prompts(loaded, samples, options),
        greedy=options.greedy_rating,
        progress=progress,
    )
    return [
        prediction_record(u, i, rating=r, prediction=p)
        for u, i, r, p in zip(
            samples.get_column(USER_ID),
            samples.get_column("item"),
            samples.get_column("target"),
            predictions,
            strict=True,
        )
    ]


# How each protocol of `recalign.ranking.PROTOCOLS` runs on a language model.
_RUNNERS = {"retrieval": _retrieval, "ranking": _ranking, "sampled": _sampled, "rating": _rating}
