"""Two CPU processes through `accelerate launch` (gloo): one consistent run directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recalign.models.loading import load_run_model


@pytest.mark.slow
def test_two_processes_write_one_consistent_checkpoint(shop, tmp_path):
    data, samples = shop
    config = tmp_path / "train.yaml"
    config.write_text(
        "batch_size: 4\neval_steps: 3\nlogging_steps: 1\nvocab_size: 300\n"
        "model_overrides: {d_model: 32, d_ff: 64, d_kv: 8, num_heads: 4, dropout_rate: 0.0}\n"
    )
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "recalign",
        "train",
        "--data",
        str(data),
        "--samples",
        str(samples),
        "--model",
        "tiny-t5",
        "--out",
        str(out),
        "--config",
        str(config),
        "--max-steps",
        "6",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert manifest["status"] == "done" and manifest["steps_done"] == 6
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-3", "checkpoint-6"]
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # Only the main process logs: one record per step, no duplicates.
    steps = [
        json.loads(x)["step"]
        for x in (out / "train_log.jsonl").read_text().splitlines()
        if "loss" in json.loads(x)
    ]
    assert steps == [1, 2, 3, 4, 5, 6]
    # Both processes trained the same tokenizer once and the model reloads with it.
    loaded = load_run_model(out, which="last")
    assert loaded.model.config.vocab_size == len(loaded.tokenizer)
    assert done.stderr.count("trained a seq2seq tokenizer") == 1
