"""How long a stage of `recalign run` will take, said before it starts.

An estimate is *work x rate*. A stage's work is counted in units its time grows with
(training: samples seen x their mean length; an evaluation: users x prompt length; a
baseline: its epoch budget x interactions). The rate, seconds per unit, is always one
that was measured, never a constant:

1. in this run: a stage of the same kind that already ran (the `compare` variant's
   training after the main one) — same machine, same load, moments ago;
2. on this machine: the rates earlier runs recorded, in a small JSON file in the user's
   cache directory (`recalign.cache.cache_dir`: `$RECALIGN_CACHE`, else
   `~/.cache/recalign`).

A rate from earlier runs is rescaled by a speed probe: a fixed workload of about a tenth
of a second (pure Python for the data and samples stages, a torch matrix product with the
stage's thread count for the model stages; the median of three), timed when the rate was
measured and again now, so a rate taken on a quiet machine adapts to a busy one. With
neither, the stage runs without an estimate and its rate is recorded for the next run.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recalign.cache import cache_dir

log = logging.getLogger(__name__)

HISTORY_FILE = "stage-timings.json"
# Bumped whenever the units of work or the probes change: older rates would mislead.
HISTORY_VERSION = 2
KEEP = 5  # records kept per kind of stage (the newest)
_PROBE_PYTHON_LOOPS = 1_500_000
_PROBE_TORCH_SIZE = 192
_PROBE_TORCH_REPEATS = 21


@dataclass(frozen=True)
class Work:
    """What a stage is about to do, in words and in units of work."""

    kind: str  # stages of one kind share a rate, e.g. "train:tiny-t5", "eval-retrieval:tiny-t5"
    units: float
    description: str
    probe: str = "torch"  # "python" for stages that run no model


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str  # where the rate comes from, in words


def probe_seconds(kind: str) -> float:
    """Seconds for a fixed workload now (the median of three parts, so that one burst of
    another process's work does not decide): the speed the next stage can expect."""
    if kind == "python":
        parts = []
        for _ in range(3):
            started = time.perf_counter()
            total = 0
            for i in range(_PROBE_PYTHON_LOOPS // 3):
                total += i * i % 7
            parts.append(time.perf_counter() - started)
        return 3 * statistics.median(parts)
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(_PROBE_TORCH_SIZE * 4, _PROBE_TORCH_SIZE, generator=generator)
    b = torch.rand(_PROBE_TORCH_SIZE, _PROBE_TORCH_SIZE * 4, generator=generator)
    parts = []
    with torch.no_grad():
        # Untimed: a process's first products start torch's thread pool and kernels.
        for _ in range(2):
            torch.tanh(a @ b @ b.T / _PROBE_TORCH_SIZE)
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(_PROBE_TORCH_REPEATS // 3):
                a = torch.tanh(a @ b @ b.T / _PROBE_TORCH_SIZE)
            parts.append(time.perf_counter() - started)
    return 3 * statistics.median(parts)


class StageClock:
    """Rates measured in this run and on this machine; estimates from them."""

    def __init__(self, history: Path | None = None) -> None:
        self.path = history if history is not None else cache_dir() / HISTORY_FILE
        self.history = self._read()
        self.in_run: dict[str, dict[str, float]] = {}

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        try:
            saved = json.loads(self.path.read_text())
            if saved.get("version") != HISTORY_VERSION:
                return {}
            records = saved.get("records", {})
            return {k: list(v) for k, v in records.items() if isinstance(v, list)}
        except (OSError, ValueError, AttributeError):
            return {}

    def estimate(self, work: Work) -> tuple[Estimate | None, float]:
        """The estimate (None without a measured rate) and the probe just timed."""
        probe = probe_seconds(work.probe)
        if work.units <= 0:
            return None, probe
        if work.kind in self.in_run:
            # Measured minutes ago under the same load: a short probe would add only noise.
            return Estimate(work.units * self.in_run[work.kind]["rate"], "this run"), probe
        records = self.history.get(work.kind, [])
        if not records:
            return None, probe
        per_probe = statistics.median(r["rate"] / r["probe"] for r in records)
        when = str(records[-1].get("when", ""))[:10]
        source = "earlier runs on this machine" + (f", last {when}" if when else "")
        return Estimate(work.units * per_probe * probe, source), probe

    def record(self, work: Work, seconds: float, probe: float) -> None:
        """Remember how long the stage took: for later stages of this run and later runs."""
        if work.units <= 0 or seconds <= 0 or probe <= 0:
            return
        entry = {
            "rate": seconds / work.units,
            "probe": probe,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.in_run[work.kind] = entry
        self.history[work.kind] = [*self.history.get(work.kind, []), entry][-KEEP:]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"version": HISTORY_VERSION, "records": self.history}, indent=1)
            )
            tmp.replace(self.path)
        except OSError as error:  # a read-only home must not fail a run
            log.debug("cannot record stage timings in %s: %s", self.path, error)


def format_seconds(seconds: float) -> str:
    """`4.2 s`, `42 s`, `3 min 10 s`, `1 h 05 min`: as precise as an estimate deserves."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return "{} min {:02d} s".format(*divmod(whole, 60))
    return "{} h {:02d} min".format(*divmod(round(whole / 60), 60))


def announce(work: Work, estimate: Estimate | None) -> str:
    if work.units <= 0:
        return work.description
    if estimate is None:
        return f"{work.description}; no earlier timing of this kind of stage here"
    return f"{work.description}; about {format_seconds(estimate.seconds)} ({estimate.source})"
