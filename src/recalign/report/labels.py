"""Human-readable model names, derived from what `metrics.json` and the manifests record.

The raw `model` string of an evaluation is an identifier (`train:tiny-t5`, `sasrec`); a
newcomer reads "tiny-t5 (trained from scratch, paper mixture)" or "SASRec (BCE loss)". Labels are derived from the records beside the evaluation — the baseline's
config, the training run's and the samples' manifests — never parsed out of the raw
string, so a change to that string only changes the fallback: when nothing is known,
the label is the raw string itself. `collect_run` reads a run's evaluations with their
labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recalign.artifacts import (
    PipelineDir,
    RunDir,
    RunManifest,
    SamplesDir,
    SamplesManifest,
    find_input,
    read_manifest,
)
from recalign.constants import METRICS_FILE
from recalign.errors import RecalignError
from recalign.report.collect import (
    BASELINE,
    LLM,
    SAME_USERS,
    Evaluation,
    RunEvaluations,
    Unreadable,
    gather,
    on_same_users,
)

log = logging.getLogger(__name__)

# Baseline names of `recalign.baselines.registry.BASELINES` -> what a reader calls them.
_BASELINE_NAMES = {
    "pop": "popularity",
    "bprmf": "BPR-MF",
    "sasrec": "SASRec",
    "global-mean": "global mean rating",
    "user-mean": "user's mean rating",
    "item-mean": "item's mean rating",
    "biased-mf": "biased MF",
}
_LOSSES = {"bce": "BCE loss", "ce": "cross-entropy loss"}
_TINY_PRESETS = ("tiny-t5", "tiny-causal")  # built from a config: random initial weights


@dataclass(frozen=True)
class TrainedModel:
    """What the training run of an LLM evaluation recorded (empty fields when unknown)."""

    directory: Path | None
    manifest: dict[str, Any]
    samples: dict[str, Any]

    @property
    def name(self) -> str:
        spec = self.manifest.get("model") or {}
        source = spec.get("preset") or spec.get("source")
        return Path(str(source)).name if source else ""

    @property
    def how(self) -> str:
        """'trained from scratch', 'fine-tuned' or 'LoRA fine-tuned'."""
        spec = self.manifest.get("model") or {}
        lora = self.manifest.get("lora")
        if lora:
            return "LoRA fine-tuned"
        return "trained from scratch" if spec.get("preset") in _TINY_PRESETS else "fine-tuned"

    @property
    def mixture(self) -> str:
        return str(self.samples.get("preset") or "")


def _same_data(recorded: str | None, raw: dict[str, Any]) -> bool:
    ours = raw.get("data_hash")
    return recorded is None or ours is None or recorded == ours


def trained_model(evaluation: Evaluation, run_dir: Path | None = None) -> TrainedModel:
    """The training run an LLM evaluation used: the `run_dir` its metrics.json names, or,
    when that path has moved (a copied run directory), `RUN/train` if it trained on the
    same data. Only manifests are read (the report needs what they say, not the weights)."""
    candidates = []
    if evaluation.raw.get("run_dir"):
        candidates.append(Path(str(evaluation.raw["run_dir"])))
    if run_dir is not None:
        candidates.append(PipelineDir(run_dir).train())
    for directory in candidates:
        if not RunDir.is_one(directory):
            continue
        try:
            run = read_manifest(directory, RunManifest)
        except RecalignError:
            continue
        manifest = run.model_dump(mode="json")
        if _same_data(run.data_hash, evaluation.raw):
            return TrainedModel(directory, manifest, _samples_of(directory, run))
    return TrainedModel(None, {}, {})


def _samples_of(directory: Path, run: RunManifest) -> dict[str, Any]:
    """What the run's samples manifest says (its mixture and counts), else the run's own
    record of the mixture."""
    record = run.inputs.get("samples")
    found = None if record is None else find_input(directory, record, SamplesDir)
    if found is not None:
        try:
            return read_manifest(found, SamplesManifest).model_dump(mode="json")
        except RecalignError:
            pass
    return {"preset": run.prompt.preset}


def llm_label(evaluation: Evaluation, run_dir: Path | None = None) -> str:
    info = evaluation.raw.get("model_info") or {}
    if info.get("adaptation") == "zero-shot":
        # Not the run's fine-tuned model: the label the evaluator wrote says what it was.
        return evaluation.model
    trained = trained_model(evaluation, run_dir)
    if not trained.name:
        return evaluation.model
    mixture = f", {trained.mixture} mixture" if trained.mixture else ""
    return f"{trained.name} ({trained.how}{mixture})"


def baseline_label(evaluation: Evaluation) -> str:
    config = evaluation.raw.get("config") or {}
    name = str(config.get("baseline") or evaluation.raw.get("model") or "")
    if name.startswith("sasrec"):
        loss = _LOSSES.get(str(config.get("loss")))
        return f"SASRec ({loss})" if loss else str(evaluation.raw.get("model", evaluation.model))
    return _BASELINE_NAMES.get(name, str(evaluation.raw.get("model", evaluation.model)))


def model_label(evaluation: Evaluation, run_dir: Path | None = None) -> str:
    """The readable name of an evaluation's model; its raw `model` string when unknown."""
    if evaluation.role == LLM:
        return llm_label(evaluation, run_dir)
    if evaluation.role in (BASELINE, SAME_USERS):
        return baseline_label(evaluation)
    return evaluation.model


