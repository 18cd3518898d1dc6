"""SIGTERM (what `timeout`, Slurm and Kubernetes send) against the real command line.

Each test runs `recalign` in a subprocess whose training steps are slowed by a sleep
(numerics untouched), so a signal sent once the log shows progress lands mid-run.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from recalign.models.loading import load_run_model
from recalign.training.checkpoints import checkpoint_dirs, verify_checkpoint
from recalign.training.config import make_config
from recalign.training.run import train
from tests.signals import finish, start, wait_for_step

from .conftest import TINY_T5

torch.set_num_threads(1)

CONFIG = {
    "max_steps": 30,
    "batch_size": 8,
    "eval_steps": 10,
    "logging_steps": 1,
    "learning_rate": 3e-3,
    "vocab_size": 300,
    "warmup_ratio": 0.0,
    "model_overrides": TINY_T5,
}


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def _same_weights(a, b, tol=1e-5):
    params_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        torch.testing.assert_close(p, params_b[name], atol=tol, rtol=tol, msg=name)


@pytest.fixture(scope="module")
def uninterrupted(shop, tmp_path_factory):
    data, samples = shop
    out = tmp_path_factory.mktemp("whole") / "run"
    train(data, samples, "tiny-t5", out, config=make_config(CONFIG), progress=False)
    return out


def _train_args(shop, out: Path, config: Path) -> list[str]:
    data, samples = shop
    return ["train", "--data", str(data), "--samples", str(samples), "--model", "tiny-t5",
            "--out", str(out), "--config", str(config)]  # fmt: skip


def test_sigterm_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
    shop, uninterrupted, tmp_path
):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    process = start(_train_args(shop, out, config), tmp_path)
    wait_for_step(process, out / "train_log.jsonl", 4)
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)

    assert code == 130, err[-3000:]
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    stopped = manifest["steps_done"]
    assert 4 <= stopped < 30
    steps = [step for step, _ in checkpoint_dirs(out)]
    assert steps[-1] == stopped  # a checkpoint at the step reached
    verify_checkpoint(out / "checkpoints" / f"checkpoint-{stopped}")
    assert not (out / "model").exists()
    assert _log(out)[-1] == {"event": "interrupt", "step": stopped, "signal": "SIGTERM"}

    data, samples = shop
    resumed = train(data, samples, "tiny-t5", out, resume=True, progress=False)
    assert resumed.steps == 30 and not resumed.interrupted
    records = _log(out)
    markers = [r for r in records if r.get("event") == "resume"]
    assert len(markers) == 1 and markers[0]["from_step"] == stopped
    assert markers[0]["checkpoint"] == f"checkpoint-{stopped}"
    logged = [r["step"] for r in records if "loss" in r]
    assert logged == list(range(1, 31))  # every step once: none repeated, none missing
    _same_weights(
        load_run_model(uninterrupted, which="last").model, load_run_model(out, which="last").model
    )


def test_a_second_sigterm_aborts_at_once(shop, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    process = start(_train_args(shop, out, config), tmp_path, delay=1.0)
    wait_for_step(process, out / "train_log.jsonl", 2)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # inside the next (slow) step: no checkpoint yet
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)

    assert code == 130, err[-3000:]
    assert "aborting" in err and "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "aborted"
    assert checkpoint_dirs(out) == []  # no save had started (the first is at step 10)
