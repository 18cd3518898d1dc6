"""Trainer callbacks: the JSONL training log, and Ctrl-C or SIGTERM that save before they stop."""

from __future__ import annotations

import json
import logging
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

logger = logging.getLogger(__name__)


def format_rate(rate: float) -> str:
    """Three significant digits below 100 (a 135M model on a CPU trains ~0.3 samples/s)."""
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.3g}"


class JsonlLogCallback(TrainerCallback):
    """One JSON record per logging (and evaluation) step, with throughput since the last.

    A resumed run (`resume` = facts about the checkpoint it starts from) first drops the
    records of steps after that checkpoint — work a kill lost, which the resumed run does
    again — then appends a marker, `{"event": "resume", "from_step": N, ...}`. So the log
    never repeats a step, and says where each resume happened.
    """

    def __init__(
        self, path: str | Path, samples_per_step: int, resume: dict[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.samples_per_step = samples_per_step
        self.resume = resume
        self._last: tuple[float, int, int] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = (time.perf_counter(), state.global_step, state.num_input_tokens_seen)
        if self.resume is not None and state.is_world_process_zero:
            mark_resume(self.path, state.global_step, self.resume)

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
        append_record(self.path, record)


def append_record(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _record_step(record: Any) -> int | None:
    if not isinstance(record, dict):
        return None
    step = record.get("step", record.get("from_step"))
    return step if isinstance(step, int) else None


def mark_resume(path: Path, step: int, facts: dict[str, Any]) -> int:
    """Drop the records after `step` from the log at `path`, then append a resume marker.

    Lines that do not parse (the last line of a killed writer) are dropped too. The log
    is rewritten atomically. Returns how many lines were dropped.
    """
    kept: list[str] = []
    dropped = 0
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record_step = _record_step(json.loads(line))
            except json.JSONDecodeError:
                record_step = None
                logger.warning("%s: dropping an unreadable line (a killed write)", path)
            if record_step is None or record_step > step:
                dropped += 1
            else:
                kept.append(line)
    marker = {
        "event": "resume",
        "from_step": step,
        **facts,
        "dropped_records": dropped,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    kept.append(json.dumps(marker))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    tmp.replace(path)
    if dropped:
        logger.info(
            "%s: dropped %d records after step %d (redone by this resume)", path, dropped, step
        )
    return dropped


class InterruptCallback(TrainerCallback):
    """Ctrl-C or SIGTERM asks the Trainer to save a checkpoint and stop after this step.

    SIGTERM is what `timeout`, Slurm and Kubernetes send before they kill a job, so it
    is treated like Ctrl-C. The handler only sets a flag; the Trainer then saves through
    its own checkpoint code (model, optimizer, scheduler, RNG and data position), so
    `--resume` continues exactly. A second signal aborts at once (`KeyboardInterrupt`,
    no checkpoint). With several processes, they agree after every step (the flag is
    reduced across them), so all stop at the same step and save one checkpoint.

    The handlers are installed by `install` (the caller does it around `trainer.train`,
    and `on_train_begin` does it when the caller did not) and restored by `restore`.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.interrupted = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.interrupted:
            logger.warning("%s again: aborting without a checkpoint", name)
            raise KeyboardInterrupt
        self.interrupted = True
        self.signal_name = name
        logger.warning(
            "%s: saving a checkpoint after this step, then stopping (send it again to abort)",
            name,
        )

    def install(self) -> None:
        if self._previous:
            return
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: no signal handling there
                self._previous.clear()
                return

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.install()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if _any_process(self.interrupted, args):
            self.interrupted = True
            self.signal_name = self.signal_name or "another process's signal"
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restore()


def _any_process(flag: bool, args: Any) -> bool:
    """Whether `flag` is set in any training process (just `flag` with one process).

    A signal reaches each process at a slightly different moment; if one stopped a step
    earlier than another, the other would wait for it in the next gradient all-reduce
    for ever. One tiny all-reduce per step makes them stop together.
    """
    if getattr(args, "world_size", 1) <= 1:
        return flag
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


class OwnCheckpointsCallback(TrainerCallback):
    """After a resume, the best checkpoint is looked up in this run's own directory.

    The resumed `trainer_state.json` records the best checkpoint's path as it was
    written — relative to the working directory of the time, or in the tree the run was
    copied from. The Trainer then forgets it (path gone), or loads the best weights of
    the *original* tree at the end (path still there). Its step is what matters.
    """

    def __init__(self, checkpoints_dir: Path) -> None:
        self.checkpoints_dir = checkpoints_dir

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = getattr(state, "best_global_step", None)
        if step:
            own = self.checkpoints_dir / f"checkpoint-{step}"
            if own.is_dir():
                state.best_model_checkpoint = str(own)


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
