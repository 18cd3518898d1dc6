"""Micro-batching: gather concurrent requests for a few milliseconds, call the model once.

A language model scores 16 histories in one forward pass for little more than the
cost of one, so under concurrent load the server is faster when requests that arrive
together share a model call. `MicroBatcher.submit` parks a request in an asyncio queue;
one worker task takes the first waiting request, keeps collecting for `window_ms` (or
until `max_batch`), groups what it got by a key (requests with different `k` cannot
share a beam search), and runs each group's batched function in a worker thread, so
the event loop keeps accepting connections while the model works.

If a batched call fails, the group is retried one request at a time, so a single bad
request fails alone instead of failing everyone it was batched with.

A request may carry a `Deadline`: if it passes while the request waits — or the
request waited so long that a model call as long as the recent ones would overrun it —
the request is dropped unstarted (`Overloaded`, a 503: the model never spends time on an
answer no one will read); if it passes during the model call, the caller gets
`DeadlineExceeded` (a 504) and the late result is discarded (a running model call
cannot be interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from recalign.serving.admission import Deadline, DeadlineExceeded, Overloaded
from recalign.serving.limits import CAPACITY

logger = logging.getLogger(__name__)

BatchFn = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future
    deadline: Deadline | None
    started: bool = False  # taken into a model call


def _not_started(deadline: Deadline, call_s: float = 0.0) -> Overloaded:
    if deadline.expired():
        why = f"past its {deadline.seconds:g} s deadline"
    else:
        why = (
            f"too close to its {deadline.seconds:g} s deadline to finish (model calls "
            f"take ~{call_s:.1f} s now)"
        )
    return Overloaded(
        f"the request waited {deadline.waited():.1f} s for the model, {why}, and was not "
        "started; the server is overloaded, retry later"
    )


class MicroBatcher:
    """Batch concurrent `submit(key, payload)` calls into `fn(key, payloads)` calls."""

    def __init__(
        self,
        fn: BatchFn,
        *,
        window_ms: float = CAPACITY.batch_window_ms,
        max_batch: int = CAPACITY.max_batch,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.window = max(0.0, window_ms) / 1000.0
        self.max_batch = max_batch
        # One model thread: the model is not re-entrant, and batching already keeps it busy.
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # model calls made (for tests and /health)
        self.requests = 0
        self.expired = 0  # deadline passed (or too close) before the model started them
        self.timed_out = 0  # deadline passed during their model call
        self.call_s = 0.0  # moving average of recent model call durations, seconds

    async def submit(self, key: Hashable, payload: Any, deadline: Deadline | None = None) -> Any:
        """Queue one request; returns its result (or raises its exception).

        With a `deadline`: raises `Overloaded` if it passes before the model starts the
        request, `DeadlineExceeded` if it passes during the model call.
        """
        self._ensure_worker()
        assert self._queue is not None  # set by _ensure_worker
        if deadline is not None and deadline.expired():
            self.expired += 1
            raise _not_started(deadline)
        job = _Job(key, payload, asyncio.get_running_loop().create_future(), deadline)
        self._queue.put_nowait(job)
        if deadline is None:
            return await job.future
        try:
            # On timeout wait_for cancels the future, so the worker skips the job.
            return await asyncio.wait_for(job.future, deadline.remaining())
        except asyncio.TimeoutError:
            if not job.started:
                self.expired += 1
                raise _not_started(deadline) from None
            self.timed_out += 1
            raise DeadlineExceeded(
                f"the model did not answer within the {deadline.seconds:g} s deadline; "
                "retry later or with a smaller request"
            ) from None

    def _ensure_worker(self) -> None:
        # Started lazily on the serving loop: works under uvicorn and under test clients
        # that do not run the app's lifespan, and restarts if a loop was replaced.
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(), name="micro-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Take whatever is already waiting without sleeping.
                    while len(batch) < self.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            groups: dict[Hashable, list[_Job]] = defaultdict(list)
            for job in batch:
                groups[job.key].append(job)
            for key, jobs in groups.items():
                # Checked per group, just before its call: earlier groups' calls take time.
                members = [(job.payload, job.future) for job in jobs if self._start(job)]
                if members:
                    await self._call(key, members)

    def _start(self, job: _Job) -> bool:
        """Mark `job` started, or drop it: its client left, or its deadline passed or would
        pass during a model call as long as the recent ones."""
        if job.future.done():  # cancelled: the client went away or stopped waiting
            return False
        # Too close: less left than a recent model call takes. Capped at half the deadline,
        # so a fresh request always starts — one slow call cannot make the server refuse
        # everything (and then never learn that calls got faster again).
        if job.deadline is not None and job.deadline.remaining() <= min(
            self.call_s, job.deadline.seconds / 2
        ):
            self.expired += 1
            _settle(job.future, error=_not_started(job.deadline, self.call_s))
            return False
        job.started = True
        return True

    async def _call(self, key: Hashable, members: list[tuple[Any, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        payloads = [payload for payload, _ in members]
        self.batches += 1
        self.requests += len(members)
        started = time.monotonic()
        try:
            results = await loop.run_in_executor(self.executor, self.fn, key, payloads)
            elapsed = time.monotonic() - started
            self.call_s = elapsed if not self.call_s else 0.8 * self.call_s + 0.2 * elapsed
        except Exception as error:
            if len(members) == 1:
                _settle(members[0][1], error=error)
                return
            logger.debug("batched call failed (%s); retrying one by one", error)
            for member in members:
                await self._call(key, [member])
            return
        for (_, future), result in zip(members, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future, *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
