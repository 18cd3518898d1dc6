"""Finding a run's inputs (samples, prompt settings, dataset) from any working directory."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from recalign.errors import ConfigError, RecalignError
from recalign.manifest import file_sha256
from recalign.run_inputs import (
    PromptSettings,
    RunSamples,
    find_data_dir,
    find_recorded,
    recorded_path,
    run_samples,
)


def _samples(directory: Path, **fields) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({"kind": "samples", **fields}))
    return directory


def _run(directory: Path, samples_dir: str, samples_manifest: Path | None = None, **fields):
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"kind": "run", "samples_dir": samples_dir, **fields}
    if samples_manifest is not None:
        manifest["samples_manifest_sha256"] = file_sha256(samples_manifest / "manifest.json")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_recorded_path_is_relative_inside_the_tree(tmp_path, monkeypatch):
    run = tmp_path / "pipe" / "train"
    assert recorded_path(tmp_path / "pipe" / "samples", run) == str(Path("..") / "samples")
    assert recorded_path(run / "sub", run) == "sub"
    far = tmp_path / "elsewhere" / "samples"
    assert recorded_path(far, run) == str(far)  # two levels up: absolute
    # A path given relative to the working directory is recorded against the run.
    monkeypatch.chdir(tmp_path)
    assert recorded_path("pipe/samples", "pipe/train") == str(Path("..") / "samples")


def test_legacy_working_directory_relative_path(tmp_path, monkeypatch):
    """`runs/demo/samples` stored in `runs/demo/train` by a run started in tmp_path."""
    samples = _samples(tmp_path / "runs" / "demo" / "samples")
    manifest = _run(tmp_path / "runs" / "demo" / "train", "runs/demo/samples", samples)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = run_samples(tmp_path / "runs" / "demo" / "train", manifest)
    assert found.directory == samples and found.verified
    # And with a relative run directory, from its own parent.
    monkeypatch.chdir(tmp_path / "runs")
    assert run_samples(Path("demo/train"), manifest).directory.resolve() == samples.resolve()


def test_moved_tree_with_an_absolute_path(tmp_path, caplog):
    samples = _samples(tmp_path / "new" / "pipe" / "samples", max_history=7)
    run = tmp_path / "new" / "pipe" / "train"
    manifest = _run(run, str(tmp_path / "old" / "pipe" / "samples"), samples)
    with caplog.at_level(logging.WARNING):
        found = run_samples(run, manifest)
    assert found.directory == samples and found.manifest["max_history"] == 7
    assert not caplog.records


def test_a_copied_tree_reads_its_own_copy(tmp_path, caplog):
    """A copy of a whole tree whose run recorded an absolute path: the copy's own samples
    (the original may change or go); a samples manifest other than the recorded one is
    used only with a warning."""
    original = _samples(tmp_path / "a" / "samples", max_history=5)
    manifest = _run(tmp_path / "a" / "train", str(original), original)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    run, copy = tmp_path / "b" / "train", tmp_path / "b" / "samples"
    assert run_samples(run, manifest).directory == copy
    _samples(copy, max_history=9)  # the copy changes: the original is the recorded one
    found = run_samples(run, manifest)
    assert found.directory == original and found.verified
    _samples(original, max_history=11)  # neither is: the nearest, with a warning
    with caplog.at_level(logging.WARNING):
        found = run_samples(run, manifest)
    assert found.directory == copy and not found.verified
    assert "not the one" in caplog.text


def test_missing_samples_warn_and_fall_back(tmp_path, caplog):
    manifest = _run(tmp_path / "run", "/nowhere/at/all/samples")
    with caplog.at_level(logging.WARNING):
        found = run_samples(tmp_path / "run", manifest)
    assert found == RunSamples(None)
    assert "cannot find the samples directory" in caplog.text
    assert PromptSettings.from_samples(found) == PromptSettings()
    # A run that records no samples (not made by `recalign train`) is silent.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert run_samples(tmp_path / "run", {"kind": "run"}).directory is None
    assert not caplog.records


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
    assert defaults.templates == ()


def test_prompt_settings_from_a_samples_manifest(tmp_path):
    samples = _samples(
        tmp_path / "s", item_repr="id", id_seed=3, max_history=4, config={"separator": " | "}
    )
    prompt = PromptSettings.from_samples_dir(samples)
    assert (prompt.item_repr, prompt.id_seed, prompt.max_history) == ("id", 3, 4)
    assert prompt.separator == " | " and prompt.source == f"samples {samples}"
    # A run's own item_repr record wins.
    run_own = PromptSettings.from_samples(
        RunSamples(samples, {"item_repr": "id"}), item_repr="title"
    )
    assert run_own.item_repr == "title"
    changed = prompt.with_overrides(max_history=2)
    assert changed.max_history == 2 and changed.item_repr == "id"
    assert changed.source.endswith("+ flags")
    with pytest.raises(ConfigError, match="unknown item representation"):
        prompt.with_overrides(item_repr="emoji")
    with pytest.raises(ConfigError, match="--max-history must be at least 1"):
        prompt.with_overrides(max_history=0)
    with pytest.raises(RecalignError, match="not a samples directory"):
        PromptSettings.from_samples_dir(tmp_path)


def test_template_files_are_found_again(tmp_path, monkeypatch):
    from recalign.samples.templates import default_template_files

    shipped = next(p for p in default_template_files() if p.name == "retrieval.yaml")
    (tmp_path / "project").mkdir()
    shutil.copy(shipped, tmp_path / "project" / "mine.yaml")
    # Recorded as typed in tmp_path/project: relative to that working directory.
    samples = _samples(tmp_path / "project" / "samples", config={"templates": ["mine.yaml"]})
    monkeypatch.chdir(tmp_path)
    prompt = PromptSettings.from_samples_dir(samples)
    assert prompt.templates == (str(tmp_path / "project" / "mine.yaml"),)
    assert prompt.load_templates().resolve("retrieval", "default") is not None
    (tmp_path / "project" / "mine.yaml").unlink()
    with pytest.raises(RecalignError, match=r"template file mine\.yaml"):
        PromptSettings.from_samples_dir(samples)


def test_find_data_dir_follows_the_samples(tmp_path, monkeypatch):
    data = tmp_path / "pipe" / "data"
    data.mkdir(parents=True)
    (data / "items.parquet").write_bytes(b"")
    (data / "manifest.json").write_text(json.dumps({"kind": "dataset", "data_hash": "abc"}))
    samples = _samples(tmp_path / "pipe" / "samples", data_path="pipe/data")
    manifest = _run(tmp_path / "pipe" / "train", "../samples", samples, data_hash="abc")
    monkeypatch.chdir(tmp_path / "pipe" / "train")
    assert find_data_dir(tmp_path / "pipe" / "train", manifest) == data
    assert find_data_dir(tmp_path / "pipe" / "train", {"kind": "run"}) is None


def test_training_records_the_samples_relative_to_the_run(tmp_path, monkeypatch, caplog):
    """A real (2-step) training run started with relative paths; read from elsewhere."""
    pytest.importorskip("torch")
    from recalign.training.config import make_config
    from recalign.training.run import train
    from tests.training.conftest import TINY_T5, make_dataset, make_samples

    monkeypatch.chdir(tmp_path)
    dataset = make_dataset(Path("pipe/data"), users=12, items=10)
    make_samples(dataset, Path("pipe/samples"))
    config = make_config(
        {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "vocab_size": 300}
        | {"model_overrides": TINY_T5, "max_eval_samples": 8}
    )
    train("pipe/data", "pipe/samples", "tiny-t5", "pipe/train", config=config, progress=False)
    manifest = json.loads((tmp_path / "pipe" / "train" / "manifest.json").read_text())
    assert manifest["samples_dir"] == str(Path("..") / "samples")
    monkeypatch.chdir(tmp_path / "pipe" / "data")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        found = run_samples(tmp_path / "pipe" / "train", manifest)
    assert found.directory == tmp_path / "pipe" / "samples" and found.verified
    assert not caplog.records
