"""`train --resume` after a kill that came before the first checkpoint starts the run over."""

from __future__ import annotations

import json

import pytest
import torch

from recalign.errors import RecalignError
from recalign.training.config import make_config
from recalign.training.run import train

from .conftest import TINY_T5

torch.set_num_threads(1)

CONFIG = make_config(
    {
        "max_steps": 4,
        "batch_size": 8,
        "eval_steps": 2,
        "logging_steps": 1,
        "vocab_size": 300,
        "model_overrides": TINY_T5,
    }
)


def _train(shop, out, *, resume: bool):
    data, samples = shop
    return train(data, samples, "tiny-t5", out, config=CONFIG, resume=resume, progress=False)


def _steps(out) -> list[int]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(shop, tmp_path):
    out = tmp_path / "run"
    (out / "tokenizer").mkdir(parents=True)
    (out / "tokenizer" / "tokenizer_config.json").write_text('{"cut short')  # a kill mid-save
    (out / "data-cache").mkdir()
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)  # no trainer_state.json yet
    (out / "train_log.jsonl").write_text('{"step": 1, "loss": 9.0}\n')

    _train(shop, out, resume=True)

    assert json.loads((out / "manifest.json").read_text())["status"] == "done"
    assert _steps(out) == [1, 2, 3, 4]  # the stale record is gone, nothing repeated


def test_resume_into_a_folder_that_does_not_exist_yet_starts_the_run(shop, tmp_path):
    out = tmp_path / "fresh"
    _train(shop, out, resume=True)
    assert json.loads((out / "manifest.json").read_text())["status"] == "done"


def test_resume_leaves_a_folder_with_other_files_alone(shop, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    with pytest.raises(RecalignError, match="no complete checkpoint"):
        _train(shop, out, resume=True)
    assert (out / "notes.txt").read_text() == "not a run"
