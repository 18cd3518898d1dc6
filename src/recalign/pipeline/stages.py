"""Adapters from the pipeline's config to each stage's Python API.

Each function reads the previous stage's directory and writes its own; it returns a
small dict of facts for the stage record (and the terminal).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recalign.pipeline.config import RunConfig

log = logging.getLogger(__name__)


def prepare(config: RunConfig, out: Path) -> dict[str, Any]:
    from recalign.data.prepare import prepare_dataset

    dataset = prepare_dataset(
        config.data.name, out, source=config.data.source, **config.data.options
    )
    stats = dataset.stats()
    return {"users": stats["users"], "items": stats["items"], "interactions": stats["interactions"]}


def model_family(spec: str) -> str:
    """seq2seq or causal, from the preset name or the model's config (no weights read)."""
    if spec == "tiny-t5":
        return "seq2seq"
    if spec == "tiny-causal":
        return "causal"
    from transformers import AutoConfig

    from recalign.models.loading import family_of_config

    return family_of_config(AutoConfig.from_pretrained(spec))


def samples(config: RunConfig, data_dir: Path, out: Path) -> dict[str, Any]:
    from recalign.samples import generate_samples

    manifest = generate_samples(
        data_dir,
        out,
        preset=config.samples.preset,
        seed=config.seed,
        config=config.samples.mixture(),
        family=model_family(config.model.spec),
        workers=config.samples.workers,
    )
    return {"counts": manifest.totals}


def train(
    config: RunConfig, data_dir: Path, samples_dir: Path, out: Path, resume: bool
) -> dict[str, Any]:
    from recalign.errors import Interrupted
    from recalign.threads import configure_threads
    from recalign.training import train as train_model

    # Chosen per stage: the machine's load may have changed since the previous one.
    configure_threads()
    train_config = config.training.for_run(config.seed)
    # A stage interrupted after its first checkpoint continues from the newest one that
    # verifies; before the first (or with every checkpoint damaged) it starts over.
    resume = resume and _can_resume(out)
    if not resume:
        import shutil

        shutil.rmtree(out)
    result = train_model(
        data_dir,
        samples_dir,
        config.model.spec,
        out,
        config=train_config,
        resume=resume,
        tokenizer_path=config.model.tokenizer,
    )
    if result.interrupted:
        raise Interrupted(
            f"training stopped at step {result.steps} ({result.stop_signal}) with a checkpoint",
            resumable=True,
        )
    return {
        "steps": result.steps,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "train_seconds": round(result.train_seconds, 1),
    }


def _can_resume(out: Path) -> bool:
    from recalign.errors import RecalignError
    from recalign.training.checkpoints import resume_point

    try:
        return resume_point(out, move_aside=False) is not None
    except RecalignError as error:  # every checkpoint damaged: the stage is a cache
        log.warning("training starts over: %s", error)
        return False


def supported_protocols(config: RunConfig, data_dir: Path) -> list[str]:
    from recalign.data import load_prepared

    has_ratings = load_prepared(data_dir).has_ratings
    chosen = []
    for protocol in config.evaluation.protocols:
        if protocol == "rating" and not has_ratings:
            log.info("skipping the rating protocol: the dataset has no ratings")
            continue
        chosen.append(protocol)
    return chosen


def zero_shot_protocols(config: RunConfig, protocols: list[str]) -> list[str]:
    """The protocols the model before fine-tuning is evaluated on (see
    `EvaluationSection.zero_shot`): by default all of them for a pretrained model."""
    from recalign.models import TINY_PRESETS

    chosen = config.evaluation.zero_shot
    if chosen is None:
        return [] if config.model.spec in TINY_PRESETS else list(protocols)
    return [p for p in protocols if p in chosen]


def evaluate(
    config: RunConfig,
    data_dir: Path,
    run_dir: Path,
    protocol: str,
    out: Path,
    *,
    zero_shot: bool = False,
) -> dict[str, Any]:
    """One protocol on the fine-tuned model of `run_dir`, or (`zero_shot`) on the model
    it started from, with the same prompts, options and users."""
    from recalign.evaluation.llm import evaluate_run, evaluate_zero_shot
    from recalign.evaluation.options import EvalOptions
    from recalign.threads import configure_threads

    configure_threads()
    settings = config.evaluation.model_dump(exclude={"protocols", "zero_shot"})
    options = EvalOptions(**settings, protocol=protocol, seed=config.seed)
    evaluate_fn = evaluate_zero_shot if zero_shot else evaluate_run
    metrics = evaluate_fn(run_dir, data_dir, out, options, show_progress=True)
    return {"users": metrics.get("users"), "metrics": metrics.get("metrics", {})}


def baseline(config: RunConfig, data_dir: Path, name: str, out: Path) -> dict[str, Any]:
    from recalign.baselines.registry import get_spec
    from recalign.baselines.run import run_baseline
    from recalign.data import load_prepared
    from recalign.threads import configure_threads

    # Rating baselines predict ratings; they need a dataset with ratings.
    if get_spec(name).kind == "rating" and not load_prepared(data_dir).has_ratings:
        log.info("skipping baseline %s: the dataset has no ratings", name)
        return {"skipped": "the dataset has no ratings"}
    configure_threads()
    metrics = run_baseline(
        name,
        data_dir,
        out,
        split=config.evaluation.split,
        exclude_history=config.evaluation.exclude_history,
        k=config.evaluation.k,
        overrides=config.baselines.options_for(name, config.seed),
    )
    return {"metrics": metrics.get("metrics", {})}
