import json

from typer.testing import CliRunner

from recalign.cli.baseline import app
from recalign.errors import ConfigError

runner = CliRunner()


def test_pop_end_to_end(sequential_dataset, tmp_path):
    out = tmp_path / "pop"
    result = runner.invoke(app, ["pop", "--data", str(sequential_dataset.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["exclude_history"] is True and metrics["protocol"] == "retrieval"
    assert metrics["split"] == "test" and metrics["users"] == 400
    assert {"hit@10", "ndcg@10", "mrr"} <= set(metrics["metrics"])
    lines = (out / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 400 and len(first["ranked"]) == 20
    assert (out / "model" / "model.json").is_file() and (out / "manifest.json").is_file()


def test_include_history_and_valid_split(sequential_dataset, tmp_path):
    out = tmp_path / "inc"
    args = ["pop", "--data", str(sequential_dataset.path), "--out", str(out)]
    result = runner.invoke(app, [*args, "--include-history", "--split", "valid", "--k", "5"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["exclude_history"] is False and metrics["split"] == "valid"


def test_sasrec_with_options(sequential_dataset, tmp_path):
    out = tmp_path / "sas"
    args = ["sasrec-ce", "--data", str(sequential_dataset.path), "--out", str(out)]
    opts = ["--epochs", "2", "--seed", "3", "--threads", "1", "--set", "hidden=16"]
    result = runner.invoke(app, [*args, *opts, "--set", "max_len=8"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["hidden"] == 16 and metrics["config"]["seed"] == 3
    assert metrics["fit"]["epochs"] == 2


def test_bad_option_is_a_config_error(sequential_dataset, tmp_path):
    args = ["sasrec", "--data", str(sequential_dataset.path), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, [*args, "--set", "hiden=3"])
    assert isinstance(result.exception, ConfigError) and "hiden" in str(result.exception)
    result = runner.invoke(
        app, ["pop", "--data", str(sequential_dataset.path), "--out", "y", "--epochs", "3"]
    )
    assert isinstance(result.exception, ConfigError)
