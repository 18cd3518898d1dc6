"""What `recalign evaluate` is pointed at, and how `metrics.json` names it.

A target is either a fine-tuned model — a training run directory (`recalign train
--out`) or a `recalign run` pipeline directory (its `train/` run, its `data/`) — or a
model evaluated zero-shot: a model directory (`recalign models import`, any local
Hugging Face checkpoint, seq2seq or causal, a LoRA adapter), a `.gguf` file, a tiny
preset (random init: a floor) or a hub name. Everything but a run is loaded by
`recalign.models.loading.load_model`.

`metrics.json` says what was evaluated twice: `model`, a label a person can read
("SmolLM2-135M-Instruct.Q4_1 zero-shot", "flan-t5-base fine-tuned (paper, LoRA)",
"tiny-t5 trained from scratch (paper)"), and
`model_info`, the facts behind it (source, adaptation, presets, tasks, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.artifacts import (
    ModelManifest,
    PipelineDir,
    RunDir,
    artifact_kind,
    read_manifest,
)
from recalign.constants import MANIFEST_FILE
from recalign.errors import RecalignError

_MODEL_FILES = ("config.json", "adapter_config.json")


@dataclass(frozen=True)
class Target:
    """A resolved evaluation target: a training run, or a model spec for `load_model`."""

    run_dir: Path | None = None  # a fine-tuned model
    spec: str | None = None  # a model evaluated zero-shot
    data_dir: Path | None = None  # the dataset a pipeline directory holds

    @property
    def fine_tuned(self) -> bool:
        return self.run_dir is not None


def pipeline_run(pipeline_dir: Path) -> Target:
    """The training run and dataset of a `recalign run` directory."""
    layout = PipelineDir(pipeline_dir)
    train = layout.train()
    if not RunDir.is_one(train):
        raise RecalignError(
            f"{pipeline_dir} is a `recalign run` directory without a finished training run "
            f"({train / MANIFEST_FILE} is missing): run the pipeline until it has trained"
        )
    return Target(run_dir=train, data_dir=layout.data if layout.data.is_dir() else None)


def resolve_target(target: str | Path) -> Target:
    """What `target` names (see the module docstring); a clear error for anything else."""
    path = Path(target).expanduser()
    if not path.is_dir():
        # A .gguf file, a preset or a hub name: `load_model` says what is wrong with it.
        return Target(spec=str(target))
    has_manifest = (path / MANIFEST_FILE).is_file()
    # Reading the manifest names a corrupt or outdated one; the stage reading it verifies.
    kind = read_manifest(path).kind if has_manifest else None
    if kind == "pipeline":
        return pipeline_run(path)
    if kind == "run":
        return Target(run_dir=path)
    if kind == "model" or any((path / name).is_file() for name in _MODEL_FILES):
        return Target(spec=str(path))
    if has_manifest:
        raise RecalignError(
            f"{path} holds a {kind!r} artefact, not a model: evaluate a training run, a "
            "`recalign run` directory or a model directory (baselines are evaluated by "
            "`recalign baseline`)"
        )
    raise RecalignError(
        f"{path} is neither a recalign directory (no {MANIFEST_FILE}) nor a model "
        "checkpoint (no config.json): pass a training run, a `recalign run` directory, "
        "a model directory, a .gguf file, a tiny preset or a hub name"
    )


# --- names ---------------------------------------------------------------------------
def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def model_name(source: str) -> str:
    """A short name for a model source: the preset, the GGUF file's stem, the directory's
    name, or the hub name as given."""
    from recalign.models import TINY_PRESETS

    if source in TINY_PRESETS:
        return source
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        return path.stem
    if path.is_dir():
        if artifact_kind(path) == "model":
            gguf = read_manifest(path, ModelManifest).source.get("gguf")
            if isinstance(gguf, str):
                return Path(gguf).stem  # `recalign models import` of a GGUF file
        return path.resolve().name
    return path.name if _looks_like_path(source) else source


def model_label(info: dict[str, Any]) -> str:
    """The `model` string of metrics.json, from `model_info`."""
    details = []
    if info.get("adaptation") == "fine-tuned":
        if info.get("preset"):
            details.append(str(info["preset"]))
        elif info.get("tasks"):
            details.append("+".join(info["tasks"]))
        if info.get("lora"):
            details.append("LoRA")
        if info.get("checkpoint") not in (None, "best"):
            details.append(str(info["checkpoint"]))
    elif info.get("random_init"):
        details.append("random init")
    how = info["adaptation"]
    if how == "fine-tuned" and info.get("model_preset"):
        how = "trained from scratch"  # a tiny preset starts from random weights
    label = f"{info['name']} {how}"
    return f"{label} ({', '.join(details)})" if details else label


def describe_run(run: RunDir, which: str) -> dict[str, Any]:
    """`model_info` of a fine-tuned run (from its manifest: the model, the mixture)."""
    m = run.manifest
    source = str(m.model.get("source") or m.model.get("preset") or run.path.name)
    return {
        "name": model_name(source),
        "source": source,
        "adaptation": "fine-tuned",
        "family": m.family,
        "model_preset": m.model.get("preset"),
        "random_init": False,
        "preset": m.prompt.preset,
        "tasks": list(m.prompt.tasks),
        "lora": bool(m.lora),
        "checkpoint": which,
        "steps": m.steps_done,
        "run_dir": str(run.path),
    }


def describe_model(spec: str, family: str, *, name: str | None = None) -> dict[str, Any]:
    """`model_info` of a model evaluated zero-shot (`name` overrides the derived one)."""
    from recalign.models import TINY_PRESETS

    return {
        "name": name or model_name(spec),
        "source": spec,
        "adaptation": "zero-shot",
        "family": family,
        "model_preset": spec if spec in TINY_PRESETS else None,
        "random_init": spec in TINY_PRESETS,
        "preset": None,
        "tasks": None,
        "lora": (Path(spec).expanduser() / "adapter_config.json").is_file(),
        "checkpoint": None,
        "steps": None,
        "run_dir": None,
    }
