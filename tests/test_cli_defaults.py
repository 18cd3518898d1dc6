"""Options that set a config field show and use the field's default: one place to change it."""

from __future__ import annotations

import click
import pytest
import typer

from recalign.cli import app
from recalign.cli.options import default
from recalign.evaluation.options import EvalOptions
from recalign.pipeline.config import ModelSection, SamplesSection
from recalign.samples.mixture import DEFAULT_MAX_HISTORY, MixtureConfig
from recalign.serving.limits import ServeCapacity, ServeLimits
from recalign.training.config import TrainConfig


def _command(*path: str) -> click.Command:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _option(command: click.Command, flag: str) -> click.Parameter:
    return next(p for p in command.params if flag in p.opts)


# (command, flag, model, field): the option's default is the field's.
SAME_DEFAULT = [
    (("evaluate", "run"), "--protocol", EvalOptions, "protocol"),
    (("evaluate", "run"), "--split", EvalOptions, "split"),
    (("evaluate", "run"), "--k", EvalOptions, "k"),
    (("evaluate", "run"), "--beams", EvalOptions, "num_beams"),
    (("evaluate", "run"), "--batch-size", EvalOptions, "batch_size"),
    (("evaluate", "run"), "--num-candidates", EvalOptions, "num_candidates"),
    (("evaluate", "run"), "--num-negatives", EvalOptions, "num_negatives"),
    (("evaluate", "run"), "--which", EvalOptions, "which"),
    (("evaluate", "run"), "--seed", EvalOptions, "seed"),
    (("baseline",), "--k", EvalOptions, "k"),
    (("baseline",), "--split", EvalOptions, "split"),
    (("train",), "--model", ModelSection, "spec"),
    (("samples", "generate"), "--workers", SamplesSection, "workers"),
    (("serve",), "--max-history", ServeLimits, "max_history"),
    (("serve",), "--max-k", ServeLimits, "max_k"),
    (("serve",), "--max-fuzzy-texts", ServeLimits, "max_fuzzy_texts"),
    (("serve",), "--batch-window-ms", ServeCapacity, "batch_window_ms"),
    (("serve",), "--max-batch", ServeCapacity, "max_batch"),
    (("serve",), "--max-queue", ServeCapacity, "max_queue"),
    (("serve",), "--request-timeout", ServeCapacity, "request_timeout_s"),
    (("serve",), "--read-timeout", ServeCapacity, "read_timeout_s"),
    (("serve",), "--keep-alive", ServeCapacity, "keep_alive_s"),
    (("serve",), "--max-connections", ServeCapacity, "max_connections"),
]


@pytest.mark.parametrize(("path", "flag", "model", "field"), SAME_DEFAULT)
def test_an_option_defaults_to_its_field(path, flag, model, field):
    assert _option(_command(*path), flag).default == default(model, field)


# (command, flag, model, field): given, the option overrides the field of a config file;
# not given, None, and the help says what applies.
OVERRIDES = [
    (("train",), "--max-steps", TrainConfig, "max_steps"),
    (("train",), "--epochs", TrainConfig, "epochs"),
    (("train",), "--max-train-samples", TrainConfig, "max_train_samples"),
    (("train",), "--max-eval-samples", TrainConfig, "max_eval_samples"),
    (("samples", "generate"), "--max-history", MixtureConfig, "max_history"),
    (("samples", "generate"), "--item-repr", MixtureConfig, "item_repr"),
    (("evaluate", "run"), "--max-history", MixtureConfig, "max_history"),
]


@pytest.mark.parametrize(("path", "flag", "model", "field"), OVERRIDES)
def test_an_override_names_the_fields_default(path, flag, model, field):
    option = _option(_command(*path), flag)
    assert option.default is None
    shown = "none" if default(model, field) is None else str(default(model, field))
    assert option.help.endswith(f", else {shown}.")


def test_bounds_come_from_the_model():
    assert _option(_command("evaluate", "run"), "--max-source-length").min == 8
    assert _option(_command("samples", "generate"), "--max-history").min == 1
    assert _option(_command("serve"), "--max-body-bytes").min == 256
    assert _option(_command("serve"), "--request-timeout").min == 0.001


def test_the_history_length_is_the_one_default():
    assert default(MixtureConfig, "max_history") == DEFAULT_MAX_HISTORY
    assert "else 20." in _option(_command("samples", "generate"), "--max-history").help


def test_the_baseline_help_names_every_registered_baseline():
    from recalign.baselines.registry import BASELINES

    help_text = _command("baseline").params[0].help
    named = [part.split(" ")[0].strip(".") for part in help_text.split(", ")]
    assert named == list(BASELINES)


def test_the_server_and_the_app_default_to_the_same_capacity():
    """`create_app`, `ServerLimits` and the micro-batcher take their defaults from
    `ServeCapacity` too, so a library caller gets what `recalign serve` gives."""
    import inspect

    from recalign.serving.app import create_app
    from recalign.serving.batching import MicroBatcher
    from recalign.serving.server import ServerLimits

    capacity = ServeCapacity()
    app_defaults = inspect.signature(create_app).parameters
    for name in ("batch_window_ms", "max_batch", "max_queue", "request_timeout_s"):
        assert app_defaults[name].default == getattr(capacity, name)
    assert app_defaults["read_timeout_s"].default == capacity.read_timeout_s
    batcher = inspect.signature(MicroBatcher).parameters
    assert batcher["max_batch"].default == capacity.max_batch
    assert batcher["window_ms"].default == capacity.batch_window_ms
    server = ServerLimits()
    assert (server.max_connections, server.keep_alive_s, server.header_timeout_s) == (
        capacity.max_connections,
        capacity.keep_alive_s,
        capacity.read_timeout_s,
    )
