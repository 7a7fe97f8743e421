from __future__ import annotations

import asyncio
from asyncio import Task
from collections.abc import Sequence
from typing import Any

import pytest

from onegrid_common.group_commit import GroupCommit, GroupCommitClosedError


class Recorder:
    """A write that records its batches and holds each one until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def write(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await self.release.wait()
        return [ValueError(f"odd {n}") if n % 2 else n * 10 for n in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def writing_first(rec: Recorder, **options: Any) -> tuple[GroupCommit[int, int], Task[int]]:
    """A writer busy with its first batch (request 0, held in its write): what comes now
    queues for the next batch."""
    rec.release.clear()
    commit: GroupCommit[int, int] = GroupCommit(rec.write, name="test", **options)
    commit.start()
    first = asyncio.create_task(commit.submit(0))
    await settle()
    return commit, first


async def test_a_lone_request_is_written_at_once() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.write, name="test")
    commit.start()
    assert await asyncio.wait_for(commit.submit(2), 1) == 20
    assert rec.batches == [[2]]
    await commit.close()


async def test_requests_arriving_during_a_write_share_the_next_batch() -> None:
    rec = Recorder()
    commit, first = await writing_first(rec)
    queued = [asyncio.create_task(commit.submit(n)) for n in (2, 4, 6)]
    await settle()
    rec.release.set()
    assert await asyncio.gather(first, *queued) == [0, 20, 40, 60]
    assert rec.batches == [[0], [2, 4, 6]]
    await commit.close()


async def test_each_caller_gets_its_own_result_or_exception() -> None:
    rec = Recorder()
    commit, blocker = await writing_first(rec)
    even, odd = asyncio.create_task(commit.submit(8)), asyncio.create_task(commit.submit(3))
    await settle()
    rec.release.set()
    await blocker
    assert await even == 80
    with pytest.raises(ValueError, match="odd 3"):
        await odd
    assert rec.batches[1] == [8, 3]
    await commit.close()


async def test_a_failed_batch_fails_every_caller_in_it_and_the_writer_goes_on() -> None:
    calls: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int | Exception]:
        calls.append(list(items))
        if len(calls) == 1:
            raise ConnectionError("database gone")
        return list(items)

    commit = GroupCommit(write, name="test")
    commit.start()
    with pytest.raises(ConnectionError):
        await commit.submit(1)
    assert await commit.submit(2) == 2
    await commit.close()


async def test_a_batch_holds_at_most_max_batch_requests() -> None:
    rec = Recorder()
    sizes: list[int] = []
    commit, blocker = await writing_first(rec, max_batch=3, on_batch=sizes.append)
    queued = [asyncio.create_task(commit.submit(2 * n)) for n in range(1, 8)]
    await settle()
    rec.release.set()
    await asyncio.gather(blocker, *queued)
    assert sizes == [1, 3, 3, 1]
    await commit.close()


async def test_closing_writes_what_was_taken_then_refuses_more() -> None:
    rec = Recorder()
    rec.release.clear()
    commit = GroupCommit(rec.write, name="test")
    commit.start()
    taken = [asyncio.create_task(commit.submit(n)) for n in (0, 2, 4)]
    await settle()
    closing = asyncio.create_task(commit.close())
    await settle()
    with pytest.raises(GroupCommitClosedError):
        await commit.submit(6)
    rec.release.set()
    await closing
    assert await asyncio.gather(*taken) == [0, 20, 40]


async def test_a_caller_that_gives_up_still_has_its_request_written() -> None:
    rec = Recorder()
    commit, blocker = await writing_first(rec)
    impatient = asyncio.create_task(commit.submit(2))
    await settle()
    impatient.cancel()
    await settle()
    rec.release.set()
    await blocker
    await commit.close()
    assert rec.batches == [[0], [2]]
    assert impatient.cancelled()
