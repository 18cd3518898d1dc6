"""Damaged files (cut short, zeroed, foreign) give an error naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from recalign.errors import DataFormatError, RecalignError
from recalign.fileio import (
    iter_jsonl,
    parquet_file,
    read_json,
    read_json_object,
    read_parquet,
    scan_parquet,
)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _zero_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : third + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def table(tmp_path) -> Path:
    path = tmp_path / "table.parquet"
    pl.DataFrame({"a": range(50_000), "b": ["text"] * 50_000}).write_parquet(path)
    return path


@pytest.mark.parametrize("reader", [read_parquet, scan_parquet, parquet_file])
def test_a_truncated_parquet_file_is_named(table, reader):
    _truncate(table)
    with pytest.raises(DataFormatError, match="not a readable Parquet file") as error:
        reader(table)
    assert error.value.path == table and str(table) in str(error.value)


def test_damage_inside_a_parquet_page_is_named(table):
    _zero_middle(table)
    with pytest.raises(DataFormatError) as error:
        read_parquet(table)
    assert error.value.path == table


def test_a_missing_file_is_a_recalign_error(tmp_path):
    for reader in (read_parquet, read_json):
        with pytest.raises(RecalignError, match="does not exist"):
            reader(tmp_path / "nothing")


def test_damaged_json_names_file_and_line(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{\n  "protocol": "retrieval",\n  "users": 1')
    with pytest.raises(DataFormatError) as error:
        read_json(path)
    assert error.value.path == path and error.value.line == 3
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        read_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="expected a JSON object"):
        read_json_object(path)


def test_damaged_json_lines_name_the_line(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"user_id": 1}\n\n{"user_id": 2}\n{"user_id": 3, "ran')
    with pytest.raises(DataFormatError) as error:
        list(iter_jsonl(path))
    assert error.value.line == 4 and "line 4" in str(error.value)


# --- the stages' readers ---------------------------------------------------------------
@pytest.fixture
def prepared(tmp_path) -> Path:
    from tests.training.conftest import make_dataset

    make_dataset(tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("name", ["sequences.parquet", "items.parquet"])
def test_a_prepared_dataset_with_a_truncated_file(prepared, name):
    from recalign.data.store import load_prepared

    _truncate(prepared / name)
    # Its size is not the one the manifest records: refused before it is parsed.
    with pytest.raises(DataFormatError, match="not the file this dataset was written") as error:
        load_prepared(prepared)
    assert error.value.path == prepared / name


def test_a_prepared_dataset_with_a_damaged_manifest(prepared):
    from recalign.data.store import load_prepared

    _truncate(prepared / "manifest.json")
    with pytest.raises(DataFormatError, match=r"manifest\.json"):
        load_prepared(prepared)


def test_training_on_a_truncated_samples_split_names_it(prepared, tmp_path):
    from recalign.data.store import load_prepared
    from recalign.training.run import train
    from tests.training.conftest import make_samples

    samples = make_samples(load_prepared(prepared), tmp_path / "samples")
    _truncate(samples / "valid.parquet")
    with pytest.raises(DataFormatError) as error:
        train(prepared, samples, "tiny-t5", tmp_path / "run", max_steps=1, progress=False)
    assert error.value.path == samples / "valid.parquet"


def test_cli_reports_a_truncated_dataset_file_without_a_traceback(prepared, tmp_path):
    import subprocess
    import sys

    _truncate(prepared / "items.parquet")
    command = ["baseline", "pop", "--data", str(prepared), "--out", str(tmp_path / "pop")]
    done = subprocess.run(
        [sys.executable, "-m", "recalign", *command], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "items.parquet: not the file this dataset was written with" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluation_outputs_and_manifests_name_damage(tmp_path):
    from recalign.artifacts import read_manifest
    from recalign.evaluation.outputs import read_metrics, read_predictions

    (tmp_path / "predictions.jsonl").write_text('{"user_id": 1, "target": 2, "ranked": [2]}\n{"us')
    with pytest.raises(DataFormatError, match="line 2"):
        read_predictions(tmp_path / "predictions.jsonl")  # a file outside an artefact
    (tmp_path / "metrics.json").write_text('{"protocol": ')
    with pytest.raises(DataFormatError, match=r"metrics\.json"):
        read_metrics(tmp_path / "metrics.json")
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "run"})[:-3])
    with pytest.raises(DataFormatError, match=r"manifest\.json"):
        read_manifest(tmp_path)
