"""`recalign run`: prepare -> samples -> train -> evaluate -> baselines -> report.

Every stage writes its own sub-directory of the run directory (`PipelineDir` names
them) and is cached by a hash of its configuration and of the content hashes of what it
reads (see `cache.py`), so a re-run after a change to the evaluation only re-evaluates,
and a changed input file or a missing or altered output is redone with everything after
it. A failing stage leaves the earlier stages' caches intact; the error says which stage
failed and that re-running resumes. Ctrl-C or SIGTERM marks the running stage
interrupted (training first saves a checkpoint), and the same command continues it.
One `recalign run` at a time writes a run directory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recalign.artifacts import PipelineDir, PipelineManifest, StageRecord, output_lock, seal
from recalign.errors import Interrupted, RecalignError
from recalign.pipeline import stages, work
from recalign.pipeline.cache import (
    StageResult,
    freshness,
    mark_interrupted,
    run_stage,
    stage_key,
)
from recalign.pipeline.config import RunConfig, checked
from recalign.pipeline.eta import Work, announce, format_seconds

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


class _Stages:
    """Runs stages in order: cache look-up, an estimate before, the time after."""

    def __init__(self, run_dir: Path, on_stage: Callable[[str], None] | None) -> None:
        from recalign.pipeline.eta import StageClock

        self.run_dir = run_dir
        self.on_stage = on_stage
        self.hashes: dict[str, str | None] = {}  # stage -> content hash of its output
        self.result = PipelineResult(run_dir)
        self.clock = StageClock()

    def _before(self, name: str, planned: Work) -> tuple[dict[str, Any], float]:
        """Say what the stage will do and how long it should take; the probe's time."""
        if planned.probe == "torch":
            from recalign.threads import configure_threads

            configure_threads()  # the probe runs with the threads the stage will use
        estimate, probe = self.clock.estimate(planned)
        record = {"estimate_seconds": round(estimate.seconds, 1)} if estimate else {}
        _announce(self.on_stage, f"stage {name}: {announce(planned, estimate)}")
        return record, probe

    def _after(self, name: str, planned: Work, seconds: float, probe: float) -> None:
        self.clock.record(planned, seconds, probe)
        _announce(self.on_stage, f"stage {name} done in {format_seconds(seconds)}")

    def timed(self, name: str, planned: Work, fn: Callable[[], Any]) -> Any:
        """A step that is not cached (the report): estimate, run, time."""
        _, probe = self._before(name, planned)
        started = time.perf_counter()
        value = fn()
        self._after(name, planned, time.perf_counter() - started, probe)
        return value

    def step(
        self,
        name: str,
        directory: Path,
        stage_config: dict[str, Any],
        upstream: list[str],
        fn: Callable[[Path, bool], dict[str, Any] | None],
        work: Callable[[], Work],
    ) -> StageResult:
        key = stage_key(name, stage_config, {u: self.hashes[u] for u in upstream})
        record: dict[str, Any] = {}
        planned, probe = None, 0.0
        fresh = freshness(directory, key)
        if fresh.reason:
            _announce(self.on_stage, f"stage {name}: {fresh.reason}; doing it again")
        if not fresh.reuse:
            try:
                planned = work()
            except Exception as error:  # an estimate is advice: it never stops a run
                log.warning("no estimate for stage %s: %s", name, error)
                planned = Work(name, 0, name)
            record, probe = self._before(name, planned)
        try:
            outcome = run_stage(name, directory, key, fn, record=record, fresh=fresh)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM (see recalign.cli.signals)
            resumable = isinstance(stop, Interrupted) and stop.resumable
            mark_interrupted(name, directory, key, resumable=resumable)
            how = "resume it from its checkpoint" if resumable else "run it again"
            detail = f" ({stop})" if str(stop) else ""
            raise Interrupted(
                f"stage {name!r} interrupted{detail}.\nEarlier stages are cached in "
                f"{self.run_dir}; run the same command again to {how}.",
                resumable=resumable,
            ) from None
        except RecalignError as error:
            raise StageFailed(
                f"stage {name!r} failed: {error}\nEarlier stages are cached in {self.run_dir}; "
                "fix the cause and run the same command again to resume."
            ) from error
        self.hashes[name] = outcome.content_hash
        self.result.stages.append(outcome)
        if outcome.reused:
            _announce(self.on_stage, f"stage {name}: up to date (reused)")
        elif planned is not None and outcome.seconds is not None:
            self._after(name, planned, outcome.seconds, probe)
        return outcome


