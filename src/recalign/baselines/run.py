"""One baseline, end to end: fit on a prepared dataset, evaluate a split, write outputs.

OUT/model/              the fitted model (model.json + weights), loadable by name
OUT/predictions.jsonl   per-user predictions (shared format)
OUT/metrics.json        metrics, bootstrap intervals, exclude_history, fit report
OUT/config.yaml         the resolved config
OUT/manifest.json       a `BaselineManifest`: config, versions, git revision, the
                        dataset's content hash, the sha256 of every file (written last)

The directory is written whole, in a temporary sibling renamed into place.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from recalign.artifacts import BaselineManifest, staged_output
from recalign.baselines.evaluate import (
    DEFAULT_K,
    evaluate_ranking,
    evaluate_rating,
    make_valid_fn,
    write_results,
)
from recalign.baselines.registry import create_baseline, get_spec
from recalign.constants import CONFIG_FILE
from recalign.data.store import PreparedDataset, load_prepared
from recalign.errors import RecalignError
from recalign.manifest import config_hash
from recalign.ranking import FULL_RANKING, RATING_PROTOCOL, get_protocol

logger = logging.getLogger(__name__)

MODEL_DIR = "model"


def run_baseline(
    name: str,
    data: str | Path | PreparedDataset,
    out_dir: str | Path,
    *,
    split: str = "test",
    exclude_history: bool = True,
    k: int = DEFAULT_K,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit baseline `name` (early-stopped on valid), evaluate `split`, write OUT; return
    the metrics.json payload."""
    import yaml

    dataset = data if isinstance(data, PreparedDataset) else load_prepared(data)
    spec = get_spec(name)
    model = create_baseline(name, overrides)
    if spec.kind == "rating" and not dataset.has_ratings:
        raise RecalignError(
            f"{name} is a rating baseline and dataset {dataset.name!r} has no ratings; "
            "use a ranking baseline (pop, bprmf, sasrec, sasrec-ce)"
        )
    out = Path(out_dir)
    valid_fn = (
        make_valid_fn(dataset, exclude_history=exclude_history) if spec.kind == "ranking" else None
    )
    with staged_output(out, BaselineManifest) as staging:
        logger.info("fitting %s on %s", name, dataset.name)
        report = model.fit(dataset, valid_fn=valid_fn)
        model.save(staging.path / MODEL_DIR)
        start = time.perf_counter()
        if spec.kind == "ranking":
            predictions, _ = evaluate_ranking(
                model, dataset, split=split, k=k, exclude_history=exclude_history
            )
            protocol = get_protocol(FULL_RANKING)
        else:
            predictions, _ = evaluate_rating(model, dataset, split=split)
            protocol = get_protocol(RATING_PROTOCOL)
        eval_seconds = time.perf_counter() - start
        config = {"baseline": name, "split": split, "k": k, **model.config.model_dump()}
        (staging.path / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=True))
        metrics = write_results(
            staging.path,
            predictions,
            protocol=protocol.name,
            split=split,
            model=name,
            exclude_history=protocol.recorded_history(exclude_history),
            cold_items=dataset.cold_items,
            extra={
                "fit": report.to_dict(),
                "eval_seconds": round(eval_seconds, 3),
                "data_hash": dataset.data_hash,
                "config": config,
            },
        )
        record = dataset.record_for(out)
        staging.commit(
            BaselineManifest(
                name=name,
                config=config,
                config_hash=config_hash(config),
                dataset=dataset.name,
                inputs={} if record is None else {"dataset": record},
            )
        )
    return metrics
