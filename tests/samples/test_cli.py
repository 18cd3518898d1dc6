from __future__ import annotations

import json

from typer.testing import CliRunner

from recalign.cli.samples import app
from recalign.errors import ConfigError


def test_generate_show_export(tiny, tmp_path):
    runner = CliRunner()
    out = tmp_path / "samples"
    result = runner.invoke(
        app, ["generate", str(tiny.path), "--out", str(out), "--preset", "rec+bpr", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "bpr" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 2 and manifest["preset"] == "rec+bpr"

    shown = runner.invoke(app, ["show", str(out), "--task", "bpr", "-n", "2"])
    assert shown.exit_code == 0
    assert shown.output.count("[bpr /") == 2

    exported = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "jsonl")])
    assert exported.exit_code == 0
    lines = (tmp_path / "jsonl" / "train.jsonl").read_text().splitlines()
    assert len(lines) == sum(manifest["counts"]["train"].values())
    assert set(json.loads(lines[0])) >= {"task", "template", "input", "target", "target_item"}


def test_generate_shard_and_family(tiny, tmp_path):
    runner = CliRunner()
    out = tmp_path / "s"
    args = [
        "generate",
        str(tiny.path),
        "-o",
        str(out),
        "--shard",
        "1",
        "--num-shards",
        "2",
        "--family",
        "causal",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["shard"], manifest["num_shards"], manifest["family"]) == (1, 2, "causal")
    assert manifest["users"] == 3


def test_rating_skip_is_reported(tiny_no_ratings, tmp_path):
    result = CliRunner().invoke(
        app, ["generate", str(tiny_no_ratings.path), "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 0
    assert "skipped rating" in result.output


def test_errors_are_recalign_errors(tiny, tmp_path):
    result = CliRunner().invoke(
        app, ["generate", str(tiny.path), "-o", str(tmp_path / "o"), "--preset", "nope"]
    )
    assert isinstance(result.exception, ConfigError)


def test_export_hf(tiny, tmp_path):
    import datasets

    runner = CliRunner()
    out = tmp_path / "samples"
    assert (
        runner.invoke(
            app, ["generate", str(tiny.path), "-o", str(out), "--preset", "rec-only"]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["export", str(out), "-o", str(tmp_path / "hf"), "--format", "hf"])
    assert result.exit_code == 0, result.output
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert set(loaded) == {"train", "valid", "test"}
    assert loaded["valid"].num_rows == 18


def test_generate_with_config_and_own_templates(tiny, tmp_path):
    config = tmp_path / "mix.yaml"
    config.write_text("preset: rec-only\nmax_history: 2\ntasks:\n  ranking: {num_candidates: 4}\n")
    mine = tmp_path / "retrieval.yaml"
    mine.write_text(
        "task: retrieval\nplaceholders: [history, target]\ntemplates:\n"
        "  - {id: mine-1, version: 3, input: 'H: {{ history }}', target: '{{ target }}'}\n"
    )
    out = tmp_path / "o"
    args = [
        "generate",
        str(tiny.path),
        "-o",
        str(out),
        "--config",
        str(config),
        "--templates",
        str(mine),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["templates"]["retrieval"] == {"mine-1": 3}
    assert manifest["max_history"] == 2
    assert manifest["config"]["tasks"]["ranking"]["num_candidates"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  ranking: {num_candidates: lots}\n")
    result = CliRunner().invoke(
        app, ["generate", str(tiny.path), "-o", str(out), "--config", str(bad)]
    )
    assert isinstance(result.exception, ConfigError)
    assert "tasks.ranking.num_candidates" in str(result.exception)
