"""`evaluate_run` / `recalign evaluate` on a run directory with a tiny model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recalign.cli import app as root
from recalign.cli.evaluate import app
from recalign.errors import ConfigError, IncompatibleArtifactError, RecalignError
from recalign.evaluation.llm import EvalOptions, evaluate_run, sampled_candidate_lists
from recalign.evaluation.outputs import metrics_from_predictions, read_predictions
from recalign.validation import validate
from tests.factories import tiny_llm_run
from tests.inference.conftest import write_fixture_data

pytest.importorskip("torch")


def test_retrieval_predictions_and_metrics(run_dir, data_dir, tmp_path):
    metrics = evaluate_run(run_dir, data_dir, tmp_path / "ev", EvalOptions(k=10, num_beams=10))
    predictions = read_predictions(tmp_path / "ev")
    assert metrics["users"] == len(predictions) == 6
    assert metrics["protocol"] == "retrieval" and metrics["exclude_history"] is True
    sequences = pl.read_parquet(data_dir / "sequences.parquet")
    items = dict(zip(sequences["user_id"], sequences["items"], strict=True))
    for record in predictions:
        seq = items[record["user_id"]]
        assert record["target"] == seq[-1]
        assert len(record["ranked"]) == 10 == len(set(record["ranked"]))
        assert set(record["ranked"]) <= set(range(1, 21))
        assert not set(record["ranked"]) & set(seq[:-1])  # the history is banned
        assert record["scores"] == sorted(record["scores"], reverse=True)
    # Recomputing from predictions.jsonl gives metrics.json.
    assert metrics_from_predictions(tmp_path / "ev") == metrics
    stored = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert stored == metrics
    for key in ("hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10", "mrr"):
        assert key in metrics["metrics"] and len(metrics["intervals"][key]) == 2


def test_metrics_by_hand(run_dir, data_dir, tmp_path):
    metrics = evaluate_run(run_dir, data_dir, tmp_path / "ev", EvalOptions(k=10, num_beams=10))
    ranks = [
        p["ranked"].index(p["target"]) + 1 if p["target"] in p["ranked"] else 0
        for p in read_predictions(tmp_path / "ev")
    ]
    hit10 = np.mean([0 < r <= 10 for r in ranks])
    ndcg10 = np.mean([1 / np.log2(r + 1) if 0 < r <= 10 else 0.0 for r in ranks])
    mrr = np.mean([1 / r if r else 0.0 for r in ranks])
    assert metrics["metrics"]["hit@10"] == pytest.approx(hit10)
    assert metrics["metrics"]["ndcg@10"] == pytest.approx(ndcg10)
    assert metrics["metrics"]["mrr"] == pytest.approx(mrr)


@pytest.mark.slow  # ranx compiles with numba on first use (~15 s)
def test_metrics_agree_with_ranx(run_dir, data_dir, tmp_path):
    ranx = pytest.importorskip("ranx")
    metrics = evaluate_run(run_dir, data_dir, tmp_path / "ev", EvalOptions(k=10, num_beams=10))
    predictions = read_predictions(tmp_path / "ev")
    qrels = ranx.Qrels({str(p["user_id"]): {str(p["target"]): 1} for p in predictions})
    run = ranx.Run(
        {
            str(p["user_id"]): {
                str(i): float(len(p["ranked"]) - r) for r, i in enumerate(p["ranked"])
            }
            for p in predictions
        }
    )
    oracle = ranx.evaluate(
        qrels, run, ["hit_rate@10", "ndcg@10", "ndcg@5", "mrr"], make_comparable=True
    )
    assert metrics["metrics"]["hit@10"] == pytest.approx(oracle["hit_rate@10"])
    assert metrics["metrics"]["ndcg@10"] == pytest.approx(oracle["ndcg@10"])
    assert metrics["metrics"]["ndcg@5"] == pytest.approx(oracle["ndcg@5"])
    assert metrics["metrics"]["mrr"] == pytest.approx(oracle["mrr"])


def test_include_history_and_reference_decoder(run_dir, data_dir, tmp_path):
    fast = evaluate_run(
        run_dir, data_dir, tmp_path / "a", EvalOptions(k=5, num_beams=5, exclude_history=False)
    )
    evaluate_run(
        run_dir,
        data_dir,
        tmp_path / "b",
        EvalOptions(k=5, num_beams=5, exclude_history=False, decoder="reference"),
    )
    assert fast["exclude_history"] is False
    assert [p["ranked"] for p in read_predictions(tmp_path / "a")] == [
        p["ranked"] for p in read_predictions(tmp_path / "b")
    ]


def test_ranking_sampled_and_rating(run_dir, data_dir, tmp_path):
    ranking = evaluate_run(
        run_dir, data_dir, tmp_path / "r", EvalOptions(protocol="ranking", num_candidates=8)
    )
    for record in read_predictions(tmp_path / "r"):
        assert len(record["ranked"]) == 8 and record["target"] in record["ranked"]
    assert "hit@1" in ranking["metrics"]

    evaluate_run(
        run_dir, data_dir, tmp_path / "s", EvalOptions(protocol="sampled", num_negatives=9)
    )
    sequences = pl.read_parquet(data_dir / "sequences.parquet")
    items = dict(zip(sequences["user_id"], sequences["items"], strict=True))
    for record in read_predictions(tmp_path / "s"):
        assert len(record["ranked"]) == 10 and record["target"] in record["ranked"]
        negatives = set(record["ranked"]) - {record["target"]}
        assert not negatives & set(items[record["user_id"]])  # never an interacted item

    rating = evaluate_run(run_dir, data_dir, tmp_path / "t", EvalOptions(protocol="rating"))
    records = read_predictions(tmp_path / "t")
    assert all(1.0 <= r["prediction"] <= 5.0 for r in records)
    errors = np.array([r["prediction"] - r["rating"] for r in records])
    assert rating["metrics"]["rmse"] == pytest.approx(float(np.sqrt((errors**2).mean())))
    assert rating["metrics"]["mae"] == pytest.approx(float(np.abs(errors).mean()))


def test_sampled_candidates_are_seeded_and_shuffled():
    samples = pl.DataFrame({"user_id": [1, 2], "target_item": [5, 6]})
    seen = {1: [1, 2, 5], 2: [3, 6]}
    a = sampled_candidate_lists(samples, seen, 50, 20, seed=0)
    assert a == sampled_candidate_lists(samples, seen, 50, 20, seed=0)
    assert a != sampled_candidate_lists(samples, seen, 50, 20, seed=1)
    assert sorted(a[0]) != a[0] or a[0][0] != 5  # the target is not always first
    assert not (set(a[0]) - {5}) & {1, 2}


def test_shards_merge_to_the_whole(run_dir, data_dir, tmp_path):
    from recalign.evaluation.outputs import merge_evaluations

    options = dict(k=5, num_beams=5)
    whole = evaluate_run(run_dir, data_dir, tmp_path / "all", EvalOptions(**options))
    for shard in range(2):
        evaluate_run(
            run_dir,
            data_dir,
            tmp_path / f"s{shard}",
            EvalOptions(**options, shard=shard, num_shards=2),
        )
    merged = merge_evaluations([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    assert merged["metrics"] == whole["metrics"]
    assert merged["intervals"] == whole["intervals"]


def test_cli_evaluate_and_merge(run_dir, data_dir, tmp_path):
    runner = CliRunner()
    base = [str(run_dir), "--data", str(data_dir), "--k", "5", "--beams", "5"]
    for shard in range(2):
        result = runner.invoke(
            app,
            [
                *base,
                "--shard",
                str(shard),
                "--num-shards",
                "2",
                "--out",
                str(tmp_path / f"s{shard}"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert "hit@10" in result.output
    result = runner.invoke(
        app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["users"] == 6
    # The explicit sub-command spelling works too.
    result = runner.invoke(app, ["run", *base, "--max-users", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert len(read_predictions(tmp_path / "x")) == 2


# --- bad input -------------------------------------------------------------------------
def test_run_dir_without_a_model(run_dir, data_dir, tmp_path):
    shutil.rmtree(run_dir / "model")
    with pytest.raises(RecalignError, match=r"model/config\.json: missing"):
        evaluate_run(run_dir, data_dir, tmp_path / "ev")
    with pytest.raises(RecalignError, match="holds a 'dataset' artefact, not a run directory"):
        evaluate_run(data_dir, data_dir, tmp_path / "ev")
    with pytest.raises(RecalignError, match=r"no manifest\.json"):
        evaluate_run(tmp_path, data_dir, tmp_path / "ev")


def test_catalogue_differs(run_dir, tmp_path, texts):
    changed = list(texts[:20])
    changed[3] = "a completely different product"
    other = write_fixture_data(tmp_path / "other", changed)
    with pytest.raises(
        IncompatibleArtifactError, match=r"item 4 is 'a completely different product'"
    ):
        evaluate_run(run_dir, other, tmp_path / "ev")
    bigger = write_fixture_data(tmp_path / "bigger", texts[:21])
    with pytest.raises(IncompatibleArtifactError, match=r"item 21 .* is new"):
        evaluate_run(run_dir, bigger, tmp_path / "ev")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_users": 0}, "max_users: expected >= 1, got 0"),
        ({"protocol": "full-sort"}, "protocol: expected 'retrieval', 'ranking', 'sampled' or"),
        ({"split": "train"}, "split: expected 'test' or 'valid', got 'train'"),
        ({"shard": 1}, "give both shard and num_shards"),
    ],
)
def test_bad_options_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        validate(EvalOptions, values, "options")


def test_k_above_the_catalogue(run_dir, data_dir, tmp_path):
    with pytest.raises(ConfigError, match="above the catalogue size"):
        evaluate_run(run_dir, data_dir, tmp_path / "ev", EvalOptions(k=21, num_beams=21))


def test_cli_bad_input_is_a_clear_message(run_dir, data_dir, tmp_path):
    common = [str(run_dir), "--data", str(data_dir), "--out", str(tmp_path / "e")]
    # A bound of the options model is the option's bound: a usage error naming the flag.
    result = CliRunner().invoke(root, ["evaluate", *common, "--max-users", "0"])
    assert result.exit_code == 2
    assert "Invalid value for '--max-users'" in result.output
    # What only the model can check is a ConfigError naming the options.
    result = CliRunner().invoke(app, [*common, "--shard", "1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "recalign evaluate options: give both shard and num_shards" in str(result.exception)


def test_causal_run(tmp_path, data_dir):
    run = tiny_llm_run(tmp_path / "causal", data_dir, "causal")
    metrics = evaluate_run(run, data_dir, tmp_path / "ev", EvalOptions(k=5, num_beams=5))
    assert metrics["users"] == 6
    for record in read_predictions(tmp_path / "ev"):
        assert len(set(record["ranked"])) == 5
