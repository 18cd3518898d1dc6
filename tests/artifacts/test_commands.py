"""What the commands do with an altered input and with two writers of one directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recalign.artifacts import SamplesDir
from tests.training.conftest import make_dataset

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _recalign(*args: str | Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recalign", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def test_a_dataset_whose_sequences_were_replaced_is_refused_by_samples_and_train(tmp_path):
    """Another dataset's sequences.parquet copied in: `samples generate` and `train`
    refuse, naming the file, before any work."""
    pytest.importorskip("torch")
    from recalign.samples import generate_samples

    ours = make_dataset(tmp_path / "ours", users=12, items=30, seed=0)
    make_dataset(tmp_path / "theirs", users=12, items=30, seed=1)
    generate_samples(ours, tmp_path / "samples", preset="rec-only")
    sequences = tmp_path / "ours" / "sequences.parquet"
    shutil.copyfile(tmp_path / "theirs" / "sequences.parquet", sequences)

    made = _recalign("samples", "generate", tmp_path / "ours", "--out", tmp_path / "s2")
    assert made.returncode == 2, made.stderr
    assert f"{sequences}: not the file this dataset was written with" in made.stderr
    assert "prepare it again" in made.stderr and "Traceback" not in made.stderr
    assert not (tmp_path / "s2").exists()

    args = ["--data", tmp_path / "ours", "--samples", tmp_path / "samples"]
    trained = _recalign("train", *args, "--model", "tiny-t5", "--out", tmp_path / "run")
    assert trained.returncode == 2, trained.stderr
    assert f"{sequences}: not the file this dataset was written with" in trained.stderr
    assert "Traceback" not in trained.stderr
    assert not (tmp_path / "run" / "model").exists()


# A `samples generate` that waits, mid-write, until the test lets it go: the first of
# two writers, made slow on purpose so the second surely starts while it writes.
SLOW_WRITER = """
import sys, time
from pathlib import Path
from recalign.data import load_prepared
from recalign.samples import generate_samples

data, out, gate = sys.argv[1:]
def wait(_n):
    print("writing", flush=True)
    while not Path(gate).exists():
        time.sleep(0.05)
generate_samples(load_prepared(data), out, preset="rec-only", chunk_users=8, on_progress=wait)
print("done", flush=True)
"""


def test_two_samples_generate_into_one_directory_one_fails_clearly(tmp_path):
    make_dataset(tmp_path / "data", users=24, items=30)
    out, gate = tmp_path / "samples", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(tmp_path / "data"), str(out), str(gate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert first.stdout.readline().strip() == "writing"  # holds the lock, mid-write
        started = time.perf_counter()
        second = _recalign("samples", "generate", tmp_path / "data", "--out", out)
        assert second.returncode == 2, second.stderr
        assert f"{out} is being written by another process (pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert time.perf_counter() - started < 60  # at once: it did not wait for the lock
        assert not out.exists() or not any(out.iterdir())  # nothing half-written in place
    finally:
        gate.touch()
        remaining, errors = first.communicate(timeout=120)
    assert first.returncode == 0, errors
    assert "done" in remaining
    samples = SamplesDir.open(out)  # every file is the one its manifest records
    assert samples.manifest.totals["train"] > 0
    from recalign.samples.export import read_samples

    assert read_samples(out, "train").height == samples.manifest.totals["train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "go", "samples"]