def run_pipeline(
    config: RunConfig,
    run_dir: str | Path,
    *,
    on_stage: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run every stage of `config` into `run_dir`, reusing what is up to date."""
    config = checked(config)  # the whole config is valid before any stage writes a file
    run_dir = Path(run_dir)
    with output_lock(run_dir):  # a second `recalign run` into it fails at once
        return _run_pipeline(config, run_dir, on_stage)


def _run_pipeline(
    config: RunConfig, run_dir: Path, on_stage: Callable[[str], None] | None
) -> PipelineResult:
    started = time.perf_counter()
    layout = PipelineDir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.model_dump(mode="json")
    layout.config_file.write_text(yaml.safe_dump(resolved, sort_keys=False))
    stages_ = _Stages(run_dir, on_stage)
    step = stages_.step

    data_cfg = resolved["data"] | {"seed": config.seed}
    data = step(
        "data",
        layout.data,
        data_cfg,
        [],
        lambda d, _resume: stages.prepare(config, d),
        lambda: work.data_work(config),
    )
    train = _train_variant(step, config, resolved, layout, "")
    protocols = stages.supported_protocols(config, data.directory)
    for protocol in protocols:
        _evaluate(step, config, resolved, layout, train.directory, protocol, "")
    for protocol in stages.zero_shot_protocols(config, protocols):
        _evaluate(step, config, resolved, layout, train.directory, protocol, ZERO_SHOT)
    for preset in config.compare:
        variant = config.model_copy(deep=True)
        variant.samples.preset = preset
        variant_resolved = variant.model_dump(mode="json")
        trained = _train_variant(step, variant, variant_resolved, layout, preset)
        _evaluate(step, variant, variant_resolved, layout, trained.directory, "retrieval", preset)
    for name in config.baselines.models:
        base_cfg = {
            "name": name,
            "options": resolved["baselines"]["options"].get(name, {}),
            # Only what a baseline's evaluation reads: LLM decoding settings, user samples
            # and zero-shot rows must not refit it.
            "evaluation": {k: resolved["evaluation"][k] for k in ("split", "exclude_history")},
            "seed": config.seed,
        }
        step(
            f"baseline-{name}",
            layout.baseline(name),
            base_cfg,
            ["data"],
            lambda d, _resume, n=name: stages.baseline(config, data.directory, n, d),
            lambda n=name: work.baseline_work(config, data.directory, n),
        )
    result = stages_.result
    seal(
        run_dir,
        PipelineManifest(
            name=config.name,
            config=resolved,
            stages={
                s.name: StageRecord(
                    directory=layout.relative(s.directory),
                    key=s.key,
                    reused=s.reused,
                    seconds=s.seconds,
                    content_hash=s.content_hash,
                    kind=s.kind,
                )
                for s in result.stages
            },
        ),
    )
    if config.report:
        from recalign.report import build_report

        result.report = stages_.timed(
            "report",
            Work("report", 1, "write report.md and report.html", probe="python"),
            lambda: build_report(run_dir)[0],
        )
    _announce(on_stage, f"run finished in {format_seconds(time.perf_counter() - started)}")
    return result


# The variant name of the model before fine-tuning: its rows live in eval/zero-shot/.
ZERO_SHOT = "zero-shot"


def _train_variant(
    step, config: RunConfig, resolved: dict, layout: PipelineDir, preset: str
) -> StageResult:
    """Samples and training of the main mixture (`preset` "") or of a compare preset,
    whose directories carry the preset's name: samples-rec-only/, train-rec-only/."""
    suffix = layout.suffix(preset)
    data_dir, samples_dir = layout.data, layout.samples(preset)
    # `workers` changes how fast the samples are made, not what they are: not in the key.
    samples_cfg = {k: v for k, v in resolved["samples"].items() if k != "workers"} | {
        "seed": config.seed,
        "model": resolved["model"],
    }
    step(
        f"samples{suffix}",
        samples_dir,
        samples_cfg,
        ["data"],
        lambda d, _resume: stages.samples(config, data_dir, d),
        lambda: work.samples_work(config, data_dir, config.samples.preset),
    )
    train_cfg = {"model": resolved["model"], "training": resolved["training"], "seed": config.seed}
    return step(
        f"train{suffix}",
        layout.train(preset),
        train_cfg,
        ["data", f"samples{suffix}"],
        lambda d, resume: stages.train(config, data_dir, samples_dir, d, resume),
        lambda: work.train_work(config, samples_dir, config.samples.preset),
    )


def _evaluate(
    step,
    config: RunConfig,
    resolved: dict,
    layout: PipelineDir,
    train_dir: Path,
    protocol: str,
    preset: str,
) -> StageResult:
    """One protocol on the main model (eval/<protocol>/), on a compare preset's
    (eval/<preset>/<protocol>/), or on the main model before fine-tuning
    (`preset` ZERO_SHOT: eval/zero-shot/<protocol>/, with the main run's prompts)."""
    suffix = layout.suffix(preset)
    zero_shot = preset == ZERO_SHOT
    eval_cfg = resolved["evaluation"] | {"protocol": protocol, "seed": config.seed}
    eval_cfg.pop("protocols")
    eval_cfg.pop("zero_shot")  # which protocols get a zero-shot row is not this row's input
    trained_by = "train" if zero_shot else f"train{suffix}"
    samples_dir = layout.samples("" if zero_shot else preset)
    return step(
        f"eval-{protocol}{suffix}",
        layout.evaluation(protocol, preset),
        eval_cfg,
        ["data", trained_by],
        lambda d, _resume: stages.evaluate(
            config, layout.data, train_dir, protocol, d, zero_shot=zero_shot
        ),
        lambda: work.eval_work(config, layout.data, samples_dir, protocol),
    )
