"""Manifests cover their files by size and sha256; directories are committed whole, by
one writer at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from recalign.artifacts import (
    ArtifactBusyError,
    ArtifactError,
    ArtifactFileError,
    EvaluationManifest,
    SamplesDir,
    hashing,
    open_manifest,
    output_lock,
    read_manifest,
    seal,
    staged_output,
)
from recalign.errors import DataFormatError


def _evaluation(directory, **files: str):
    """A committed evaluation directory holding `files` (name -> text)."""
    with staged_output(directory, EvaluationManifest) as staging:
        for name, text in files.items():
            (staging.path / name).write_text(text)
        staging.commit(EvaluationManifest(protocol="retrieval", split="test", model="m", users=1))
    return directory


def test_the_manifest_records_every_file_and_is_written_last(tmp_path):
    out = _evaluation(tmp_path / "e", **{"metrics.json": "{}", "predictions.jsonl": "x\n"})
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["format"] == 2 and raw["kind"] == "evaluation"
    assert set(raw["files"]) == {"metrics.json", "predictions.jsonl"}
    assert raw["files"]["predictions.jsonl"]["size"] == 2
    assert len(raw["files"]["metrics.json"]["sha256"]) == 64
    assert open_manifest(out).content_hash == raw["content_hash"]


def test_a_changed_file_is_refused_naming_it_and_the_fix(tmp_path):
    out = _evaluation(tmp_path / "e", **{"metrics.json": "{}", "predictions.jsonl": "abc\n"})
    (out / "predictions.jsonl").write_text("xyz\n")  # same size: only the hash tells
    with pytest.raises(ArtifactFileError) as error:
        open_manifest(out)
    assert error.value.path == out / "predictions.jsonl"
    assert "sha256 differs" in str(error.value) and "evaluate again" in str(error.value)
    assert isinstance(error.value, DataFormatError)  # damaged files share one error type

    (out / "predictions.jsonl").write_text("ab")  # cut short
    with pytest.raises(ArtifactFileError, match=r"predictions\.jsonl: not the file .* 2 bytes"):
        open_manifest(out)
    (out / "predictions.jsonl").unlink()
    with pytest.raises(ArtifactFileError, match=r"predictions\.jsonl: missing"):
        open_manifest(out)


def test_an_edited_manifest_is_refused(tmp_path):
    out = _evaluation(tmp_path / "e", **{"metrics.json": "{}", "predictions.jsonl": "x\n"})
    raw = json.loads((out / "manifest.json").read_text())
    raw["files"]["metrics.json"]["sha256"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactFileError, match=r"manifest\.json: edited"):
        open_manifest(out)
    (out / "manifest.json").write_text('{"kind": "evaluation", ')
    with pytest.raises(ArtifactFileError, match=r"manifest\.json.*not valid JSON"):
        read_manifest(out)


def test_an_old_manifest_says_to_make_the_artefact_again(tmp_path):
    out = tmp_path / "samples"
    out.mkdir()
    (out / "train.parquet").write_bytes(b"")
    (out / "manifest.json").write_text(json.dumps({"kind": "samples", "data_hash": "abc"}))
    with pytest.raises(ArtifactError, match="older recalign") as error:
        SamplesDir.open(out)
    assert "recalign samples generate" in str(error.value)


def test_a_directory_without_a_manifest_is_not_an_artefact(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.parquet").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"no manifest\.json: not a samples directory"):
        SamplesDir.open(tmp_path / "half")


def test_a_failed_write_leaves_the_old_artefact_and_no_temporary_directory(tmp_path):
    out = _evaluation(tmp_path / "e", **{"metrics.json": "{}", "predictions.jsonl": "old\n"})
    with pytest.raises(RuntimeError), staged_output(out, EvaluationManifest) as staging:
        (staging.path / "predictions.jsonl").write_text("new, half written")
        raise RuntimeError("killed")
    assert (out / "predictions.jsonl").read_text() == "old\n"
    open_manifest(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


def test_a_commit_replaces_the_whole_directory(tmp_path):
    out = _evaluation(tmp_path / "e", **{"metrics.json": "{}", "stale.txt": "from before"})
    _evaluation(out, **{"metrics.json": '{"a": 1}', "predictions.jsonl": "new\n"})
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "metrics.json",
        "predictions.jsonl",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]
    open_manifest(out)


def test_temporary_directories_are_unique_and_a_killed_writers_are_tidied(tmp_path):
    out = tmp_path / "e"
    names = set()
    for _ in range(3):
        with pytest.raises(RuntimeError), staged_output(out, EvaluationManifest) as staging:
            names.add(staging.path.name)
            raise RuntimeError
    assert len(names) == 3 and all(n.startswith(".e.tmp-") for n in names)
    # A writer killed between its two renames left the old artefact aside.
    old = _evaluation(tmp_path / "old", **{"metrics.json": "{}"})
    old.rename(tmp_path / ".e.old-123-abc")
    (tmp_path / ".e.tmp-123-abc").mkdir()
    with staged_output(out, EvaluationManifest):
        assert (out / "metrics.json").is_file()  # put back before anything else
        assert not (tmp_path / ".e.tmp-123-abc").exists()


def test_a_directory_of_other_files_is_not_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with (
        pytest.raises(ArtifactError, match=r"not an evaluation artefact .*notes\.txt"),
        staged_output(tmp_path / "mine", EvaluationManifest),
    ):
        pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path):
    out = tmp_path / "e"
    with output_lock(out):
        started = time.perf_counter()
        with (
            pytest.raises(
                ArtifactBusyError, match=rf"being written by another process \(pid {os.getpid()}"
            ),
            staged_output(out, EvaluationManifest),
        ):
            pass
        assert time.perf_counter() - started < 1
    with output_lock(out):  # released
        pass
    assert not (tmp_path / ".e.lock").exists()


def test_the_lock_of_a_killed_writer_is_free(tmp_path):
    out = tmp_path / "e"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from recalign.artifacts import output_lock\n"
            f"with output_lock({str(out)!r}):\n"
            "    print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ArtifactBusyError, match=f"pid {holder.pid}"), output_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # the kernel dropped the dead process's lock
        pass


def test_hashes_are_cached_by_file_version(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    calls = []
    real = hashing.sha256_stream
    monkeypatch.setattr(hashing, "sha256_stream", lambda p: calls.append(p) or real(p))
    monkeypatch.setattr(hashing, "_memo", {})
    first = hashing.file_record(path)
    assert hashing.file_record(path) == first and len(calls) == 1
    monkeypatch.setattr(hashing, "_memo", {})  # another process: the on-disk cache answers
    assert hashing.file_record(path) == first and len(calls) == 1
    os.utime(path, ns=(1, 1))  # the same bytes, touched: hashed again, the same hash
    assert hashing.file_record(path) == first and len(calls) == 2
    path.write_bytes(b"b" * 1000)  # rewritten, same size
    assert hashing.file_record(path).sha256 != first.sha256 and len(calls) == 3


def test_seal_covers_only_what_the_kind_covers(tmp_path):
    from recalign.artifacts import RunManifest

    run = tmp_path / "run"
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-1" / "w").write_text("rotates")
    (run / "model").mkdir()
    (run / "model" / "w").write_text("best")
    (run / "train_log.jsonl").write_text("{}\n")
    fields = {"model": {}, "family": "seq2seq", "prompt": _prompt()}
    sealed = seal(run, RunManifest(**fields))
    assert set(sealed.files) == {"model/w"}


def _prompt():
    from recalign.artifacts import PromptRecord

    return PromptRecord(
        item_repr="title", max_history=5, id_seed=0, separator=", ", tasks=[], max_source_length=64
    )


def test_train_and_run_hold_their_output_locks(tmp_path):
    """A second `recalign train --out` of one run, or a second `recalign run` into one
    directory, fails at once, before reading anything."""
    pytest.importorskip("torch")
    from recalign.pipeline.config import parse_config
    from recalign.pipeline.run import run_pipeline
    from recalign.training.run import train

    with output_lock(tmp_path / "run"), pytest.raises(ArtifactBusyError, match="being written"):
        train(tmp_path / "no-data", tmp_path / "no-samples", "tiny-t5", tmp_path / "run")
    config = parse_config({"name": "x", "data": {"name": "synthetic"}})
    with output_lock(tmp_path / "pipe"), pytest.raises(ArtifactBusyError, match="being written"):
        run_pipeline(config, tmp_path / "pipe")
    assert not (tmp_path / "run").exists() and not (tmp_path / "pipe").exists()
