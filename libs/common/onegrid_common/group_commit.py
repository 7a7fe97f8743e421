"""Group commit: requests that arrive while a batch is being written are written together,
in the next batch, by one writer.

At hundreds of requests a second most of a request's cost is its round trips (each query,
each commit, each Redis command); written together, a batch of N requests pays about as
many round trips as one. Nothing waits for a batch to fill: a lone request is written at
once, and only requests that queue up behind a running batch share the next one. Each
caller gets its own result or its own exception, and only once its batch is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes a batch; answers one result or one exception per item, in the items' order.
WriteBatch = Callable[[Sequence[Item]], Awaitable[Sequence[Result | Exception]]]


class GroupCommitClosedError(RuntimeError):
    """The writer is stopping: the request was not taken."""


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write: WriteBatch[Item, Result],
        *,
        name: str,
        max_batch: int = 64,
        writers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or writers < 1:
            raise ValueError("max_batch and writers must be at least 1")
        self._write = write
        self._name = name
        self._max_batch = max_batch
        self._writers = writers
        self._on_batch = on_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._wake = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"{self._name}:writer-{n}")
            for n in range(self._writers)
        ]

    async def submit(self, item: Item) -> Result:
        """Write the item with whatever else is waiting; its result once written.

        A caller cancelled while it waits does not take its item back: the item is written
        anyway (a client that gave up resends under its idempotency key)."""
        if self._closing or not self._tasks:
            raise GroupCommitClosedError(f"{self._name} is not taking requests")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        async with self._wake:
            self._pending.append((item, future))
            self._wake.notify()
        return await future

    async def close(self) -> None:
        """Take nothing more; write everything already taken, then stop the writers."""
        self._closing = True
        async with self._wake:
            self._wake.notify_all()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        async with self._wake:
            await self._wake.wait_for(lambda: bool(self._pending) or self._closing)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:  # closing and nothing left
                return
            if self._on_batch is not None:
                self._on_batch(len(batch))
            try:
                results = await self._write([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            except Exception as exc:  # every caller of the batch learns why
                log.exception("%s: a batch of %d failed", self._name, len(batch))
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
