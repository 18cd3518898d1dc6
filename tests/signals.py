"""Run `recalign` in a subprocess with one method slowed down, to signal it mid-run.

The sleep changes when things happen, never what is computed, so a run signalled and
resumed can be compared with one that was not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

_SLOW_CLI = """
import importlib, sys, time

owner = importlib.import_module({module!r})
cls = getattr(owner, {cls!r})
method = getattr(cls, {method!r})

def slow(*args, **kwargs):
    time.sleep({delay})
    return method(*args, **kwargs)

setattr(cls, {method!r}, slow)
from recalign.cli import main

sys.argv = ["recalign", "--threads", "1", *sys.argv[1:]]
main()
"""
TRAINING_STEP = ("recalign.training.trainer", "RecalignTrainer", "training_step")


def start(
    args: list[str], cwd: Path, *, slow: tuple[str, str, str] = TRAINING_STEP, delay: float = 0.25
) -> subprocess.Popen:
    """`recalign ARGS` with `module.Class.method` sleeping `delay` seconds per call."""
    module, cls, method = slow
    code = _SLOW_CLI.format(module=module, cls=cls, method=method, delay=delay)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(process: subprocess.Popen, waiting_for: str) -> None:
    if process.poll() is not None:
        _, err = process.communicate()
        raise AssertionError(f"exited {process.returncode} before {waiting_for}:\n{err[-3000:]}")


def wait_for_step(process: subprocess.Popen, log: Path, step: int, timeout: float = 240) -> int:
    """Block until the training log at `log` shows `step` (returns the step seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _alive(process, f"step {step}")
        if log.is_file():
            steps = [
                json.loads(line).get("step", 0)
                for line in log.read_text().splitlines()
                if line.strip().endswith("}")
            ]
            if steps and max(steps) >= step:
                return max(steps)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no step {step} in {log} after {timeout}s")


def wait_for_file(process: subprocess.Popen, path: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _alive(process, str(path))
        if path.exists():
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no {path} after {timeout}s")


def wait_for_glob(
    process: subprocess.Popen, root: Path, pattern: str, timeout: float = 240
) -> None:
    """Wait until a file matching `pattern` exists under `root` (a temporary name)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _alive(process, f"{root}/{pattern}")
        if any(root.glob(pattern)):
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no {root}/{pattern} after {timeout}s")


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    """(exit status, stderr) once the process has ended."""
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err
