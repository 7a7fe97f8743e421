"""Group commit: many callers' units of work in one transaction, one commit (one fsync).

A request that must not answer before its write is durable pays a commit, and a commit
waits for the WAL flush. When every request also takes one shared row (intake's gap-free
case-number counter), those flushes happen one after another and cap the rate at one
commit time per request. `GroupCommitter` queues the work; one loop takes whatever
arrived while the previous transaction ran and applies it in one transaction, each unit in
its own savepoint (a failing unit does not undo the others), then commits once and answers
every caller. At low load a group is one unit and nothing waits longer than before.

A unit that loses a deadlock to another process is not failed: the transaction commits
without it and it runs again in the next group (its savepoint released what it had taken,
and the commit releases what the group holds, so the other side goes on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_AGAIN = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass
class _Pending(Generic[T, R]):
    item: T
    done: asyncio.Future[R]
    attempts: int = 0


@dataclass
class GroupStats:
    groups: int = 0
    units: int = 0
    largest: int = 0
    deferred: int = 0  # units that lost a deadlock and ran again in a later group
    sizes: dict[int, int] = field(default_factory=dict)


class GroupCommitter(Generic[T, R]):
    """`await submit(item)` answers `work(conn, item)` once its transaction committed."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        work: Callable[[asyncpg.Connection, T], Awaitable[R]],
        *,
        name: str,
        max_group: int = 64,
        max_attempts: int = 3,
    ) -> None:
        self._pool = pool
        self._work = work
        self.name = name
        self._max_group = max_group
        self._max_attempts = max_attempts
        self._queue: asyncio.Queue[_Pending[T, R] | None] = asyncio.Queue()  # None: stop
        self._task: asyncio.Task[None] | None = None
        self.stats = GroupStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"group-commit:{self.name}")

    async def stop(self) -> None:
        """Apply and answer everything submitted so far, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        await task

    async def submit(self, item: T) -> R:
        if self._task is None:
            raise RuntimeError(f"group commit {self.name} is not started")
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(item, done))
        return await done

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            group = [first]
            while len(group) < self._max_group and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            try:
                await self._apply(group)
            except Exception:  # never leave a caller waiting, never stop the loop
                log.exception("group commit %s: a group of %d failed", self.name, len(group))
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_exception(RuntimeError("the group's commit failed"))
        # Deferred behind the stop: no later group will come for them.
        while not self._queue.empty():
            left = self._queue.get_nowait()
            if left is not None and not left.done.done():
                left.done.set_exception(RuntimeError(f"group commit {self.name} stopped"))

    async def _apply(self, group: list[_Pending[T, R]]) -> None:
        answers: list[tuple[_Pending[T, R], R]] = []
        failed: list[tuple[_Pending[T, R], Exception]] = []
        again: list[_Pending[T, R]] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                for pending in group:
                    if pending.done.cancelled():  # the caller went away before its turn
                        continue
                    try:
                        async with conn.transaction():  # a savepoint per unit
                            answers.append((pending, await self._work(conn, pending.item)))
                    except _AGAIN as exc:
                        pending.attempts += 1
                        if pending.attempts >= self._max_attempts:
                            failed.append((pending, exc))
                        else:
                            again.append(pending)
                    except Exception as exc:
                        failed.append((pending, exc))
        except Exception as exc:  # the commit (or the connection) failed: nothing took effect
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(exc)
            return
        self.stats.groups += 1
        self.stats.units += len(answers)
        self.stats.largest = max(self.stats.largest, len(group))
        self.stats.sizes[len(group)] = self.stats.sizes.get(len(group), 0) + 1
        self.stats.deferred += len(again)
        for pending, answer in answers:
            if not pending.done.done():
                pending.done.set_result(answer)
        for pending, error in failed:
            if not pending.done.done():
                pending.done.set_exception(error)
        for pending in again:
            self._queue.put_nowait(pending)
