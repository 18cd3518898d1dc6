"""Finding an artefact's inputs (samples, dataset) from any working directory, and the
prompt settings a run records."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from recalign.artifacts import (
    ArtifactError,
    DatasetDir,
    PromptSettings,
    RunDir,
    SamplesDir,
    find_input,
    find_recorded,
    recorded_path,
)
from recalign.errors import ConfigError, IncompatibleArtifactError
from tests.factories import fake_samples
from tests.training.conftest import make_dataset


def test_recorded_path_is_relative_inside_the_tree(tmp_path, monkeypatch):
    run = tmp_path / "pipe" / "train"
    assert recorded_path(tmp_path / "pipe" / "samples", run) == str(Path("..") / "samples")
    assert recorded_path(run / "sub", run) == "sub"
    far = tmp_path / "elsewhere" / "samples"
    assert recorded_path(far, run) == str(far)  # two levels up: absolute
    # A path given relative to the working directory is recorded against the run.
    monkeypatch.chdir(tmp_path)
    assert recorded_path("pipe/samples", "pipe/train") == str(Path("..") / "samples")


def _tree(root: Path) -> tuple[Path, Path]:
    """root/data and root/samples made from it (recording `../data`)."""
    make_dataset(root / "data", users=8, items=10)
    return root / "data", fake_samples(root / "data", root / "samples")


def test_an_input_is_found_by_its_content_hash(tmp_path, monkeypatch):
    data, samples = _tree(tmp_path / "pipe")
    opened = SamplesDir.open(samples)
    record = opened.manifest.inputs["dataset"]
    assert record.path == str(Path("..") / "data")
    assert record.content_hash == DatasetDir.open(data).content_hash
    monkeypatch.chdir(tmp_path / "pipe" / "data")  # the working directory does not matter
    assert find_input(samples, record, DatasetDir) == data
    assert opened.input_dir("dataset", DatasetDir) == data


def test_a_copied_tree_reads_its_own_copy_and_a_changed_one_is_refused(tmp_path):
    _tree(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    copy = SamplesDir.open(tmp_path / "b" / "samples")
    assert copy.input_dir("dataset", DatasetDir) == tmp_path / "b" / "data"
    # The copy's dataset is prepared again from other data: not the one recorded.
    shutil.rmtree(tmp_path / "b" / "data")
    make_dataset(tmp_path / "b" / "data", users=9, items=10)
    with pytest.raises(IncompatibleArtifactError, match=r"b/data is not the dataset"):
        copy.input_dir("dataset", DatasetDir)


def test_a_moved_tree_with_an_absolute_path(tmp_path):
    make_dataset(tmp_path / "old" / "data", users=8, items=10)
    samples = fake_samples(tmp_path / "old" / "data", tmp_path / "elsewhere" / "x" / "samples")
    record = SamplesDir.open(samples).manifest.inputs["dataset"]
    assert record.path == str(tmp_path / "old" / "data")  # far away: absolute
    shutil.move(tmp_path / "old", tmp_path / "new")
    with pytest.raises(ArtifactError, match="cannot find the dataset"):
        SamplesDir.open(samples).input_dir("dataset", DatasetDir)
    shutil.move(tmp_path / "new" / "data", tmp_path / "elsewhere" / "x" / "data")
    found = SamplesDir.open(samples).input_dir("dataset", DatasetDir)
    assert found == tmp_path / "elsewhere" / "x" / "data"  # found beside it by its tail


def test_find_recorded_takes_only_what_accept_takes(tmp_path):
    (tmp_path / "run" / "samples").mkdir(parents=True)  # no manifest: not accepted
    assert find_recorded("samples", tmp_path / "run", lambda p: (p / "x").is_file()) is None


def test_prompt_defaults_are_the_samples_stage_defaults():
    from recalign.samples.mixture import MixtureConfig

    defaults, mixture = PromptSettings(), MixtureConfig()
    assert defaults.item_repr == mixture.item_repr
    assert defaults.max_history == mixture.max_history
    assert defaults.id_seed == mixture.id_seed
    assert defaults.separator == mixture.separator
    assert defaults.templates == () and defaults.max_source_length is None


def test_prompt_settings_of_a_samples_directory(tmp_path):
    make_dataset(tmp_path / "data", users=8, items=10)
    samples = fake_samples(
        tmp_path / "data", tmp_path / "s", item_repr="id", id_seed=3, max_history=4, separator=" | "
    )
    prompt = SamplesDir.open(samples).prompt_settings()
    assert (prompt.item_repr, prompt.id_seed, prompt.max_history) == ("id", 3, 4)
    assert prompt.separator == " | " and prompt.source == f"samples {samples}"
    changed = prompt.with_overrides(max_history=2)
    assert changed.max_history == 2 and changed.item_repr == "id"
    assert changed.source.endswith("+ flags")
    with pytest.raises(ConfigError, match="unknown item representation"):
        prompt.with_overrides(item_repr="emoji")
    with pytest.raises(ConfigError, match="--max-history must be at least 1"):
        prompt.with_overrides(max_history=0)
    with pytest.raises(ArtifactError, match="not a samples directory"):
        SamplesDir.open(tmp_path / "data")


def test_template_files_travel_with_the_samples_and_the_run(tmp_path, monkeypatch):
    """A user's template file is copied into the samples (and the run): prompts are built
    with it after the original is gone, from any working directory."""
    from recalign.samples import generate_samples
    from recalign.samples.templates import default_template_files

    shipped = next(p for p in default_template_files() if p.name == "retrieval.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text(shipped.read_text().replace("retrieval-1", "mine-1"))
    dataset = make_dataset(tmp_path / "data", users=8, items=30)
    monkeypatch.chdir(tmp_path)
    generate_samples(dataset, "samples", preset="rec-only", templates=["mine.yaml"])
    mine.unlink()
    monkeypatch.chdir(tmp_path / "data")
    prompt = SamplesDir.open(tmp_path / "samples").prompt_settings()
    assert prompt.templates == (str(tmp_path / "samples" / "templates" / "0-mine.yaml"),)
    assert prompt.load_templates().resolve("retrieval", "mine-1") is not None


def test_training_records_its_inputs_and_prompts(tmp_path, monkeypatch, caplog):
    """A real (2-step) training run started with relative paths; read from elsewhere."""
    pytest.importorskip("torch")
    from recalign.training.config import make_config
    from recalign.training.run import train
    from tests.training.conftest import TINY_T5, make_samples

    monkeypatch.chdir(tmp_path)
    dataset = make_dataset(Path("pipe/data"), users=12, items=10)
    make_samples(dataset, Path("pipe/samples"))
    config = make_config(
        {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "vocab_size": 300}
        | {"model_overrides": TINY_T5, "max_eval_samples": 8, "max_source_length": 96}
    )
    train("pipe/data", "pipe/samples", "tiny-t5", "pipe/train", config=config, progress=False)
    manifest = json.loads((tmp_path / "pipe" / "train" / "manifest.json").read_text())
    assert manifest["inputs"]["samples"]["path"] == str(Path("..") / "samples")
    assert manifest["inputs"]["dataset"]["path"] == str(Path("..") / "data")
    monkeypatch.chdir(tmp_path / "pipe" / "data")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run = RunDir.open(tmp_path / "pipe" / "train")
        assert run.samples_dir() == tmp_path / "pipe" / "samples"
        assert run.dataset_dir() == tmp_path / "pipe" / "data"
    assert not caplog.records
    prompt = run.prompt_settings()
    assert (prompt.max_history, prompt.separator, prompt.tasks) == (5, ", ", ("retrieval",))
    assert prompt.max_source_length == 96  # the training budget: evaluation fits to it
    # The prompts need nothing but the run: its samples may go.
    shutil.rmtree(tmp_path / "pipe" / "samples")
    assert RunDir.open(tmp_path / "pipe" / "train").prompt_settings() == prompt
