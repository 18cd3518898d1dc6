"""Defaults sized to the schedule: the validation subset, the rate shown, the time check."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from recalign.errors import ConfigError
from recalign.training.callbacks import EvalTimeCallback, format_rate
from recalign.training.config import (
    EVAL_SPEEDUP,
    MIN_EVAL_SAMPLES,
    eval_sample_limit,
    make_config,
)


def test_auto_validation_subset_takes_a_tenth_of_the_training_time():
    config = make_config({})
    assert config.max_eval_samples == "auto"
    n = eval_sample_limit(config)
    # Validation of n samples at EVAL_SPEEDUP x the training rate, against eval_steps steps.
    share = (n / EVAL_SPEEDUP) / (config.eval_steps * config.batch_size)
    assert share == pytest.approx(config.eval_fraction, rel=0.01)
    assert eval_sample_limit(config, processes=2) == 2 * n  # each process validates half
    bigger = make_config({"batch_size": 8, "grad_accum": 4})
    assert eval_sample_limit(bigger) == 2 * n
    assert eval_sample_limit(make_config({"eval_steps": 2})) == MIN_EVAL_SAMPLES


def test_explicit_validation_subsets():
    assert eval_sample_limit(make_config({"max_eval_samples": 50})) == 50
    assert eval_sample_limit(make_config({"max_eval_samples": None})) is None
    with pytest.raises(ConfigError, match="max_eval_samples"):
        make_config({"max_eval_samples": 0})
    with pytest.raises(ConfigError, match="max_eval_samples"):
        make_config({"max_eval_samples": "most"})


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(0.38, "0.38"), (0.004, "0.004"), (7.25, "7.25"), (71.44, "71.4"), (250.4, "250")],
)
def test_rates_keep_their_significant_digits(rate, shown):
    assert format_rate(rate) == shown


def _state():
    return SimpleNamespace(is_world_process_zero=True)


def test_slow_validation_is_reported_once(caplog, monkeypatch):
    clock = iter([0.0, 100.0, 200.0])
    monkeypatch.setattr("recalign.training.callbacks.time.perf_counter", lambda: next(clock))
    callback = EvalTimeCallback(fraction=0.1, min_seconds=10)
    callback.on_train_begin(None, _state(), None)
    with caplog.at_level(logging.WARNING, logger="recalign.training.callbacks"):
        callback.on_evaluate(None, _state(), None, metrics={"eval_runtime": 15.0})
        assert not caplog.records  # 15% of 100 s: within twice the aim
        callback.on_evaluate(None, _state(), None, metrics={"eval_runtime": 60.0})
    assert "validation took 60s, 60%" in caplog.text and "max_eval_samples" in caplog.text
