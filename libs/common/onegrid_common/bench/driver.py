"""The load: reports at a set rate through intake's HTTP API, and the people who move each
case on through dispatch's HTTP API, with every case followed on the topics.

The bench follows `cases.events.v1` and the adapter units' `dept.<unit>.replies.v1` from
their end (a plain consumer with assigned partitions: no group join to wait for). It acts
as the city does:
- a workbench unit (grid, community, street) accepts its task and completes it;
- a department reached through an adapter is the simulator's business (it accepts and
  completes on its own, after the simulator's configured delays);
- a grid worker verifies a handled case on site (pass), the reporter rates a closed case.
Milestones are taken from the events' own `at` (when the service decided), the start
from the moment the bench sent the report; one clock, one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from onegrid_common.bench.city import City, ReportMaker
from onegrid_common.http_client import UNREACHABLE, send
from onegrid_contracts.catalogue import CASES_EVENTS, unit_replies_topic

log = logging.getLogger(__name__)

DISPATCHED = "onegrid.case.dispatched.v1"
TASK_ASSIGNED = "onegrid.case.task.assigned.v1"
HANDLED = "onegrid.case.handled.v1"
CLOSED = "onegrid.case.closed.v1"
EVALUATED = "onegrid.case.evaluated.v1"
REJECTED = "onegrid.case.rejected.v1"
FLAGGED = "onegrid.case.flagged_for_operator.v1"
DEPT_ACCEPTED = "onegrid.dept.reply.accepted.v1"


@dataclass
class CaseTrack:
    """What the bench saw of one case it opened."""

    sent_at: float  # epoch seconds the report left the bench
    accepted_at: float | None = None  # intake's 202 arrived
    dispatched_at: float | None = None
    delivered_at: float | None = None  # first task in a department's own system
    delivered_via: str | None = None  # "adapter" or "workbench"
    in_department_at: float | None = None  # first task accepted into a department's system
    evaluated_at: float | None = None
    stuck: str | None = None  # rejected or waiting for an operator


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    merged: int = 0  # reports that joined an open case (一事一档)
    events: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    action_failures: Counter[str] = field(default_factory=Counter)
    intake_ms: list[float] = field(default_factory=list)
    late: int = 0  # reports sent more than 100 ms after their slot (the bench fell behind)


def _at(payload: dict[str, Any]) -> float:
    return datetime.fromisoformat(payload["at"]).timestamp()


def _session(base_url: str, max_in_flight: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        connector=aiohttp.TCPConnector(limit=max_in_flight),
        timeout=aiohttp.ClientTimeout(total=60),
        headers={"Content-Type": "application/json"},
    )


class Bench:
    """One bench run's load and bookkeeping. Use `follow()` before `send()`."""

    def __init__(
        self,
        *,
        city: City,
        maker: ReportMaker,
        intake_url: str,
        dispatch_url: str,
        bootstrap: str,
        tokens: dict[str, list[str]],  # role → tokens to spread the reports over
        actor_token: str,  # operator: verifies, rates, works the workbench tasks
        max_in_flight: int = 512,
    ) -> None:
        self.city = city
        self.maker = maker
        self.cases: dict[uuid.UUID, CaseTrack] = {}
        self.tally = Tally()
        self._intake_url = intake_url
        self._dispatch_url = dispatch_url
        self._bootstrap = bootstrap
        self._tokens = tokens
        self._actor_headers = {"Authorization": f"Bearer {actor_token}"}
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._early: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self.unfollowed: list[str] = []  # reply topics that did not exist
        self._follower: asyncio.Task[None] | None = None
        # aiohttp, not httpx: this process shares the machine with the stack it measures,
        # and httpx took ten times the CPU per request (~2 ms against ~0.2 ms).
        self._intake = _session(intake_url, max_in_flight)
        self._dispatch = _session(dispatch_url, max_in_flight)

    # -- following the topics ------------------------------------------------------------

    async def follow(self) -> None:
        topics = [CASES_EVENTS, *(unit_replies_topic(u) for u in sorted(self.city.adapter_units))]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            max_poll_records=2000,
        )
        await consumer.start()
        # Unit topics of webhook units are created by their adapter as it starts.
        deadline = time.monotonic() + 60
        while True:
            known = await consumer.topics()
            missing = [t for t in topics if t not in known]
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        if CASES_EVENTS in missing:
            await consumer.stop()
            raise RuntimeError(f"topic {CASES_EVENTS} does not exist: is the stack up?")
        self.unfollowed = missing
        topics = [t for t in topics if t not in missing]
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end now: what comes later is ours
            await consumer.position(tp)
        self._consumer = consumer
        self._follower = asyncio.create_task(self._follow_loop(consumer))

    async def _follow_loop(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers or ())
                    ce_type = headers.get("ce_type", b"").decode()
                    if not ce_type or record.value is None:
                        continue
                    self.tally.events[ce_type] += 1
                    try:
                        payload = orjson.loads(record.value)
                        case_id = uuid.UUID(payload["case_id"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    self._on_event(case_id, ce_type, payload)

    def _on_event(self, case_id: uuid.UUID, ce_type: str, payload: dict[str, Any]) -> None:
        track = self.cases.get(case_id)
        if track is None:
            # The event can overtake intake's HTTP answer: keep it until the case is known.
            self._early.setdefault(case_id, []).append((ce_type, payload))
            return
        if ce_type == DISPATCHED and track.dispatched_at is None:
            track.dispatched_at = _at(payload)
        elif ce_type == DEPT_ACCEPTED:
            if track.in_department_at is None:
                track.in_department_at = _at(payload)
            if track.delivered_at is None:
                track.delivered_at, track.delivered_via = _at(payload), "adapter"
        elif ce_type == TASK_ASSIGNED:
            unit, role = payload.get("unit_code"), payload.get("role")
            if unit in self.city.workbench_units and role in ("lead", "assist"):
                if track.delivered_at is None:
                    track.delivered_at, track.delivered_via = _at(payload), "workbench"
                self._spawn(self._work_task(payload["task_id"]))
        elif ce_type == HANDLED:
            self._spawn(self._act("verify", f"/v1/cases/{case_id}/verification", {"passed": True}))
        elif ce_type == CLOSED:
            self._spawn(self._act("evaluate", f"/v1/cases/{case_id}/evaluation", {"rating": 5}))
        elif ce_type == EVALUATED and track.evaluated_at is None:
            track.evaluated_at = _at(payload)
        elif ce_type == REJECTED:
            track.stuck = "rejected"
        elif ce_type == FLAGGED:
            track.stuck = f"operator queue: {payload.get('queue_reason')}"

    # -- acting as the city's people -----------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work_task(self, task_id: str) -> None:
        if await self._act("accept", f"/v1/tasks/{task_id}/accept", {}):
            await self._act(
                "complete",
                f"/v1/tasks/{task_id}/complete",
                {"result": "已到现场处理完毕，现场已恢复。", "fixed": True},
            )

    async def _act(self, name: str, path: str, body: dict[str, Any]) -> bool:
        for attempt in range(5):
            try:
                answer = await send(
                    self._dispatch, "POST", path, content=orjson.dumps(body),
                    headers=self._actor_headers,
                )  # fmt: skip
            except UNREACHABLE as exc:
                self.tally.action_failures[f"{name}: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            status = answer.status
            if status < 300:
                self.tally.actions[name] += 1
                return True
            if status in (409, 429, 500, 502, 503):  # not there yet, or busy
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.tally.action_failures[f"{name}: HTTP {status}"] += 1
            text = answer.content.decode(errors="replace")
            log.warning("%s %s: HTTP %s %s", name, path, status, text[:300])
            return False
        self.tally.action_failures[f"{name}: gave up"] += 1
        return False

    # -- sending reports -----------------------------------------------------------------

    async def send(self, rate: float, seconds: float) -> tuple[float, float]:
        """Send `rate` reports/s for `seconds` (open loop: slots do not wait for answers).
        Returns the (start, end) epoch seconds of the sending."""
        if rate <= 0 or seconds <= 0:
            raise ValueError("rate and seconds must be positive")
        started = time.time()
        count = int(rate * seconds)
        counters = {role: 0 for role in self._tokens}
        for n in range(count):
            slot = started + n / rate
            delay = slot - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                self.tally.late += 1
            report = self.maker.next()
            tokens = self._tokens[report.role]
            token = tokens[counters[report.role] % len(tokens)]
            counters[report.role] += 1
            await self._in_flight.acquire()
            self._spawn(self._post(report.body, token))
        return started, time.time()

    async def _post(self, body: dict[str, Any], token: str) -> None:
        try:
            sent_at = time.time()
            self.tally.sent += 1
            try:
                answer = await send(
                    self._intake,
                    "POST",
                    "/v1/reports",
                    content=orjson.dumps(body),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": uuid.uuid4().hex,
                    },
                )
            except UNREACHABLE as exc:
                self.tally.errors[type(exc).__name__] += 1
                return
            status = answer.status
            self.tally.statuses[status] += 1
            if status != 202:
                refused = answer.content[:200].decode(errors="replace")
                self.tally.errors[f"HTTP {status}: {refused}"] += 1
                return
            now = time.time()
            self.tally.intake_ms.append((now - sent_at) * 1000)
            receipt = answer.json()
            if receipt.get("duplicate_of"):
                self.tally.merged += 1
                return
            case_id = uuid.UUID(receipt["case_id"])
            self.cases[case_id] = CaseTrack(sent_at=sent_at, accepted_at=now)
            for ce_type, payload in self._early.pop(case_id, []):
                self._on_event(case_id, ce_type, payload)
        finally:
            self._in_flight.release()

    async def warm(self, timeout_s: float = 240.0) -> float:
        """Send a report a second until one case went all the way to its evaluation: every
        consumer group on the way has joined and every read model caught up (a service is
        healthy well before that). Returns the seconds it took; the tallies start afresh."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if any(t.evaluated_at is not None for t in self.cases.values()):
                await asyncio.sleep(1.0)  # let the warm-up cases' last actions settle
                self.tally = Tally()
                return time.monotonic() - started
            report = self.maker.next()
            tokens = self._tokens[report.role]
            await self._in_flight.acquire()
            self._spawn(self._post(report.body, tokens[0]))
            await asyncio.sleep(1.0)
        raise RuntimeError(f"no case was evaluated within {timeout_s:g} s of warming up")

    # -- the end ---------------------------------------------------------------------------

    async def drain(self, since: float, until: float, timeout_s: float) -> None:
        """Wait until every case reported in [since, until] is evaluated or stuck."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            open_ = [
                t
                for t in self.cases.values()
                if since <= t.sent_at <= until and t.evaluated_at is None and t.stuck is None
            ]
            if not open_ and not self._in_flight_reports():
                return
            await asyncio.sleep(0.5)

    def _in_flight_reports(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        await self._intake.close()
        await self._dispatch.close()
