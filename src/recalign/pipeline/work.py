"""What each stage of `recalign run` is about to do: in words, and in units of work.

The units are what a stage's time grows with (see `eta.py`), counted from the config
and from the files the earlier stages wrote; nothing here runs a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from recalign.pipeline.config import RunConfig
from recalign.pipeline.eta import Work
from recalign.ranking import get_protocol

# A forward pass (validation loss) costs about a third of a training step per sample.
FORWARD_SHARE = 1 / 3


def _stats(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "stats.json").read_text())
    except (OSError, ValueError):
        return {}


def _mean_length(
    samples_dir: Path, split: str, task: str | None = None, caps: tuple[int, int] | None = None
) -> float:
    """Mean words of prompt + answer in a samples split, each side cut at `caps` (the
    token limits training applies; a word is at least one token); 0 when unreadable."""
    import polars as pl

    path = samples_dir / f"{split}.parquet"
    if not path.is_file():
        return 0.0
    frame = pl.scan_parquet(path)
    if task is not None:
        frame = frame.filter(pl.col("task") == task)
    words = [pl.col(c).str.count_matches(" ") + 1 for c in ("input", "target")]
    if caps is not None:
        words = [w.clip(upper_bound=cap) for w, cap in zip(words, caps, strict=True)]
    value = frame.select((words[0] + words[1]).mean()).collect()
    mean = value.item() if value.height else None
    return float(mean or 0.0)


def _counts(samples_dir: Path) -> dict:
    from recalign.artifacts import SamplesManifest, read_manifest
    from recalign.errors import RecalignError

    try:
        return dict(read_manifest(samples_dir, SamplesManifest).totals)
    except RecalignError:
        return {}


def data_work(config: RunConfig) -> Work:
    options = config.data.options
    if config.data.name == "synthetic":
        users, items = int(options.get("users", 2000)), int(options.get("items", 500))
        return Work(
            "data:synthetic",
            users,
            f"generate the synthetic shop ({users:,} users x {items:,} items)",
            probe="python",
        )
    # A real dataset's size is known only once it is read: one unit per preparation.
    return Work(f"data:{config.data.name}", 1, f"prepare {config.data.name}", probe="python")


def samples_work(config: RunConfig, data_dir: Path, preset: str) -> Work:
    from recalign.samples.mixture import PRESETS

    interactions = _stats(data_dir).get("interactions", 0)
    tasks = PRESETS.get(preset, ())
    return Work(
        "samples",
        interactions * len(tasks),
        f"write the {preset} mixture's samples ({len(tasks)} tasks, "
        f"history of at most {config.samples.max_history} items)",
        probe="python",
    )


def train_work(config: RunConfig, samples_dir: Path, preset: str) -> Work:
    from recalign.training.config import eval_sample_limit

    cfg = config.training.for_run(config.seed)
    counts = _counts(samples_dir)
    available = counts.get("train", 0)
    if cfg.max_train_samples is not None:
        available = min(available, cfg.max_train_samples)
    per_step = cfg.batch_size * cfg.grad_accum
    steps = cfg.max_steps or int(cfg.epochs * available / max(1, per_step))
    length = _mean_length(samples_dir, "train", caps=(cfg.max_source_length, cfg.max_target_length))
    valid = min(counts.get("valid", 0), eval_sample_limit(cfg) or counts.get("valid", 0))
    evaluations = steps // cfg.eval_steps if cfg.eval_steps else 0
    units = length * (steps * per_step + FORWARD_SHARE * evaluations * valid)
    return Work(
        f"train:{config.model.spec}",
        units,
        f"train {config.model.spec} on {preset} for {steps:,} steps of {per_step} samples"
        f" ({evaluations} validation pass{'es' if evaluations != 1 else ''} of {valid:,})",
    )


def eval_users(config: RunConfig, data_dir: Path) -> int:
    users = _stats(data_dir).get("users", 0)
    limit = config.evaluation.max_users
    return min(users, limit) if limit else users


_PROTOCOL_WORDS = {
    "retrieval": "rank the whole catalogue by constrained beam search ({beams} beams)",
    "ranking": "rank the prompt's candidates by likelihood",
    "sampled": "score 1 + 99 sampled candidates",
    "rating": "predict ratings",
}


def eval_work(config: RunConfig, data_dir: Path, samples_dir: Path, protocol: str) -> Work:
    users = eval_users(config, data_dir)
    # The prompts of the task the protocol reads (sampled scores under the retrieval one).
    length = _mean_length(samples_dir, "test", get_protocol(protocol).task)
    words = _PROTOCOL_WORDS[protocol].format(beams=config.evaluation.num_beams)
    return Work(
        f"eval-{protocol}:{config.model.spec}",
        users * max(length, 1.0),
        f"{words} for {users:,} {config.evaluation.split} users",
    )


def baseline_work(config: RunConfig, data_dir: Path, name: str) -> Work:
    from recalign.baselines.registry import create_baseline

    interactions = _stats(data_dir).get("interactions", 0)
    model = create_baseline(name, config.baselines.options_for(name, config.seed))
    epochs = getattr(model.config, "epochs", 1)
    budget = f" (at most {epochs} epochs)" if epochs > 1 else ""
    return Work(
        f"baseline-{name}",
        interactions * epochs,
        f"fit {name}{budget} and rank every user",
    )
