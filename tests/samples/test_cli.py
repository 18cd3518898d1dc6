from __future__ import annotations

import json

from typer.testing import CliRunner

from recalign.cli.samples import app
from recalign.errors import ConfigError
from tests.factories import bare_run, reseal


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
    assert manifest["template_versions"]["retrieval"] == {"mine-1": 3}
    assert manifest["max_history"] == 2
    assert manifest["config"]["tasks"]["ranking"]["num_candidates"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  ranking: {num_candidates: lots}\n")
    result = CliRunner().invoke(
        app, ["generate", str(tiny.path), "-o", str(out), "--config", str(bad)]
    )
    assert isinstance(result.exception, ConfigError)
    assert "tasks.ranking.num_candidates" in str(result.exception)


def test_generate_max_history(tiny, tmp_path):
    import polars as pl

    out = tmp_path / "s"
    result = CliRunner().invoke(
        app, ["generate", str(tiny.path), "-o", str(out), "--max-history", "2"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["max_history"] == 2
    train = pl.read_parquet(out / "train.parquet").filter(pl.col("task") == "retrieval")
    assert train.get_column("input").str.count_matches("; ").max() == 1  # 2 items at most
    refused = CliRunner().invoke(
        app, ["generate", str(tiny.path), "-o", str(out), "--max-history", "0"]
    )
    assert refused.exit_code != 0


def _run_dir_with_tokenizer(tmp_path, family="seq2seq"):
    from recalign.models.tiny import train_tokenizer

    from .conftest import item_text

    run = tmp_path / "run"
    corpus = [item_text(i) for i in range(1, 41)] + ["A user has interacted with these items"]
    train_tokenizer(corpus * 3, vocab_size=200, family=family).save_pretrained(run / "tokenizer")
    return bare_run(run, family=family, max_source_length=40)


def test_inspect_counts_what_fitting_does(tiny, tmp_path):
    out = tmp_path / "s"
    assert CliRunner().invoke(app, ["generate", str(tiny.path), "-o", str(out)]).exit_code == 0
    run = _run_dir_with_tokenizer(tmp_path)
    args = ["inspect", str(out), "--model", str(run), "--max-source-length"]
    result = CliRunner().invoke(app, [*args, "40", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["has_bounds"] and report["max_source_length"] == 40
    retrieval = report["splits"]["train"]["retrieval"]
    assert retrieval["prompts"] > 0 and retrieval["shortened"] > 0
    assert retrieval["items_dropped"] >= retrieval["shortened"] > 0
    assert report["splits"]["test"]["ranking"]["cannot_fit"] > 0  # 20 candidates in 40 tokens
    table = CliRunner().invoke(app, [*args, "40", "--split", "test"])
    assert table.exit_code == 0, table.output
    assert "ranking" in table.output and "do not fit even without their history" in table.output
    assert "Raise --max-source-length" in table.output
    roomy = json.loads(CliRunner().invoke(app, [*args, "100000", "--json"]).output)
    assert all(
        row["shortened"] == row["cannot_fit"] == 0
        for tasks in roomy["splits"].values()
        for row in tasks.values()
    )


def test_inspect_old_samples_and_bad_model(tiny, tmp_path):
    import polars as pl

    out = tmp_path / "s"
    assert CliRunner().invoke(app, ["generate", str(tiny.path), "-o", str(out)]).exit_code == 0
    for split in ("train", "valid", "test"):  # as written before prompts carried bounds
        path = out / f"{split}.parquet"
        pl.read_parquet(path).drop("history_bounds").write_parquet(path)
    reseal(out)
    run = _run_dir_with_tokenizer(tmp_path)
    args = ["inspect", str(out), "--model", str(run), "--max-source-length", "40"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no history bounds" in result.output and "Regenerate" in result.output
    bad = CliRunner().invoke(app, [*args[:2], "--model", "tiny-t5", "--max-source-length", "40"])
    assert bad.exit_code != 0
