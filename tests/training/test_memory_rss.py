"""Peak RSS of a whole training run does not grow with the number of samples (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import TINY_CAUSAL, make_dataset, make_samples

RUN = """
import json, resource, sys
from recalign.training.config import make_config
from recalign.training.run import train
data, samples, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
config = make_config({"max_steps": 2, "batch_size": 8, "eval_steps": 2, "vocab_size": 300,
                      "max_eval_samples": 16, "model_overrides": overrides})
result = train(data, samples, "tiny-causal", out, config=config, progress=False)
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "steps": result.steps}))
"""


@pytest.mark.slow
def test_peak_rss_is_flat_from_20k_to_200k_samples(tmp_path):
    """Whole-split tokenisation added ~1 GB at 200k samples here; streaming adds MBs."""
    peaks = {}
    for users in (6_000, 60_000):
        root = tmp_path / str(users)
        dataset = make_dataset(root / "data", users=users, items=500)
        samples = make_samples(dataset, root / "samples", family="causal")
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN,
                str(root / "data"),
                str(samples),
                str(root / "run"),
                json.dumps(TINY_CAUSAL),
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["steps"] == 2
        rows = json.loads((root / "run" / "manifest.json").read_text())["train_samples"]
        peaks[rows] = result["rss_mb"]
    (small, rss_small), (large, rss_large) = sorted(peaks.items())
    assert large >= 9 * small
    assert rss_large < 1.3 * rss_small, peaks
