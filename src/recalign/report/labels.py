"""Human-readable model names, derived from what `metrics.json` and the manifests record.

The raw `model` string of an evaluation is an identifier (`train:tiny-t5`, `sasrec`); a
newcomer reads "tiny-t5 (trained from scratch, paper mixture)" or "SASRec (BCE loss)". Labels are derived from the records beside the evaluation — the baseline's
config, the training run's and the samples' manifests — never parsed out of the raw
string, so a change to that string only changes the fallback: when nothing is known,
the label is the raw string itself. `collect_run` reads a run's evaluations with their
labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recalign.constants import MANIFEST_FILE
from recalign.report.collect import (
    BASELINE,
    LLM,
    SAME_USERS,
    Evaluation,
    RunEvaluations,
    find_evaluations,
    on_same_users,
    read_json,
)

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


def _same_data(manifest: dict[str, Any], raw: dict[str, Any]) -> bool:
    recorded, ours = manifest.get("data_hash"), raw.get("data_hash")
    return recorded is None or ours is None or recorded == ours


def trained_model(evaluation: Evaluation, run_dir: Path | None = None) -> TrainedModel:
    """The training run an LLM evaluation used: the `run_dir` its metrics.json names, or,
    when that path has moved (a copied run directory), `RUN/train` if it trained on the
    same data."""
    candidates = []
    if evaluation.raw.get("run_dir"):
        candidates.append(Path(str(evaluation.raw["run_dir"])))
    if run_dir is not None:
        candidates.append(run_dir / "train")
    from recalign.run_inputs import run_samples

    for directory in candidates:
        manifest = read_json(directory / MANIFEST_FILE)
        if manifest.get("kind") == "run" and _same_data(manifest, evaluation.raw):
            samples = run_samples(directory, manifest).manifest
            return TrainedModel(directory, manifest, samples)
    return TrainedModel(None, {}, {})


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
    """Read `RUN/eval` and `RUN/baselines`, label every model, re-score on the same users."""

    def found(sub: str, role: str) -> list[Evaluation]:
        root = run_dir / sub
        evaluations = find_evaluations(root, role) if root.is_dir() else []
        return [replace(e, label=model_label(e, run_dir)) for e in evaluations]

    llm, baselines = found("eval", LLM), found("baselines", BASELINE)
    return RunEvaluations(
        run_dir=run_dir,
        llm=llm,
        baselines=baselines,
        same_users=on_same_users(llm, baselines),
        manifest=read_json(run_dir / MANIFEST_FILE),
    )
