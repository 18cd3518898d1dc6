"""Trainer callbacks: the JSONL training log and a Ctrl-C that saves before it stops."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

logger = logging.getLogger(__name__)


def format_rate(rate: float) -> str:
    """Three significant digits below 100 (a 135M model on a CPU trains ~0.3 samples/s)."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


class JsonlLogCallback(TrainerCallback):
    """One JSON record per logging (and evaluation) step, with throughput since the last."""

    def __init__(self, path: str | Path, samples_per_step: int) -> None:
        self.path = Path(path)
        self.samples_per_step = samples_per_step
        self._last: tuple[float, int, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = (time.perf_counter(), state.global_step, state.num_input_tokens_seen)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        record: dict[str, Any] = {"step": state.global_step, "epoch": state.epoch}
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str))})
        now = time.perf_counter()
        if self._last is not None and "loss" in logs:
            then, step, tokens = self._last
            elapsed = max(now - then, 1e-9)
            record["samples_per_second"] = (
                (state.global_step - step) * self.samples_per_step / elapsed
            )
            record["input_tokens_per_second"] = (state.num_input_tokens_seen - tokens) / elapsed
            self._last = (now, state.global_step, state.num_input_tokens_seen)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


class InterruptCallback(TrainerCallback):
    """The first Ctrl-C asks the Trainer to save a checkpoint and stop after this step.

    The signal handler only sets a flag; the Trainer then saves through its own
    checkpoint code (model, optimizer, scheduler, RNG and data position), so `--resume`
    continues exactly. A second Ctrl-C restores the default handler and interrupts at once.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        logger.warning("interrupted: saving a checkpoint after this step (Ctrl-C again to abort)")
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no signal handling there
            self._previous = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class StopAtStepCallback(TrainerCallback):
    """Save and stop at a given step (how a killed run is simulated in tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


class BarProgressCallback(ProgressCallback):
    """transformers' progress bar, with the latest loss and samples/s shown *in* the bar.

    The stock callback writes every log dict as a line on stdout, which interleaves with
    the bar and pollutes the output of commands that print JSON; the full records are in
    `train_log.jsonl` anyway.
    """

    def __init__(self, samples_per_step: int) -> None:
        super().__init__()
        self.samples_per_step = samples_per_step
        self._last: tuple[float, int] | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        shown = {}
        for key in ("loss", "eval_loss"):
            if isinstance(logs.get(key), (int, float)):
                shown[key] = f"{logs[key]:.4g}"
        now = time.perf_counter()
        if "loss" in logs:
            if self._last is not None:
                then, step = self._last
                rate = (state.global_step - step) * self.samples_per_step / max(now - then, 1e-9)
                shown["samples/s"] = format_rate(rate)
            self._last = (now, state.global_step)
        if shown:
            self.training_bar.set_postfix(shown, refresh=False)


class EvalTimeCallback(TrainerCallback):
    """Warn once when validation takes far more than its intended share of the time.

    The share is measured: the evaluation's own runtime over the wall time since the
    previous evaluation ended (training steps, the checkpoint, and this evaluation).
    """

    def __init__(self, fraction: float, tolerance: float = 2.0, min_seconds: float = 30.0) -> None:
        self.fraction = fraction
        self.tolerance = tolerance
        self.min_seconds = min_seconds  # a validation this short is not worth a warning
        self._since: float | None = None
        self.warned = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._since = time.perf_counter()

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        now = time.perf_counter()
        runtime = (metrics or {}).get("eval_runtime")
        timed = isinstance(runtime, (int, float)) and runtime >= self.min_seconds
        if self._since is not None and timed and not self.warned:
            share = runtime / max(now - self._since, 1e-9)
            if share > self.tolerance * self.fraction and state.is_world_process_zero:
                self.warned = True
                logger.warning(
                    "validation took %.0fs, %.0f%% of the time since the previous one (aim: "
                    "%.0f%%): lower max_eval_samples or raise eval_steps",
                    runtime,
                    100 * share,
                    100 * self.fraction,
                )
        self._since = now
