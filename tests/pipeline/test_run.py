"""A reduced `recalign run`: every stage, the cache, the report and a failing stage."""

from __future__ import annotations

import json

import pytest

from recalign.pipeline.config import parse_config
from recalign.pipeline.run import StageFailed, run_pipeline
from tests.tiny import ONE_LAYER_T5

SMALL = {
    "name": "small",
    "data": {"name": "synthetic", "options": {"users": 120, "items": 160}},
    "samples": {"max_history": 4},
    "training": {
        "max_steps": 6,
        "eval_steps": 3,
        "batch_size": 8,
        "max_eval_samples": 16,
        "vocab_size": 400,
        "model_overrides": ONE_LAYER_T5,
    },
    "evaluation": {"max_users": 6, "num_beams": 10, "batch_size": 6},
    "baselines": {"models": ["pop", "sasrec", "global-mean"], "options": {"sasrec": {"epochs": 1}}},
    "compare": ["rec-only"],
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    messages: list[str] = []
    result = run_pipeline(parse_config(SMALL), run_dir, on_stage=messages.append)
    result.messages = messages
    return run_dir, result


def _metrics(path):
    return json.loads((path / "metrics.json").read_text())


def test_every_stage_writes_its_outputs(small_run):
    run_dir, result = small_run
    assert [s.name for s in result.stages] == [
        "data",
        "samples",
        "train",
        "eval-retrieval",
        "eval-ranking",
        "eval-sampled",
        "eval-rating",
        "samples-rec-only",
        "train-rec-only",
        "eval-retrieval-rec-only",
        "baseline-pop",
        "baseline-sasrec",
        "baseline-global-mean",
    ]
    assert not any(s.reused for s in result.stages)
    for protocol in ("retrieval", "ranking", "sampled", "rating"):
        metrics = _metrics(run_dir / "eval" / protocol)
        assert metrics["protocol"] == protocol and metrics["users"] == 6
    for name in ("pop", "sasrec"):
        assert _metrics(run_dir / "baselines" / name)["users"] == 120
    assert "rmse" in _metrics(run_dir / "baselines" / "global-mean")["metrics"]
    report = (run_dir / "report.md").read_text()
    assert "| popularity |" in report and "Rating prediction" in report
    assert (run_dir / "report.html").is_file()
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["name"] == "small"


def test_a_compare_preset_is_trained_alike_and_evaluated_on_the_same_users(small_run):
    run_dir, _ = small_run
    main, variant = (_metrics(run_dir / "eval" / p) for p in ("retrieval", "rec-only/retrieval"))
    assert variant["model"] == "tiny-t5 trained from scratch (rec-only)"
    assert main["model"] == "tiny-t5 trained from scratch (paper)"
    assert variant["users"] == main["users"] == 6
    users = [
        [json.loads(line)["user_id"] for line in (d / "predictions.jsonl").open()]
        for d in (run_dir / "eval" / "retrieval", run_dir / "eval" / "rec-only" / "retrieval")
    ]
    assert users[0] == users[1]
    manifests = [
        json.loads((run_dir / d / "manifest.json").read_text())
        for d in ("samples", "samples-rec-only")
    ]
    assert manifests[0]["preset"] == "paper" and manifests[1]["preset"] == "rec-only"
    assert set(manifests[1]["counts"]["train"]) == {"retrieval", "ranking", "rating"}
    trained = [
        json.loads((run_dir / d / "manifest.json").read_text())["steps_done"]
        for d in ("train", "train-rec-only")
    ]
    assert trained == [6, 6]
    report = (run_dir / "report.md").read_text()
    assert "tiny-t5 (trained from scratch, rec-only mixture)" in report
    # The summary compares the main mixture with the compared one, on the same users.
    summary = report.split("## Summary")[1].split("##")[0]
    assert any(
        "paper mixture" in line and "rec-only mixture" in line and "same 6 users" in line
        for line in summary.splitlines()
    ), summary


def test_each_stage_says_what_it_does_and_how_long_it_took(small_run):
    run_dir, result = small_run
    starts = {m.split(":")[0]: m for m in result.messages if ": " in m and "done in" not in m}
    assert "train tiny-t5 on paper for 6 steps of 8 samples" in starts["stage train"]
    # The variant's training is estimated from the main training of this run.
    assert starts["stage train-rec-only"].endswith("(this run)")
    assert "about" in starts["stage eval-retrieval-rec-only"]
    assert any(m.startswith("stage train done in ") for m in result.messages)
    for stage in result.stages:
        assert stage.seconds is not None and stage.seconds >= 0
    record = json.loads((run_dir / ".train-rec-only.stage.json").read_text())
    assert record["seconds"] > 0 and record["estimate_seconds"] > 0


def test_rerun_reuses_and_an_evaluation_change_only_reevaluates(small_run):
    run_dir, _ = small_run
    again = run_pipeline(parse_config(SMALL), run_dir)
    assert all(s.reused for s in again.stages)
    changed = {**SMALL, "evaluation": {**SMALL["evaluation"], "max_users": 5}}
    result = run_pipeline(parse_config(changed), run_dir)
    reused = {s.name for s in result.stages if s.reused}
    assert {"data", "samples", "train"} <= reused
    assert "eval-retrieval" not in reused
    # The baselines rank every user: a different LLM user sample does not refit them.
    assert "baseline-pop" in reused
    assert _metrics(run_dir / "eval" / "retrieval")["users"] == 5
    # A new run estimates from the rates the first run recorded on this machine.
    record = json.loads((run_dir / "eval" / ".retrieval.stage.json").read_text())
    assert record["estimate_seconds"] > 0


def test_failing_stage_keeps_earlier_caches_and_says_how_to_resume(small_run, tmp_path):
    run_dir, _ = small_run
    # Only the stage can know: K above the catalogue's 160 items.
    broken = {**SMALL, "evaluation": {**SMALL["evaluation"], "k": 500, "num_beams": 500}}
    with pytest.raises(StageFailed) as error:
        run_pipeline(parse_config(broken), run_dir)
    message = str(error.value)
    assert "eval-retrieval" in message and "run the same command again" in message
    assert "above the catalogue size" in message
    assert (run_dir / "train" / "model").is_dir()


def test_a_pipeline_run_directory_can_be_served(small_run):
    from recalign.serving import Recommender

    run_dir, _ = small_run
    recommender = Recommender.load(run_dir)
    result = recommender.recommend([1, 2], k=3)
    ids = [item.item_id for item in result.items]
    assert len(ids) == 3 and not {1, 2} & set(ids)


def test_a_zero_shot_row_reuses_every_other_stage(small_run, tmp_path):
    """`evaluation.zero_shot` adds the model before fine-tuning (here a tiny preset's
    random init, asked for explicitly) on the same users; nothing else is redone."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0], run_dir)
    run_pipeline(parse_config(SMALL), run_dir)  # as SMALL left it (other tests change it)
    config = {**SMALL, "evaluation": {**SMALL["evaluation"], "zero_shot": ["retrieval"]}}
    result = run_pipeline(parse_config(config), run_dir)
    redone = [s.name for s in result.stages if not s.reused]
    assert redone == ["eval-retrieval-zero-shot"]
    zero_shot = _metrics(run_dir / "eval" / "zero-shot" / "retrieval")
    assert zero_shot["model_info"]["adaptation"] == "zero-shot"
    assert zero_shot["model"] == "tiny-t5 zero-shot (random init)"
    users = [
        [json.loads(line)["user_id"] for line in (d / "predictions.jsonl").open()]
        for d in (run_dir / "eval" / "retrieval", run_dir / "eval" / "zero-shot" / "retrieval")
    ]
    assert users[0] == users[1]
    summary = (run_dir / "report.md").read_text().split("## Summary")[1].split("##")[0]
    assert any("zero-shot" in line and "paper mixture" in line for line in summary.splitlines())
    report = (run_dir / "report.md").read_text()
    protocols = next(line for line in report.splitlines() if "Protocols:" in line)
    assert protocols.count("retrieval —") == 1  # two LLM rows, one protocol described once
    legend = next(line for line in report.splitlines() if line.startswith("- tiny-t5 zero-shot"))
    assert "before any training: random weights" in legend


def test_zero_shot_rows_default_to_pretrained_models_only():
    from recalign.pipeline.stages import zero_shot_protocols

    protocols = ["retrieval", "sampled"]
    assert zero_shot_protocols(parse_config(SMALL), protocols) == []  # tiny preset
    pretrained = parse_config({**SMALL, "model": {"spec": "models/smollm2"}})
    assert zero_shot_protocols(pretrained, protocols) == protocols
    chosen = {
        **SMALL,
        "model": {"spec": "models/smollm2"},
        "evaluation": {"zero_shot": ["sampled"]},
    }
    assert zero_shot_protocols(parse_config(chosen), protocols) == ["sampled"]
    off = {**SMALL, "model": {"spec": "models/smollm2"}, "evaluation": {"zero_shot": []}}
    assert zero_shot_protocols(parse_config(off), protocols) == []
