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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

BatchFn = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class MicroBatcher:
    """Batch concurrent `submit(key, payload)` calls into `fn(key, payloads)` calls."""

    def __init__(
        self,
        fn: BatchFn,
        *,
        window_ms: float = 2.0,
        max_batch: int = 32,
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

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """Queue one request; returns its result (or raises its exception)."""
        self._ensure_worker()
        assert self._queue is not None  # set by _ensure_worker
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((key, payload, future))
        return await future

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
            groups: dict[Hashable, list[tuple[Any, asyncio.Future]]] = defaultdict(list)
            for key, payload, future in batch:
                if not future.cancelled():
                    groups[key].append((payload, future))
            for key, members in groups.items():
                await self._call(key, members)

    async def _call(self, key: Hashable, members: list[tuple[Any, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        payloads = [payload for payload, _ in members]
        self.batches += 1
        self.requests += len(members)
        try:
            results = await loop.run_in_executor(self.executor, self.fn, key, payloads)
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
