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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.constants import MANIFEST_FILE
from recalign.errors import RecalignError

PIPELINE_TRAIN_DIR = "train"  # RUN/train: the training run of a `recalign run` directory
PIPELINE_DATA_DIR = "data"  # RUN/data: its prepared dataset
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


def _manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecalignError(f"{path} is corrupt (not valid JSON: {error})") from None
    if not isinstance(manifest, dict):
        raise RecalignError(f"{path} is corrupt: expected a JSON object")
    return manifest


def pipeline_run(pipeline_dir: Path) -> Target:
    """The training run and dataset of a `recalign run` directory."""
    train = pipeline_dir / PIPELINE_TRAIN_DIR
    if not (train / MANIFEST_FILE).is_file():
        raise RecalignError(
            f"{pipeline_dir} is a `recalign run` directory without a finished training run "
            f"({train / MANIFEST_FILE} is missing): run the pipeline until it has trained"
        )
    data = pipeline_dir / PIPELINE_DATA_DIR
    return Target(run_dir=train, data_dir=data if data.is_dir() else None)


def resolve_target(target: str | Path) -> Target:
    """What `target` names (see the module docstring); a clear error for anything else."""
    path = Path(target).expanduser()
    if not path.is_dir():
        # A .gguf file, a preset or a hub name: `load_model` says what is wrong with it.
        return Target(spec=str(target))
    manifest = _manifest(path)
    kind = None if manifest is None else manifest.get("kind")
    if kind == "pipeline":
        return pipeline_run(path)
    if kind == "run":
        return Target(run_dir=path)
    if kind == "model" or any((path / name).is_file() for name in _MODEL_FILES):
        return Target(spec=str(path))
    if manifest is not None:
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
        manifest = _manifest(path) or {}
        gguf = manifest.get("source") if manifest.get("kind") == "model" else None
        if isinstance(gguf, dict) and isinstance(gguf.get("gguf"), str):
            return Path(gguf["gguf"]).stem  # `recalign models import` of a GGUF file
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


def _trained_tasks(run_dir: Path, samples_manifest: dict[str, Any]) -> list[str] | None:
    """The task mixture a run was trained on: the samples' tasks, cut to the run's
    `tasks` when its config names some."""
    tasks = samples_manifest.get("tasks")
    tasks = [str(t) for t in tasks] if isinstance(tasks, list) else None
    config = run_dir / "config.yaml"
    if config.is_file():
        import yaml

        try:
            chosen = (yaml.safe_load(config.read_text()) or {}).get("tasks")
        except (OSError, yaml.YAMLError, AttributeError):
            chosen = None
        if isinstance(chosen, list) and chosen:
            tasks = [t for t in (tasks or chosen) if t in chosen]
    return tasks


def describe_run(
    run_dir: Path, manifest: dict[str, Any], samples_manifest: dict[str, Any], which: str
) -> dict[str, Any]:
    """`model_info` of a fine-tuned run."""
    spec = manifest.get("model") or {}
    source = str(spec.get("source") or spec.get("preset") or run_dir.name)
    return {
        "name": model_name(source),
        "source": source,
        "adaptation": "fine-tuned",
        "family": manifest.get("family"),
        "model_preset": spec.get("preset"),
        "random_init": False,
        "preset": samples_manifest.get("preset"),
        "tasks": _trained_tasks(run_dir, samples_manifest),
        "lora": bool(manifest.get("lora")),
        "checkpoint": which,
        "steps": manifest.get("steps_done"),
        "run_dir": str(run_dir),
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