def baseline_description(evaluation: Evaluation) -> str:
    """One line on what a baseline is (the registry's help), '' when unknown."""
    from recalign.baselines.registry import BASELINES

    config = evaluation.raw.get("config") or {}
    spec = BASELINES.get(str(config.get("baseline") or evaluation.raw.get("model")))
    return spec.help if spec else ""


def collect_run(run_dir: Path) -> RunEvaluations:
    """Read `RUN/eval` and `RUN/baselines`, label every model, re-score on the same users.

    The directories read are those holding a `metrics.json` and those the pipeline's
    manifest lists; one that cannot be read (missing, corrupt, altered) is kept in
    `unreadable`, so the report says so instead of dropping its row.
    """
    manifest = _pipeline_manifest(run_dir)
    layout = PipelineDir(run_dir)
    unreadable: list[Unreadable] = []

    def found(root: Path, role: str) -> list[Evaluation]:
        stages = _expected(run_dir, manifest, root.name)
        present = [
            p.parent
            for p in (root.rglob(METRICS_FILE) if root.is_dir() else ())
            # Not a writer's temporary directory (`.NAME.tmp-...`): not an evaluation yet.
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
        ]
        directories = sorted({*present, *stages})
        evaluations, missing = gather(directories, role, stages)
        unreadable.extend(missing)
        return [replace(e, label=model_label(e, run_dir)) for e in evaluations]

    llm, baselines = found(layout.evaluations, LLM), found(layout.baselines, BASELINE)
    return RunEvaluations(
        run_dir=run_dir,
        llm=llm,
        baselines=baselines,
        same_users=on_same_users(llm, baselines),
        manifest=manifest,
        unreadable=unreadable,
    )


def _pipeline_manifest(run_dir: Path) -> dict[str, Any]:
    """The run directory's pipeline manifest ({} when it has none, or it cannot be read:
    the report then shows what it finds)."""
    from recalign.artifacts import PipelineManifest, artifact_kind

    if artifact_kind(run_dir) != "pipeline":
        return {}
    try:
        return read_manifest(run_dir, PipelineManifest).model_dump(mode="json")
    except RecalignError as error:
        log.warning("%s", error)
        return {}


def _expected(run_dir: Path, manifest: dict[str, Any], sub: str) -> dict[Path, str]:
    """The evaluation directories below `RUN/sub` the pipeline's stages wrote: dir -> stage."""
    expected = {}
    for name, stage in (manifest.get("stages") or {}).items():
        directory = run_dir / stage["directory"]
        if stage.get("content_hash") and directory.parts[len(run_dir.parts)] == sub:
            expected[directory] = name
    return expected
