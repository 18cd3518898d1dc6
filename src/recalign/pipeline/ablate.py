"""`recalign ablate`: the same pipeline under several task mixtures (and seeds).

Each variant is a full run directory under `ROOT/<preset>/seed-<s>/` with the same data,
model, training budget and evaluation; the baselines run once, in `ROOT/baselines`. The
table compares every variant with the first preset (the reference, normally `rec-only`)
through a paired bootstrap over the same test users, so an interval that excludes zero
means the difference is not resampling noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recalign.constants import PREDICTIONS_FILE, hit_at, ndcg_at
from recalign.errors import ConfigError
from recalign.evaluation.metrics import paired_difference
from recalign.manifest import write_json
from recalign.pipeline.config import RunConfig, checked
from recalign.pipeline.run import run_pipeline

log = logging.getLogger(__name__)

ABLATION_KEYS = (ndcg_at(10), hit_at(10))


def _per_user(predictions: Path) -> dict[int, dict[str, float]]:
    from recalign.evaluation.metrics import per_user_ranking_metrics, target_ranks
    from recalign.evaluation.outputs import read_predictions

    records = read_predictions(predictions)
    ranks = target_ranks([r["ranked"] for r in records], [r["target"] for r in records])
    metrics = per_user_ranking_metrics(ranks)
    return {
        r["user_id"]: {key: float(metrics[key][i]) for key in ABLATION_KEYS}
        for i, r in enumerate(records)
    }


def _mean(per_user: dict[int, dict[str, float]], key: str) -> float:
    return float(np.mean([v[key] for v in per_user.values()])) if per_user else float("nan")


def _variant(config: RunConfig, preset: str, seed: int) -> RunConfig:
    """`config` trained on `preset` with `seed`, evaluated on retrieval only, validated."""
    variant = config.model_copy(deep=True)
    variant.samples.preset = preset
    variant.seed = seed
    variant.baselines.models = []
    variant.compare = []  # the ablation is the comparison
    variant.evaluation.protocols = ["retrieval"]
    variant.report = False
    return checked(variant)


def run_ablation(
    config: RunConfig,
    root: str | Path,
    presets: Sequence[str],
    seeds: Sequence[int] = (0,),
    *,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    if not presets:
        raise ConfigError("--presets needs at least one preset")
    root = Path(root)
    # Every variant is checked before the first one runs: a typo in the third preset
    # must not surface after two trainings.
    planned = {
        (preset, seed): _variant(config, preset, seed) for preset in presets for seed in seeds
    }
    variants: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
    for (preset, seed), variant in planned.items():
        run_dir = root / preset / f"seed-{seed}"
        if on_stage:
            on_stage(f"variant {preset} (seed {seed})")
        run_pipeline(variant, run_dir, on_stage=on_stage)
        variants[(preset, seed)] = _per_user(run_dir / "eval" / "retrieval" / PREDICTIONS_FILE)
    reference = presets[0]
    header = [
        "preset",
        "seed",
        *ABLATION_KEYS,
        *[f"Δ{key} vs {reference} [95% CI]" for key in ABLATION_KEYS],
    ]
    rows = []
    for (preset, seed), per_user in variants.items():
        row = [preset, str(seed), *[f"{_mean(per_user, k):.4f}" for k in ABLATION_KEYS]]
        for key in ABLATION_KEYS:
            if preset == reference:
                row.append("–")
                continue
            mean, low, high = paired_difference(
                per_user, variants[(reference, seed)], key, seed=seed
            )
            row.append(f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]")
        rows.append(row)
    table = {
        "header": header,
        "rows": rows,
        "note": (
            f"Retrieval (full ranking) on the {config.evaluation.split} split; every variant "
            f"trained under the same budget ({config.training.model_dump(exclude_defaults=True)}"
            "). Differences are paired "
            "over the same users, with 95% bootstrap intervals."
        ),
        "presets": list(presets),
        "seeds": list(seeds),
    }
    write_json(root / "ablation.json", table)
    return table
