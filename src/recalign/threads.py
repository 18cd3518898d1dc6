"""How many CPU threads torch (and the BLAS/OpenMP pools under it) may use.

torch's default is one thread per core. On a quiet machine that is right; on a shared
one it is a trap: when another process holds a core, the threads of one matrix product
wait for each other at every barrier, and a 2-thread run on a busy 2-core machine went
16x slower for evaluation and 3.4x slower for training than the same run with 1 thread
(bench/RESULTS.md, "Threads"). So the count is chosen from what is actually free:

- an explicit request wins: `recalign --threads N`, then `RECALIGN_THREADS=N`, then an
  `OMP_NUM_THREADS` the user exported (0 or `auto` mean: choose);
- otherwise the cores this process may run on (CPU affinity and a cgroup CPU quota),
  minus the cores other processes kept busy during a short sample of `/proc/stat`
  (this process's own CPU time is subtracted, so an earlier stage does not count),
  rounded so that any real contention gives up a thread — at least 1.

`configure_threads()` is called by every command that runs a model (train, evaluate,
baselines, serve, each stage of `recalign run`); the choice is logged once per change.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

THREADS_ENV = "RECALIGN_THREADS"
# Native pools that read their size from the environment when they start: set before
# torch or numpy is imported, they follow an explicit request too.
POOL_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SAMPLE_SECONDS = 0.3
# Other processes' use (in cores) at which one thread is given up: a core that is busy
# a third of the time already makes a second thread wait at every barrier.
GIVE_UP_AT = 0.3

_applied: int | None = None


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """The CPU quota in cores (cgroup v2 `cpu.max`, or v1 `cfs_quota_us`), None if unlimited."""
    try:
        v2 = Path("/sys/fs/cgroup/cpu.max")
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def _cpu_jiffies() -> tuple[int, int, int] | None:
    """(total, idle, number of CPUs) from /proc/stat, or None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    fields = [int(v) for v in lines[0].split()[1:]]
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    return sum(fields[:8]), idle, cpus


def others_busy_cores(seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores kept busy by other processes during a short sample; None if unknown.

    Only meaningful when /proc/stat describes the CPUs this process runs on (a VM or a
    whole machine); inside a container on a larger host it describes the host.
    """
    first = _cpu_jiffies()
    if first is None or first[2] != available_cores():
        return None
    own_before = sum(os.times()[:2])
    time.sleep(seconds)
    second = _cpu_jiffies()
    own = sum(os.times()[:2]) - own_before
    if second is None:
        return None
    total = second[0] - first[0]
    if total <= 0:
        return None
    busy_cores = (total - (second[1] - first[1])) / total * first[2]
    return max(0.0, busy_cores - own / seconds)


def _requested(explicit: int | str | None) -> int | None:
    """The explicit request, if any: argument, RECALIGN_THREADS, then OMP_NUM_THREADS."""
    from recalign.errors import ConfigError

    for origin, value in (
        ("--threads", explicit),
        (THREADS_ENV, os.environ.get(THREADS_ENV)),
        ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS")),
    ):
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip().lower()
        if text in ("0", "auto"):
            return None
        try:
            threads = int(text)
        except ValueError:
            raise ConfigError(
                f"{origin} must be a number of threads or 'auto', got {value!r}"
            ) from None
        if threads < 0:
            raise ConfigError(f"{origin} must be >= 0 (0 = choose), got {threads}")
        return threads
    return None


def choose_threads(explicit: int | str | None = None) -> ThreadChoice:
    """How many threads to use now, and why (see the module docstring)."""
    requested = _requested(explicit)
    if requested is not None:
        return ThreadChoice(requested, "requested")
    cores = available_cores()
    others = others_busy_cores() if cores > 1 else None
    if others is None:
        return ThreadChoice(cores, f"{cores} core(s)")
    threads = max(1, min(cores, math.floor(cores - others + GIVE_UP_AT)))
    return ThreadChoice(threads, f"{cores} cores, other processes using {others:.1f}")


def configure_threads(explicit: int | str | None = None) -> int:
    """Choose the thread count and apply it to torch; returns it."""
    global _applied
    choice = choose_threads(explicit)
    import torch

    if choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)
    if _applied is None:
        # Inter-op parallelism (independent ops run side by side) buys nothing for these
        # models and adds a second pool competing for the same cores. It can only be set
        # before torch's first parallel work; after that, keep what there is.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
    if choice.threads != _applied:
        logger.info("using %d CPU thread(s) (%s)", choice.threads, choice.reason)
        _applied = choice.threads
    return choice.threads


def export_request(threads: str | int | None) -> None:
    """Make an explicit `--threads` visible to this process's pools and child processes.

    Called by the CLI before torch or numpy is imported, so the OpenMP and BLAS pools
    start at that size; `auto` (or 0) only sets RECALIGN_THREADS, so that an exported
    OMP_NUM_THREADS does not count as a request.
    """
    if threads is None:
        return
    count = _requested(threads)  # validates
    os.environ[THREADS_ENV] = str(count or "auto")
    if count:
        for name in POOL_ENVS:
            os.environ[name] = str(count)
