"""`recalign metrics merge|recompute|show` through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from recalign.cli.metrics import app
from recalign.constants import METRICS_FILE
from recalign.errors import IncompatibleArtifactError
from recalign.evaluation.outputs import read_metrics, write_evaluation
from tests.factories import reseal

OPTIONS = {"protocol": "ranking", "split": "test", "model": "tiny-t5", "exclude_history": True}
runner = CliRunner()


def predictions(users: range) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"user_id": u, "target": int(rng.integers(1, 30)), "ranked": list(range(1, 21))}
        for u in users
    ]


@pytest.fixture
def shards(tmp_path):
    write_evaluation(tmp_path / "whole", predictions(range(1, 61)), **OPTIONS, n_boot=100)
    write_evaluation(tmp_path / "s0", predictions(range(1, 61))[:25], **OPTIONS, n_boot=100)
    write_evaluation(tmp_path / "s1", predictions(range(1, 61))[25:], **OPTIONS, n_boot=100)
    return tmp_path


def test_merge_command(shards):
    out = shards / "merged"
    result = runner.invoke(
        app, ["merge", str(shards / "s0"), str(shards / "s1"), "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == read_metrics(out)
    assert printed["metrics"] == read_metrics(shards / "whole")["metrics"]
    table = runner.invoke(app, ["show", str(out)])
    assert table.exit_code == 0 and "hit@10" in table.output and "60 users" in table.output


def test_merge_overlap_is_an_error(shards):
    result = runner.invoke(
        app, ["merge", str(shards / "s0"), str(shards / "whole"), "-o", str(shards / "m")]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, IncompatibleArtifactError)


def test_recompute_detects_edits(shards):
    directory = shards / "whole"
    assert runner.invoke(app, ["recompute", str(directory)]).exit_code == 0
    stored = read_metrics(directory)
    stored["metrics"]["hit@10"] = 0.99  # a hand-edited or stale metrics.json
    (directory / METRICS_FILE).write_text(json.dumps(stored))
    # The manifest no longer vouches for the file: refused, naming it.
    result = runner.invoke(app, ["recompute", str(directory)])
    assert result.exit_code != 0 and "metrics.json: not the file" in str(result.exception)
    reseal(directory)  # recorded as it is now: recompute sees the edit
    result = runner.invoke(app, ["recompute", str(directory)])
    assert result.exit_code == 1 and "hit@10" in result.output
    assert runner.invoke(app, ["recompute", str(directory), "--write"]).exit_code == 0
    assert runner.invoke(app, ["recompute", str(directory)]).exit_code == 0
    assert read_metrics(directory)["metrics"]["hit@10"] != 0.99


def _legacy(directory):
    """Rewrite an evaluation's metrics.json as a baseline wrote it before full ranking
    had one name: protocol "full"."""
    path = directory / METRICS_FILE
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "protocol": "full"}))
    reseal(directory)
    return stored


def test_legacy_full_ranking_files_are_read_under_todays_name(tmp_path):
    options = {**OPTIONS, "protocol": "retrieval", "model": "pop"}
    for name in ("old", "new"):
        users = range(1, 31) if name == "old" else range(31, 61)
        write_evaluation(tmp_path / name, predictions(users), **options, n_boot=100)
    stored = _legacy(tmp_path / "old")
    assert read_metrics(tmp_path / "old") == stored  # protocol "retrieval" again
    # recompute: the file and the predictions agree (exit 0), under the current name
    result = runner.invoke(app, ["recompute", str(tmp_path / "old"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["protocol"] == "retrieval"
    result = runner.invoke(app, ["show", str(tmp_path / "old")])
    assert result.exit_code == 0 and "pop · retrieval · test" in result.output
    # an old shard merges with a new one
    result = runner.invoke(
        app, ["merge", str(tmp_path / "old"), str(tmp_path / "new"), "-o", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert read_metrics(tmp_path / "m")["protocol"] == "retrieval"
    # asked for by name, the old one is explained rather than silently mapped
    result = runner.invoke(app, ["recompute", str(tmp_path / "old"), "--protocol", "full"])
    assert result.exit_code != 0 and "now called 'retrieval'" in str(result.exception)
