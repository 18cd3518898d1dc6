"""Checkpoint verification, the fallback to the previous good checkpoint, and the log."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from recalign.errors import RecalignError
from recalign.training.callbacks import mark_resume
from recalign.training.checkpoints import (
    CorruptCheckpointError,
    checkpoint_dirs,
    checkpoint_problem,
    last_checkpoint,
    resume_point,
    verify_checkpoint,
)
from recalign.training.config import make_config
from recalign.training.run import train

from .conftest import TINY_T5

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def two_checkpoints(shop, tmp_path_factory) -> Path:
    """A finished 4-step run with checkpoint-2 and checkpoint-4."""
    data, samples = shop
    cfg = {"max_steps": 4, "batch_size": 8, "eval_steps": 2, "logging_steps": 1}
    cfg |= {"vocab_size": 300, "model_overrides": TINY_T5}
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(data, samples, "tiny-t5", out, config=make_config(cfg), progress=False)
    assert [s for s, _ in checkpoint_dirs(out)] == [2, 4]
    return out


@pytest.fixture
def run(two_checkpoints, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(two_checkpoints, copy)
    return copy


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # garbage of the same length
        path.write_bytes(os.urandom(len(data)))


def test_a_good_checkpoint_verifies(two_checkpoints):
    for _, path in checkpoint_dirs(two_checkpoints):
        verify_checkpoint(path)
    assert checkpoint_problem(two_checkpoints / "checkpoints" / "checkpoint-4") is None


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage"])
@pytest.mark.parametrize(
    "name",
    ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"],
)
def test_each_damaged_file_is_named(run, name, how):
    checkpoint = run / "checkpoints" / "checkpoint-4"
    _damage(checkpoint / name, how)
    problem = checkpoint_problem(checkpoint)
    assert isinstance(problem, CorruptCheckpointError)
    assert problem.path == checkpoint / name, problem


def test_a_missing_optimizer_or_a_wrong_step_is_refused(run):
    checkpoint = run / "checkpoints" / "checkpoint-4"
    (checkpoint / "optimizer.pt").unlink()
    assert checkpoint_problem(checkpoint).path.name == "optimizer.pt"
    other = run / "checkpoints" / "checkpoint-2"
    state = json.loads((other / "trainer_state.json").read_text())
    state["global_step"] = 3
    (other / "trainer_state.json").write_text(json.dumps(state))
    assert "records step 3" in str(checkpoint_problem(other))


def test_resume_point_falls_back_and_moves_the_damaged_one_aside(run, caplog):
    _damage(run / "checkpoints" / "checkpoint-4" / "optimizer.pt", "truncated")
    with caplog.at_level(logging.WARNING):
        point = resume_point(run)
    assert point.checkpoint.name == "checkpoint-2" and point.step == 2
    assert "optimizer.pt" in caplog.text and "checkpoint-4" in caplog.text
    assert [str(e.path.name) for e in point.skipped] == ["optimizer.pt"]
    assert point.facts()["checkpoint"] == "checkpoint-2"
    assert (run / "checkpoints" / "corrupt-checkpoint-4").is_dir()
    assert last_checkpoint(run).name == "checkpoint-2"  # out of the Trainer's way


def test_no_good_checkpoint_is_a_clear_error_that_moves_nothing(run):
    _damage(run / "checkpoints" / "checkpoint-4" / "model.safetensors", "truncated")
    _damage(run / "checkpoints" / "checkpoint-2" / "scheduler.pt", "garbage")
    with pytest.raises(RecalignError) as error:
        resume_point(run)
    message = str(error.value)
    assert "no checkpoint" in message and "model.safetensors" in message
    assert "scheduler.pt" in message
    assert [s for s, _ in checkpoint_dirs(run)] == [2, 4]
    assert resume_point(run.parent / "elsewhere") is None  # no checkpoints at all


def test_cli_resume_with_only_damaged_checkpoints_exits_2(shop, run):
    from typer.testing import CliRunner

    from recalign.cli import app

    for _, path in checkpoint_dirs(run):
        _damage(path / "trainer_state.json", "truncated")
    data, samples = shop
    args = ["train", "--data", str(data), "--samples", str(samples), "--out", str(run), "--resume"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, RecalignError)
    assert "trainer_state.json" in str(result.exception)


def test_loading_a_run_with_a_damaged_model_names_the_file(run):
    from recalign.models.loading import load_run_model

    _damage(run / "model" / "model.safetensors", "truncated")
    # The best model is covered by the run's manifest: refused for its size, first.
    with pytest.raises(RecalignError, match=r"model[/\\]model\.safetensors: not the file this run"):
        load_run_model(run)


def test_pipeline_training_starts_over_when_every_checkpoint_is_damaged(run):
    from recalign.pipeline.stages import _can_resume

    assert _can_resume(run)
    for _, path in checkpoint_dirs(run):
        _damage(path / "model.safetensors", "empty")
    assert not _can_resume(run)


# --- the training log ---------------------------------------------------------------------
def test_mark_resume_drops_later_records_and_a_cut_line(tmp_path):
    log = tmp_path / "train_log.jsonl"
    lines = [
        {"step": 5, "loss": 2.0},
        {"step": 10, "loss": 1.5},
        {"step": 10, "eval_loss": 1.6},
        {"event": "resume", "from_step": 10, "checkpoint": "checkpoint-10"},
        {"step": 15, "loss": 1.2},
    ]
    log.write_text("\n".join(json.dumps(r) for r in lines) + '\n{"step": 20, "lo')
    dropped = mark_resume(log, 10, {"checkpoint": "checkpoint-10"})
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert dropped == 2
    assert records[:4] == lines[:4]
    marker = records[-1]
    assert marker["event"] == "resume" and marker["from_step"] == 10
    assert marker["dropped_records"] == 2 and "time" in marker


def test_the_report_reads_a_log_with_markers(tmp_path):
    from recalign.report.collect import read_train_log
    from recalign.report.plots import training_curves

    log = tmp_path / "train_log.jsonl"
    log.write_text(
        '{"step": 1, "loss": 2.0}\n{"event": "interrupt", "step": 1, "signal": "SIGTERM"}\n'
        '{"event": "resume", "from_step": 1}\n{"step": 2, "loss": 1.0}\n{"step": 3, "lo'
    )
    records = read_train_log(log)  # the cut last line is left out, with a warning
    assert [r.get("loss") for r in records] == [2.0, None, None, 1.0]
    assert training_curves(records, tmp_path / "training.png") is not None
