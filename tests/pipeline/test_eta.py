"""Stage estimates: measured rates only (this run first, then this machine), rescaled
by a speed probe; the time of every stage recorded for the next estimate."""

from __future__ import annotations

import json

import pytest

from recalign.pipeline import eta
from recalign.pipeline.eta import Estimate, StageClock, Work, announce, format_seconds


@pytest.fixture
def fixed_probe(monkeypatch):
    """A probe that reports what the test sets (the machine's speed "now")."""
    speed = {"seconds": 0.1}
    monkeypatch.setattr(eta, "probe_seconds", lambda kind: speed["seconds"])
    return speed


def test_no_measurement_means_no_estimate(tmp_path, fixed_probe):
    clock = StageClock(tmp_path / "timings.json")
    estimate, probe = clock.estimate(Work("train:tiny-t5", 1000, "train"))
    assert estimate is None and probe == 0.1
    assert "no earlier timing" in announce(Work("train:tiny-t5", 1000, "train it"), None)


def test_a_rate_from_this_run_scales_with_the_work(tmp_path, fixed_probe):
    clock = StageClock(tmp_path / "timings.json")
    clock.record(Work("train:tiny-t5", 1000, "train"), seconds=50.0, probe=0.1)
    estimate, _ = clock.estimate(Work("train:tiny-t5", 2000, "train again"))
    assert estimate == Estimate(pytest.approx(100.0), "this run")
    # Measured under this run's load: a noisy probe does not rescale it.
    fixed_probe["seconds"] = 0.3
    estimate, _ = clock.estimate(Work("train:tiny-t5", 2000, "train again"))
    assert estimate.seconds == pytest.approx(100.0)
    # Another kind of stage has its own rate.
    assert clock.estimate(Work("train:flan-t5-base", 10, "train"))[0] is None


def test_rates_from_earlier_runs_are_rescaled_by_the_probe(tmp_path, fixed_probe):
    path = tmp_path / "timings.json"
    StageClock(path).record(Work("train:tiny-t5", 1000, "train"), seconds=50.0, probe=0.1)
    fixed_probe["seconds"] = 0.3  # the machine is 3x slower now (two busy loops, say)
    estimate, _ = StageClock(path).estimate(Work("train:tiny-t5", 2000, "train"))
    assert estimate.seconds == pytest.approx(300.0)


def test_rates_persist_for_later_runs_on_the_machine(tmp_path, fixed_probe):
    path = tmp_path / "cache" / "timings.json"
    StageClock(path).record(Work("eval-retrieval:tiny-t5", 500, "eval"), seconds=10.0, probe=0.2)
    later = StageClock(path)
    estimate, _ = later.estimate(Work("eval-retrieval:tiny-t5", 250, "eval"))
    # 0.02 s per unit when the probe took 0.2 s; the probe now takes 0.1 s: twice as fast.
    assert estimate.seconds == pytest.approx(2.5)
    assert estimate.source.startswith("earlier runs on this machine, last 20")
    records = json.loads(path.read_text())["records"]["eval-retrieval:tiny-t5"]
    assert len(records) == 1 and records[0]["rate"] == pytest.approx(0.02)


def test_records_of_another_version_are_ignored(tmp_path, fixed_probe):
    path = tmp_path / "timings.json"
    StageClock(path).record(Work("samples", 1, "s"), seconds=1.0, probe=0.1)
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "version": eta.HISTORY_VERSION - 1}))
    assert StageClock(path).estimate(Work("samples", 1, "s"))[0] is None


def test_history_keeps_the_newest_records(tmp_path, fixed_probe):
    clock = StageClock(tmp_path / "timings.json")
    for seconds in range(1, 10):
        clock.record(Work("samples", 1, "s"), seconds=float(seconds), probe=0.1)
    kept = json.loads((tmp_path / "timings.json").read_text())["records"]["samples"]
    assert [r["rate"] for r in kept] == [5.0, 6.0, 7.0, 8.0, 9.0]


def test_an_unwritable_or_broken_history_never_fails_a_run(tmp_path, fixed_probe):
    broken = tmp_path / "timings.json"
    broken.write_text("{not json")
    clock = StageClock(broken)
    assert clock.estimate(Work("samples", 1, "s"))[0] is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    clock = StageClock(blocked / "timings.json")  # its parent is a file: cannot be written
    clock.record(Work("samples", 1, "s"), seconds=1.0, probe=0.1)
    assert clock.estimate(Work("samples", 2, "s"))[0].seconds == pytest.approx(2.0)


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "mine"))
    assert eta.StageClock().path == tmp_path / "mine" / eta.HISTORY_FILE
    monkeypatch.delenv("RECALIGN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert eta.StageClock().path == tmp_path / "xdg" / "recalign" / eta.HISTORY_FILE


@pytest.mark.parametrize("kind", ["python", "torch"])
def test_the_probe_is_short(kind):
    assert 0 < eta.probe_seconds(kind) < 5


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.24, "4.2 s"),
        (42.4, "42 s"),
        (130, "2 min 10 s"),
        (3599.6, "1 h 00 min"),
        (7500, "2 h 05 min"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
