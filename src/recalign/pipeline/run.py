"""`recalign run`: prepare -> samples -> train -> evaluate -> baselines -> report.

Every stage writes its own sub-directory of the run directory and is cached by a hash
of its configuration and of the stages it reads (see `cache.py`), so a re-run after a
change to the evaluation only re-evaluates. A failing stage leaves the earlier stages'
caches intact; the error says which stage failed and that re-running resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recalign.constants import CONFIG_FILE
from recalign.errors import RecalignError
from recalign.manifest import build_manifest, write_manifest
from recalign.pipeline import stages
from recalign.pipeline.cache import StageResult, run_stage, stage_key
from recalign.pipeline.config import RunConfig

log = logging.getLogger(__name__)


class StageFailed(RecalignError):
    """A pipeline stage failed; earlier stages stay cached."""


@dataclass
class PipelineResult:
    run_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    report: Path | None = None

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)


def _announce(callback: Callable[[str], None] | None, message: str) -> None:
    log.info(message)
    if callback:
        callback(message)


def run_pipeline(
    config: RunConfig,
    run_dir: str | Path,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run every stage of `config` into `run_dir`, reusing what is up to date."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.model_dump(mode="json")
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved, sort_keys=False))
    result = PipelineResult(run_dir)
    keys: dict[str, str] = {}

    def step(name: str, directory: Path, stage_config: dict[str, Any], upstream: list[str], fn):
        key = stage_key(name, stage_config, {u: keys[u] for u in upstream})
        _announce(on_stage, f"stage {name}")
        try:
            outcome = run_stage(name, directory, key, fn)
        except RecalignError as error:
            raise StageFailed(
                f"stage {name!r} failed: {error}\nEarlier stages are cached in {run_dir}; "
                "fix the cause and run the same command again to resume."
            ) from error
        keys[name] = key
        result.stages.append(outcome)
        if outcome.reused:
            _announce(on_stage, f"stage {name}: up to date (reused)")
        return outcome

    data_cfg = resolved["data"] | {"seed": config.seed}
    data = step(
        "data", run_dir / "data", data_cfg, [], lambda d, _resume: stages.prepare(config, d)
    )
    # `workers` changes how fast the samples are made, not what they are: not in the key.
    samples_cfg = {k: v for k, v in resolved["samples"].items() if k != "workers"} | {
        "seed": config.seed,
        "model": resolved["model"],
    }
    step(
        "samples",
        run_dir / "samples",
        samples_cfg,
        ["data"],
        lambda d, _resume: stages.samples(config, data.directory, d),
    )
    train_cfg = {"model": resolved["model"], "training": resolved["training"], "seed": config.seed}
    train = step(
        "train",
        run_dir / "train",
        train_cfg,
        ["samples"],
        lambda d, resume: stages.train(config, data.directory, run_dir / "samples", d, resume),
    )
    for protocol in stages.supported_protocols(config, data.directory):
        eval_cfg = resolved["evaluation"] | {"protocol": protocol, "seed": config.seed}
        eval_cfg.pop("protocols")
        step(
            f"eval-{protocol}",
            run_dir / "eval" / protocol,
            eval_cfg,
            ["train"],
            lambda d, _resume, p=protocol: stages.evaluate(
                config, data.directory, train.directory, p, d
            ),
        )
    for name in config.baselines.models:
        base_cfg = {
            "name": name,
            "options": resolved["baselines"]["options"].get(name, {}),
            "evaluation": resolved["evaluation"],
            "seed": config.seed,
        }
        step(
            f"baseline-{name}",
            run_dir / "baselines" / name,
            base_cfg,
            ["data"],
            lambda d, _resume, n=name: stages.baseline(config, data.directory, n, d),
        )
    write_manifest(
        run_dir,
        build_manifest(
            "pipeline",
            name=config.name,
            config=resolved,
            stages={s.name: {"key": s.key, "reused": s.reused} for s in result.stages},
        ),
    )
    if config.report:
        from recalign.report import build_report

        _announce(on_stage, "stage report")
        result.report = build_report(run_dir)[0]
    return result
