"""`recalign run` keys its stages on content: a changed input file redoes the data stage
and everything after it; an altered or missing output redoes its stage and what
follows; nothing changed reuses everything."""

from __future__ import annotations

import json
import shutil

import pytest

from recalign.pipeline.config import parse_config
from recalign.pipeline.run import run_pipeline

pytest.importorskip("torch")


def _config(interactions) -> dict:
    return {
        "name": "keys",
        "data": {"name": "custom", "options": {"interactions": str(interactions)}},
        "samples": {"preset": "rec-only", "max_history": 4},
        "training": {
            "max_steps": 2,
            "eval_steps": 2,
            "batch_size": 4,
            "max_eval_samples": 4,
            "vocab_size": 200,
            "model_overrides": {
                "d_model": 16,
                "d_ff": 32,
                "num_layers": 1,
                "num_decoder_layers": 1,
                "num_heads": 2,
                "d_kv": 8,
            },
        },
        "evaluation": {"protocols": ["retrieval"], "max_users": 4, "num_beams": 4},
        "baselines": {"models": ["pop"]},
    }


def _log(users: int, items: int, shift: int = 0) -> str:
    rows = ["user_id,item_id,timestamp"]
    for user in range(users):
        for step in range(6):
            rows.append(f"u{user},i{(user * 3 + step * 5 + shift) % items},{step}")
    return "\n".join(rows) + "\n"


def _reused(result) -> dict[str, bool]:
    return {stage.name: stage.reused for stage in result.stages}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    log = root / "log.csv"
    log.write_text(_log(users=16, items=30))
    config = parse_config(_config(log))
    result = run_pipeline(config, root / "run")
    assert not any(_reused(result).values())
    return root, log, config


def test_nothing_changed_reuses_every_stage(first_run):
    root, _, config = first_run
    assert all(_reused(run_pipeline(config, root / "run")).values())


def test_an_altered_output_redoes_its_stage_and_every_stage_after_it(first_run, caplog):
    root, _, config = first_run
    run = root / "run"
    before = json.loads((run / "eval" / "retrieval" / "metrics.json").read_text())
    items = run / "samples" / "item_texts.parquet"
    items.write_bytes(items.read_bytes()[:-10])  # cut short behind the pipeline's back
    messages: list[str] = []
    result = run_pipeline(config, run, on_stage=messages.append)
    reused = _reused(result)
    assert reused["data"] and reused["baseline-pop"] and not reused["samples"]
    assert any("stage samples:" in m and "item_texts.parquet" in m for m in messages)
    # The samples made again are the same files (the same content hash): the stages
    # after them read what they read before, so they are reused.
    assert reused["train"] and reused["eval-retrieval"]
    after = json.loads((run / "eval" / "retrieval" / "metrics.json").read_text())
    assert after["metrics"] == before["metrics"]

    trained = json.loads((run / "train" / "manifest.json").read_text())["content_hash"]
    shutil.rmtree(run / "train")  # a missing output: trained again
    reused = _reused(run_pipeline(config, run))
    assert not reused["train"] and reused["samples"]
    # Seeded training on a CPU makes the same model: what reads it is reused.
    again = json.loads((run / "train" / "manifest.json").read_text())["content_hash"]
    assert again == trained and reused["eval-retrieval"]

    (run / "eval" / "retrieval" / "metrics.json").unlink()
    reused = _reused(run_pipeline(config, run))
    assert not reused["eval-retrieval"] and reused["train"]
    redone = json.loads((run / "eval" / "retrieval" / "metrics.json").read_text())
    assert redone["metrics"] == after["metrics"]


def test_an_edited_input_file_redoes_the_data_stage_and_everything_after(first_run):
    root, log, config = first_run
    log.write_text(_log(users=18, items=30, shift=1))
    messages: list[str] = []
    result = run_pipeline(config, root / "run", on_stage=messages.append)
    assert not any(_reused(result).values())
    assert any("stage data:" in m and "log.csv changed" in m for m in messages)
    manifest = json.loads((root / "run" / "data" / "manifest.json").read_text())
    assert manifest["stats"]["users"] == 18
