"""predictions.jsonl + metrics.json: layout, round trip, sharded merge, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recalign.constants import MAE, METRICS_FILE, PREDICTIONS_FILE, RANKING_METRICS, RMSE
from recalign.errors import (
    ConfigError,
    DataFormatError,
    IncompatibleArtifactError,
    RecalignError,
)
from recalign.evaluation.outputs import (
    merge_evaluations,
    metrics_from_predictions,
    read_metrics,
    read_predictions,
    write_evaluation,
)

OPTIONS = {"protocol": "retrieval", "split": "test", "model": "pop", "exclude_history": True}


def ranking_predictions(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for user in rng.permutation(np.arange(1, n + 1)):
        ranked = rng.choice(np.arange(1, 40), size=10, replace=False)
        target = int(rng.choice(ranked)) if rng.random() < 0.4 else 40 + int(rng.integers(5))
        out.append(
            {
                "user_id": user,  # numpy ints, as models produce them
                "target": target,
                "ranked": ranked,
                "scores": np.sort(rng.random(10))[::-1],
            }
        )
    return out


def test_write_evaluation_layout(tmp_path):
    preds = [
        {"user_id": 1, "target": 3, "ranked": [5, 4, 3], "scores": [0.9, 0.5, 0.1]},
        {"user_id": 2, "target": 7, "ranked": [1, 2, 3], "scores": [3.0, 2.0, 1.0]},
    ]
    result = write_evaluation(tmp_path, preds, **OPTIONS, extra={"k": 10}, n_boot=50)
    on_disk = json.loads((tmp_path / METRICS_FILE).read_text())
    assert result == on_disk
    assert on_disk["protocol"] == "retrieval"
    assert on_disk["users"] == 2
    assert on_disk["exclude_history"] is True
    assert on_disk["template"] is None
    assert on_disk["k"] == 10
    assert on_disk["bootstrap"] == {"resamples": 50, "confidence": 0.95, "seed": 0}
    assert list(on_disk["metrics"]) == list(RANKING_METRICS)
    assert on_disk["metrics"]["hit@5"] == pytest.approx(0.5)
    assert on_disk["metrics"]["ndcg@5"] == pytest.approx(0.25)
    assert on_disk["metrics"]["mrr"] == pytest.approx(1 / 6)
    assert set(on_disk["intervals"]) == set(RANKING_METRICS)
    lines = (tmp_path / PREDICTIONS_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == preds


def test_round_trip_from_predictions(tmp_path):
    written = write_evaluation(tmp_path, ranking_predictions(300), **OPTIONS, n_boot=200, seed=4)
    assert metrics_from_predictions(tmp_path) == written
    assert metrics_from_predictions(tmp_path / PREDICTIONS_FILE) == read_metrics(tmp_path)
    # Explicit options override the stored ones.
    other = metrics_from_predictions(tmp_path, model="other", n_boot=0)
    assert other["model"] == "other" and other["intervals"] == {}
    assert other["metrics"] == written["metrics"]


def test_numpy_values_are_written_as_plain_json(tmp_path):
    write_evaluation(tmp_path, ranking_predictions(5), **OPTIONS, n_boot=10)
    record = read_predictions(tmp_path)[0]
    assert isinstance(record["user_id"], int)
    assert all(isinstance(i, int) for i in record["ranked"])


def test_rating_predictions(tmp_path):
    preds = [
        {"user_id": 1, "item": 4, "rating": 5.0, "prediction": 4.0},
        {"user_id": 2, "item": 9, "rating": 1.0, "prediction": 3.0},
        {"user_id": 3, "item": 2, "rating": 3.0, "prediction": 3.0},
    ]
    options = {**OPTIONS, "protocol": "rating", "exclude_history": None}
    result = write_evaluation(tmp_path, preds, **options, n_boot=100)
    assert result["metrics"][RMSE] == pytest.approx(np.sqrt(5 / 3))
    assert result["metrics"][MAE] == pytest.approx(1.0)
    assert metrics_from_predictions(tmp_path) == result


def test_merge_of_shards_equals_unsharded(tmp_path):
    preds = ranking_predictions(400, seed=1)
    extra = {"k": 10}
    whole = write_evaluation(tmp_path / "whole", preds, **OPTIONS, extra=extra, n_boot=300)
    shards = []
    for shard in range(3):
        part = [p for p in preds if int(p["user_id"]) % 3 == shard]
        directory = tmp_path / f"shard{shard}"
        write_evaluation(directory, part, **OPTIONS, extra={**extra, "shard": shard}, n_boot=300)
        shards.append(directory)
    merged = merge_evaluations(shards, tmp_path / "merged")
    assert merged["metrics"] == whole["metrics"]
    assert merged["intervals"] == whole["intervals"]
    assert merged["users"] == 400
    assert merged["k"] == 10  # agreed extras are kept, per-shard ones dropped
    assert "shard" not in merged
    assert merged["merged_from"] == [str(s) for s in shards]
    assert metrics_from_predictions(tmp_path / "merged") == merged


def test_merge_rejects_overlapping_users(tmp_path):
    preds = ranking_predictions(20)
    write_evaluation(tmp_path / "a", preds[:12], **OPTIONS, n_boot=10)
    write_evaluation(tmp_path / "b", preds[8:], **OPTIONS, n_boot=10)
    with pytest.raises(IncompatibleArtifactError, match="appears in both"):
        merge_evaluations([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


@pytest.mark.parametrize("key", ["protocol", "split", "model", "exclude_history"])
def test_merge_rejects_mismatched_shards(tmp_path, key):
    preds = ranking_predictions(20)
    changed = {"protocol": "ranking", "split": "valid", "model": "sasrec", "exclude_history": False}
    write_evaluation(tmp_path / "a", preds[:10], **OPTIONS, n_boot=10)
    write_evaluation(tmp_path / "b", preds[10:], **{**OPTIONS, key: changed[key]}, n_boot=10)
    with pytest.raises(IncompatibleArtifactError, match=f"{key} differs"):
        merge_evaluations([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


def test_bad_predictions_are_clear_errors(tmp_path):
    with pytest.raises(DataFormatError, match="'ranked' is missing"):
        write_evaluation(tmp_path, [{"user_id": 1, "target": 3}], **OPTIONS)
    with pytest.raises(DataFormatError, match="more than one prediction"):
        write_evaluation(
            tmp_path, [{"user_id": 1, "target": 3, "ranked": [3]}] * 2, **OPTIONS, n_boot=5
        )
    with pytest.raises(DataFormatError, match="'scores' has 1 values for 2"):
        write_evaluation(
            tmp_path, [{"user_id": 1, "target": 3, "ranked": [3, 4], "scores": [1]}], **OPTIONS
        )
    with pytest.raises(DataFormatError, match="'rating' must be a number, got None"):
        write_evaluation(
            tmp_path,
            [{"user_id": 1, "item": 3, "rating": None, "prediction": 4.2}],
            **{**OPTIONS, "protocol": "rating"},
        )
    with pytest.raises(DataFormatError, match=r"line 2.*'target' must be a number"):
        write_evaluation(
            tmp_path,
            [
                {"user_id": 1, "target": 3, "ranked": [3]},
                {"user_id": 2, "target": "x", "ranked": []},
            ],
            **OPTIONS,
        )
    with pytest.raises(ConfigError, match="unknown protocol"):
        write_evaluation(tmp_path, ranking_predictions(3), **{**OPTIONS, "protocol": "top"})
    with pytest.raises(RecalignError, match="no predictions"):
        write_evaluation(tmp_path, [], **OPTIONS)
    with pytest.raises(RecalignError, match="override"):
        write_evaluation(tmp_path, ranking_predictions(3), **OPTIONS, extra={"users": 1})
    assert not (tmp_path / METRICS_FILE).exists()


def test_malformed_predictions_file_names_the_line(tmp_path):
    path = tmp_path / PREDICTIONS_FILE
    path.write_text('{"user_id": 1, "target": 1, "ranked": [1]}\n{oops\n')
    with pytest.raises(DataFormatError, match="line 2"):
        read_predictions(path)  # a file named directly (an outside tool's) is read as it is
    with pytest.raises(RecalignError, match=r"no manifest\.json: not an evaluation"):
        read_predictions(tmp_path)  # a directory is read only as an artefact
    path.write_text('{"user_id": 1, "target": 1, "ranked": [1]}\n')
    with pytest.raises(RecalignError, match="pass protocol, split, model"):
        metrics_from_predictions(path)
    with pytest.raises(RecalignError, match=r"no predictions\.jsonl"):
        read_predictions(tmp_path / "missing")
