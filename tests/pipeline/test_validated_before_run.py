"""`recalign run` checks the whole config before the first stage: a typo, a wrong type or
an unknown name is an error naming the key within seconds, and no stage writes a file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from recalign.errors import ConfigError
from recalign.pipeline.config import load_config, parse_config
from recalign.pipeline.run import run_pipeline
from tests.test_cli import call_main, run_entry_point

BAD = [
    # (YAML, what the message must name)
    (
        "training:\n  batch_sise: 8\n",
        "unknown key 'training.batch_sise' (did you mean 'batch_size'?)",
    ),
    (
        "baselines:\n  models: [pop, nosuch]\n",
        "baselines.models.1: unknown baseline 'nosuch'; known: pop, bprmf",
    ),
    (
        "baselines:\n  options:\n    sasrec: {epochs: none}\n",
        "baselines.options.sasrec.epochs: expected a valid integer",
    ),
    (
        "samples:\n  tasks:\n    ranking: {num_candidates: 1}\n",
        "samples.tasks.ranking.num_candidates",
    ),
    ("samples:\n  tasks:\n    rankin: {}\n", "samples.tasks.rankin: unknown task 'rankin'"),
    ("samples:\n  preset: paperr\n", "unknown preset 'paperr' (did you mean 'paper'?)"),
    ("evaluation:\n  k: 0\n", "evaluation.k: expected >= 1, got 0"),
    (
        "evaluation:\n  zero_shot: [retrival]\n",
        "evaluation.zero_shot.0: expected 'retrieval', 'ranking', 'sampled' or 'rating'",
    ),
    ("data:\n  name: beautyy\n", "data.name: unknown dataset 'beautyy'"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_config_is_named_before_anything_runs(tmp_path, monkeypatch, capsys, text, message):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    code, _, err = call_main(monkeypatch, capsys, "run", str(config), "--out", str(out))
    assert code == 2
    assert message in err and str(config) in err
    assert "Traceback" not in err
    assert not out.exists()  # no stage output, not even the run directory


def test_the_python_api_checks_a_config_changed_after_it_was_built(tmp_path):
    config = load_config(None)
    config.baselines.models.append("nosuch")  # not validated on assignment
    config.samples.preset = "nosuch"
    with pytest.raises(ConfigError) as error:
        run_pipeline(config, tmp_path / "run")
    assert "baselines.models.8: unknown baseline 'nosuch'" in str(error.value)
    assert "samples.preset: unknown preset 'nosuch'" in str(error.value)
    assert not (tmp_path / "run").exists()


def test_recalign_run_rejects_a_typo_within_seconds_in_a_fresh_process(tmp_path):
    """The whole program, as a user runs it: a stage would take minutes, the check does not."""
    for text, message in BAD[:2]:
        config = tmp_path / "run.yaml"
        config.write_text(text)
        out = tmp_path / "run"
        started = time.perf_counter()
        done = run_entry_point("run", str(config), "--out", str(out))
        seconds = time.perf_counter() - started
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert seconds < 10, f"{seconds:.1f} s to reject the config"
        assert not out.exists()


def test_validating_a_config_imports_no_model_stack(tmp_path):
    """Every section is checked (tasks, baselines, training) without torch or transformers."""
    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    code = f"""
import sys
from recalign.pipeline.config import load_config
for path in [None, *{[str(p) for p in configs]!r}]:
    load_config(path)
print("HEAVY", sorted(m for m in ("torch", "transformers", "peft", "datasets") if m in sys.modules))
"""
    done = run_entry_point(code=code)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_the_resolved_config_is_complete(tmp_path):
    """What the run directory records has every default, and reads back as the same config."""
    config = parse_config({"baselines": {"models": ["pop", "sasrec"]}})
    resolved = config.model_dump(mode="json")
    assert resolved["training"]["learning_rate"] == 1e-3  # a default, written out
    assert resolved["samples"]["max_history"] == 20
    assert resolved["evaluation"]["num_negatives"] == 99
    assert set(resolved["baselines"]["options"]) == {"pop", "sasrec"}
    assert resolved["baselines"]["options"]["sasrec"]["hidden"] == 64
    assert parse_config(json.loads(json.dumps(resolved))) == config


def test_seeds_not_given_follow_the_run(tmp_path):
    """An ablation over seeds changes the training and baseline seeds with the run's."""
    config = parse_config({"seed": 3, "baselines": {"options": {"bprmf": {"seed": 9}}}})
    assert config.training.seed is None and config.training.for_run(config.seed).seed == 3
    assert config.baselines.options_for("pop", config.seed)["seed"] == 3
    assert config.baselines.options_for("bprmf", config.seed)["seed"] == 9
    pinned = parse_config({"seed": 3, "training": {"seed": 5}})
    assert pinned.training.for_run(pinned.seed).seed == 5


def test_older_samples_config_key_is_read():
    config = parse_config({"samples": {"config": {"tasks": {"ranking": {"num_candidates": 5}}}}})
    assert config.samples.tasks == {"ranking": {"num_candidates": 5}}
    with pytest.raises(ConfigError, match=r"given both in samples and in samples\.config"):
        parse_config({"samples": {"max_history": 3, "config": {"max_history": 4}}})
