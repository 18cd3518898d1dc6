from __future__ import annotations

import pytest

from recalign.errors import RecalignError
from recalign.pipeline.cache import run_stage, stage_key


def test_key_depends_on_config_and_upstream():
    base = stage_key("s", {"a": 1}, {"data": "x"})
    assert base == stage_key("s", {"a": 1}, {"data": "x"})
    assert base != stage_key("s", {"a": 2}, {"data": "x"})
    assert base != stage_key("s", {"a": 1}, {"data": "y"})
    assert base != stage_key("t", {"a": 1}, {"data": "x"})


def test_completed_stage_is_reused_and_changed_key_reruns(tmp_path):
    calls = []

    def fn(directory, resume):
        calls.append(resume)
        (directory / "out.txt").write_text("done")
        return {"n": len(calls)}

    first = run_stage("s", tmp_path / "s", "k1", fn)
    again = run_stage("s", tmp_path / "s", "k1", fn)
    assert not first.reused and again.reused
    assert again.info == {"n": 1}
    changed = run_stage("s", tmp_path / "s", "k2", fn)
    assert not changed.reused
    assert calls == [False, False]


def test_interrupted_stage_resumes_and_stale_files_are_cleared(tmp_path):
    def boom(directory, resume):
        (directory / "partial.txt").write_text("half")
        raise RecalignError("killed")

    with pytest.raises(RecalignError):
        run_stage("train", tmp_path / "t", "k", boom)
    seen = {}

    def finish(directory, resume):
        seen["resume"] = resume
        seen["partial"] = (directory / "partial.txt").exists()

    run_stage("train", tmp_path / "t", "k", finish)
    assert seen == {"resume": True, "partial": True}

    # A different key never resumes from another configuration's leftovers.
    run_stage("train", tmp_path / "t", "other", finish)
    assert seen == {"resume": False, "partial": False}
