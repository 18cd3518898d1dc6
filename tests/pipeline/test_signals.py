"""SIGTERM during `recalign run` and `recalign samples generate` (real subprocesses)."""

from __future__ import annotations

import json
import signal
import time

import yaml

from recalign.pipeline.config import parse_config
from recalign.pipeline.run import run_pipeline
from tests.signals import finish, start, wait_for_glob, wait_for_step
from tests.tiny import ONE_LAYER_T5

RUN = {
    "name": "signals",
    "data": {"name": "synthetic", "options": {"users": 80, "items": 100}},
    "samples": {"max_history": 4, "preset": "rec-only"},
    "training": {
        "max_steps": 12,
        "eval_steps": 6,
        "logging_steps": 1,
        "batch_size": 8,
        "max_eval_samples": 16,
        "vocab_size": 400,
        "model_overrides": ONE_LAYER_T5,
    },
    "evaluation": {"protocols": ["ranking"], "max_users": 4, "batch_size": 4},
    "baselines": {"models": ["pop"]},
    "report": False,
}


def test_sigterm_during_the_training_stage_is_resumed_by_the_same_command(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(RUN))
    out = tmp_path / "run"
    process = start(["run", str(config), "--out", str(out)], tmp_path)
    wait_for_step(process, out / "train" / "train_log.jsonl", 3)
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)

    assert code == 130, err[-3000:]
    assert "stage 'train' interrupted" in err and "Traceback" not in err
    assert "run the same command again to resume it from its checkpoint" in err
    record = json.loads((out / ".train.stage.json").read_text())
    assert record["status"] == "interrupted" and record["resumable"] is True
    assert record["complete"] is False
    stopped = json.loads((out / "train" / "manifest.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["steps_done"] < 12
    assert not (out / "eval").exists()  # no later stage ran on a half-trained model

    result = run_pipeline(parse_config(RUN), out)  # the same command, again
    assert {s.name: s.reused for s in result.stages}["samples"] is True
    assert json.loads((out / ".train.stage.json").read_text())["complete"] is True
    finished = json.loads((out / "train" / "manifest.json").read_text())
    assert finished["status"] == "done" and finished["steps_done"] == 12
    log = [json.loads(x) for x in (out / "train" / "train_log.jsonl").read_text().splitlines()]
    markers = [r for r in log if r.get("event") == "resume"]
    assert [m["from_step"] for m in markers] == [stopped["steps_done"]]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, 13))
    assert (out / "eval" / "ranking" / "metrics.json").is_file()


def test_sigterm_during_samples_generation_leaves_no_split_behind(tmp_path):
    from tests.training.conftest import make_dataset

    make_dataset(tmp_path / "data", users=60, items=40)
    out = tmp_path / "samples"
    slow_writes = ("recalign.samples.writers", "SplitWriters", "write")
    process = start(
        ["samples", "generate", str(tmp_path / "data"), "--out", str(out)],
        tmp_path,
        slow=slow_writes,
        delay=0.5,
    )
    # The samples are written in a temporary sibling of `out`, renamed into place at the end.
    wait_for_glob(process, tmp_path, ".samples.tmp-*/.train.parquet.tmp")
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    code, err = finish(process)

    assert code == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()  # no split and no manifest a reader could accept
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".samples"))
    assert left == [], left  # no temporary directory, no lock file
