"""`recommend` and `serve` through typer's CliRunner against the serving app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recalign.cli.serve import _is_loopback, app
from recalign.errors import DataFormatError, RecalignError

runner = CliRunner()


def test_recommend_json(data_dir):
    result = runner.invoke(
        app,
        [
            "recommend",
            str(data_dir),
            "--history",
            "Green Nail Polish",
            "--history",
            "1",
            "-k",
            "2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [i["item_id"] for i in body["items"]] == [2, 4]
    assert [h["item_id"] for h in body["history"]] == [3, 1]


def test_recommend_table_reports_fuzzy_matches(data_dir):
    result = runner.invoke(
        app, ["recommend", str(data_dir), "--history", "Green Nail Polsh", "-k", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "Green Nail Polish" in result.stdout  # the fuzzy match is shown
    assert "fuzzy" in result.stdout
    assert "Red Velvet Lipstick" in result.stdout  # the recommendation (item 1)


def test_recommend_users_file(data_dir, tmp_path):
    users = tmp_path / "users.jsonl"
    users.write_text(
        json.dumps({"user_id": "a", "history": [3, 1]})
        + "\n\n"
        + json.dumps({"user_id": "b", "history": ["Argan Hair Oil"]})
        + "\n"
    )
    out = tmp_path / "out" / "recs.jsonl"
    result = runner.invoke(
        app, ["recommend", str(data_dir), "--users", str(users), "--out", str(out), "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["user_id"] for r in rows] == ["a", "b"]
    assert rows[0]["items"] == [2, 4, 5]
    assert rows[1]["items"] == [3, 1, 2]
    assert rows[1]["scores"] == [4.0, 3.0, 2.0]
    assert rows[0]["texts"][0] == "Blue Waterproof Mascara"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"history": [1]}\n{not json\n', "line 2"),
        ('{"history": [1, 999]}\n', "999"),
        ('{"user_id": 1}\n', "history"),
        ('{"history": []}\n', "empty history"),
        ("\n", "no users"),
    ],
)
def test_recommend_users_file_errors_name_the_line(data_dir, tmp_path, content, needle):
    users = tmp_path / "users.jsonl"
    users.write_text(content)
    result = runner.invoke(
        app, ["recommend", str(data_dir), "--users", str(users), "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, DataFormatError)
    assert needle in str(result.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [
        [],  # neither --history nor --users
        ["--history", "1", "--users", "x.jsonl"],
        ["--users", "x.jsonl"],  # no --out
    ],
)
def test_recommend_usage_errors(data_dir, args):
    result = runner.invoke(app, ["recommend", str(data_dir), *args])
    assert isinstance(result.exception, RecalignError)


def test_missing_run_dir_fails_before_serving(tmp_path):
    for command in ("recommend", "serve"):
        args = [command, str(tmp_path / "missing")] + (
            ["--history", "1"] if command == "recommend" else []
        )
        result = runner.invoke(app, args)
        assert isinstance(result.exception, RecalignError)
        assert "does not exist" in str(result.exception)


def test_corrupt_run_dir_fails_before_serving(tmp_path):
    (tmp_path / "manifest.json").write_text("{")
    result = runner.invoke(app, ["serve", str(tmp_path)])
    assert isinstance(result.exception, RecalignError)
    assert "corrupt" in str(result.exception)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_is_loopback(host, loopback):
    assert _is_loopback(host) is loopback


def test_serve_defaults_to_loopback():
    import inspect

    from recalign.cli.serve import serve

    assert inspect.signature(serve).parameters["host"].default.default == "127.0.0.1"


def test_recommend_part_of_a_title_says_what_it_matched(data_dir):
    result = runner.invoke(
        app, ["recommend", str(data_dir), "--history", "face", "-k", "2"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    # "Rose Face Cream" (item 6) is taken, and the user learns there was a choice
    assert "'face' -> 'Rose Face Cream'" in result.stdout
    assert "part of its title" in result.stdout and "best of 2 matching items" in result.stdout
    assert "score: the item's number of interactions" in result.stdout


def test_history_has_no_short_flag():
    import inspect

    from recalign.cli.serve import recommend

    history = inspect.signature(recommend).parameters["history"].default
    assert "-h" not in history.param_decls  # -h is help, for every command


def test_recommend_a_baseline_of_a_pipeline_run(tmp_path):
    pytest.importorskip("recalign.baselines.run")
    from tests.serving.conftest import make_pipeline_dir

    run = make_pipeline_dir(tmp_path / "run")
    result = runner.invoke(
        app, ["recommend", str(run), "--model", "pop", "--history", "3", "-k", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert [i["item_id"] for i in json.loads(result.stdout)["items"]] == [1, 2, 4]
    result = runner.invoke(app, ["serve", str(run), "--model", "sasrec"])
    assert isinstance(result.exception, RecalignError)
    assert "it has: pop" in str(result.exception)


@pytest.mark.data
def test_readme_recommend_on_beauty_matches_a_partial_title(real_data_dir, tmp_path):
    """README: `recalign recommend runs/beauty --history "OPI Nail Lacquer" -k 10`."""
    from recalign.data.prepare import prepare_dataset

    data = tmp_path / "beauty"
    prepare_dataset("amazon2014-beauty", data, real_data_dir / "amazon2014/beauty")
    result = runner.invoke(
        app,
        ["recommend", str(data), "--history", "OPI Nail Lacquer", "-k", "10", "--json"],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    (entry,) = body["history"]
    assert entry["match"] == "partial" and entry["matches"] > 30
    assert entry["text"].lower().startswith("opi nail lacquer")
    assert len(body["items"]) == 10
