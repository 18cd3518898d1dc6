from __future__ import annotations

import math

import pytest

from recalign.errors import ConfigError
from recalign.evaluation.metrics import paired_difference
from recalign.pipeline.ablate import run_ablation
from recalign.pipeline.config import parse_config


def test_paired_difference_over_shared_users():
    reference = {1: {"k": 0.0}, 2: {"k": 1.0}, 3: {"k": 0.5}}
    variant = {1: {"k": 1.0}, 2: {"k": 1.0}, 3: {"k": 0.5}, 4: {"k": 1.0}}  # 4: not shared
    mean, low, high = paired_difference(variant, reference, "k", n_boot=500, seed=0)
    assert mean == pytest.approx(1 / 3)
    assert 0.0 <= low <= mean <= high <= 1.0


def test_identical_variants_have_a_zero_width_interval():
    same = {u: {"k": u / 10} for u in range(20)}
    assert paired_difference(same, same, "k") == (0.0, 0.0, 0.0)


def test_no_shared_users_is_nan():
    mean, _, _ = paired_difference({1: {"k": 1.0}}, {2: {"k": 0.0}}, "k")
    assert math.isnan(mean)


def test_presets_are_required(tmp_path):
    with pytest.raises(ConfigError, match="at least one preset"):
        run_ablation(parse_config({}), tmp_path, [])
