"""The adapter contract test kit: given canonical tasks, are an adapter's replies valid,
ordered per case, and complete?

    tasks = [sample_task("housing", category_code="...") for _ in range(10)]
    await send_tasks(settings.kafka, tasks)
    replies = await read_replies(bootstrap, "housing", until=lambda rs: complete(tasks, rs))
    check_replies(tasks, replies).raise_for_problems()

Rules checked (the task protocol of onegrid_contracts.tasks):
- valid: every reply is a DeptReply type, keyed and subject-ed by its case id, for a task
  that was sent, of the same unit and case;
- ordered: per task, nothing before the acceptance but a refusal or a delivery failure;
  nothing after a terminal reply (completed, refused);
- complete: every task that was not cancelled has a terminal reply or a delivery failure
  (or, with `require_terminal=False`, at least an acceptance, refusal or delivery failure).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from onegrid_common.producer import OutgoingRecord, Producer
from onegrid_common.settings import KafkaSettings
from onegrid_contracts.base import Payload
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.envelope import Envelope, build_headers, decode, encode_payload, new_envelope
from onegrid_contracts.tasks import (
    Applicant,
    DeptMessage,
    DeptReply,
    DeptTaskAccepted,
    DeptTaskAssigned,
    DeptTaskCancelled,
    DeptTaskCompleted,
    DeptTaskDeliveryFailed,
    DeptTaskRefused,
)


def _at(minutes: int = 0) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


_case_counter = 0


def _next_case_no() -> str:
    global _case_counter
    _case_counter += 1
    return f"4205-{datetime.now(UTC):%Y%m%d}-{_case_counter % 1_000_000:06d}"


def sample_task(
    unit_code: str,
    *,
    category_code: str = "environment.exposed_garbage",
    category_name: str = "暴露垃圾",
    description: str = "小区门口垃圾堆积多日无人清理",
    priority: str = "normal",
    applicant: Applicant | None = None,
    case_id: uuid.UUID | None = None,
    attachments: Sequence[dict[str, Any]] = (),
) -> DeptTaskAssigned:
    """A valid DeptTaskAssigned for `unit_code`, with fresh ids and deadlines from now."""
    return DeptTaskAssigned(
        task_id=uuid.uuid4(),
        unit_code=unit_code,
        case_id=case_id or uuid.uuid4(),
        case_no=_next_case_no(),
        at=_at(),
        role="lead",
        lead_unit_code=unit_code,
        category_code=category_code,
        category_name=category_name,
        priority=priority,
        description=description,
        location={"lon": 111.2865, "lat": 30.6919, "address": "西陵区夷陵大道 58 号"},
        address="西陵区夷陵大道 58 号锦绣小区南门",
        grid_code="420502003001001",
        grid_name="锦绣社区第一网格",
        occurred_at=_at(-30),
        reported_at=_at(-20),
        deadlines=[
            {"kind": "response", "due_at": _at(120), "limit_minutes": 120},
            {"kind": "resolution", "due_at": _at(960), "limit_minutes": 960},
        ],
        attachments=list(attachments),
        applicant=applicant,
    )


def cancel_of(task: DeptTaskAssigned, reason: str = "案件已改派") -> DeptTaskCancelled:
    return DeptTaskCancelled(
        task_id=task.task_id,
        unit_code=task.unit_code,
        case_id=task.case_id,
        case_no=task.case_no,
        at=_at(),
        reason=reason,
    )


async def send_tasks(
    kafka: KafkaSettings | Producer, messages: Sequence[DeptMessage], *, source: str = "dispatch"
) -> list[Envelope]:
    """Publish task messages on their units' tasks topics, keyed by case id, in order."""
    producer = kafka if isinstance(kafka, Producer) else Producer(kafka, client_id="testkit")
    owned = not isinstance(kafka, Producer)
    if owned:
        await producer.start()
    envelopes: list[Envelope] = []
    try:
        records = []
        for message in messages:
            env = new_envelope(message, source=source, subject=str(message.case_id))
            envelopes.append(env)
            records.append(
                OutgoingRecord(
                    topic=unit_tasks_topic(message.unit_code),
                    key=str(message.case_id),
                    value=encode_payload(message),
                    headers=build_headers(env),
                )
            )
        await producer.send_many(records)
    finally:
        if owned:
            await producer.stop()
    return envelopes


@dataclass(frozen=True)
class ReceivedReply:
    envelope: Envelope | None
    payload: Payload | None
    key: str | None
    partition: int
    offset: int
    error: str | None = None  # why the record could not be decoded


async def read_replies(
    bootstrap: str,
    unit_code: str,
    *,
    until: Callable[[list[ReceivedReply]], bool],
    timeout_s: float = 60.0,
) -> list[ReceivedReply]:
    """Every record of the unit's replies topic from the start, until `until(replies)` holds
    or the timeout passes (then what arrived so far)."""
    consumer = AIOKafkaConsumer(
        unit_replies_topic(unit_code),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    replies: list[ReceivedReply] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for record in part:
                    key = record.key.decode() if isinstance(record.key, bytes) else None
                    try:
                        env, payload = decode(record.headers or (), record.value or b"")
                    except Exception as exc:
                        replies.append(
                            ReceivedReply(
                                None,
                                None,
                                key,
                                record.partition,
                                record.offset,
                                f"{type(exc).__name__}: {exc}",
                            )
                        )
                        continue
                    replies.append(
                        ReceivedReply(env, payload, key, record.partition, record.offset)
                    )
            if until(replies):
                break
    finally:
        await consumer.stop()
    return replies


def replies_of(replies: Sequence[ReceivedReply], task_id: uuid.UUID) -> list[DeptReply]:
    return [
        r.payload
        for r in replies
        if isinstance(r.payload, DeptReply) and r.payload.task_id == task_id
    ]


_TERMINAL = (DeptTaskCompleted, DeptTaskRefused)


def is_settled(
    replies: Sequence[DeptReply],
    *,
    require_terminal: bool = True,
    delivery_failure_settles: bool = True,
) -> bool:
    """Has this task's reply stream reached what completeness asks for? With
    `delivery_failure_settles=False` a task must reach its department in the end."""
    if any(isinstance(r, _TERMINAL) for r in replies):
        return True
    if delivery_failure_settles and any(isinstance(r, DeptTaskDeliveryFailed) for r in replies):
        return True
    return not require_terminal and any(isinstance(r, DeptTaskAccepted) for r in replies)


def complete(
    messages: Sequence[DeptMessage],
    replies: Sequence[ReceivedReply],
    *,
    require_terminal: bool = True,
    delivery_failure_settles: bool = True,
) -> bool:
    """True once every assigned, not cancelled task is settled (a `read_replies` stop rule)."""
    cancelled = {m.task_id for m in messages if isinstance(m, DeptTaskCancelled)}
    return all(
        is_settled(
            replies_of(replies, m.task_id),
            require_terminal=require_terminal,
            delivery_failure_settles=delivery_failure_settles,
        )
        for m in messages
        if isinstance(m, DeptTaskAssigned) and m.task_id not in cancelled
    )


@dataclass
class ContractReport:
    problems: list[str] = field(default_factory=list)
    replies_by_task: dict[uuid.UUID, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            shown = "\n  ".join(self.problems[:30])
            raise AssertionError(f"{len(self.problems)} contract problems:\n  {shown}")


def _kind(reply: DeptReply) -> str:
    return type(reply).__name__.removeprefix("DeptTask").removeprefix("Dept").lower()


def check_replies(
    messages: Sequence[DeptMessage],
    replies: Sequence[ReceivedReply],
    *,
    require_terminal: bool = True,
    delivery_failure_settles: bool = True,
) -> ContractReport:
    """Check an adapter's replies to `messages` (in the order they were read)."""
    report = ContractReport()
    tasks = {m.task_id: m for m in messages if isinstance(m, DeptTaskAssigned)}
    cancelled = {m.task_id for m in messages if isinstance(m, DeptTaskCancelled)}
    by_task: dict[uuid.UUID, list[DeptReply]] = {}
    for r in replies:
        where = f"partition {r.partition} offset {r.offset}"
        if r.error is not None or r.envelope is None:
            report.problems.append(f"{where}: not a valid message ({r.error})")
            continue
        payload = r.payload
        if not isinstance(payload, DeptReply):
            report.problems.append(f"{where}: {r.envelope.type} is not a department reply")
            continue
        task = tasks.get(payload.task_id)
        if task is None:
            report.problems.append(f"{where}: reply for unknown task {payload.task_id}")
            continue
        if payload.unit_code != task.unit_code or payload.case_id != task.case_id:
            report.problems.append(f"{where}: reply names another unit or case than its task")
        if r.key != str(task.case_id) or r.envelope.subject != str(task.case_id):
            report.problems.append(f"{where}: not keyed and subject-ed by the case id")
        if payload.case_no != task.case_no:
            report.problems.append(f"{where}: case_no {payload.case_no} is not the task's")
        by_task.setdefault(payload.task_id, []).append(payload)
    for task_id, task_replies in by_task.items():
        report.replies_by_task[task_id] = [_kind(r) for r in task_replies]
        accepted = terminal = False
        for reply in task_replies:
            name = _kind(reply)
            if terminal:
                report.problems.append(f"task {task_id}: {name} after a terminal reply")
            elif isinstance(reply, DeptTaskAccepted):
                if accepted:
                    report.problems.append(f"task {task_id}: accepted twice")
                accepted = True
            elif isinstance(reply, DeptTaskRefused):
                terminal = True
            elif isinstance(reply, DeptTaskCompleted):
                if not accepted:
                    report.problems.append(f"task {task_id}: completed before accepted")
                terminal = True
            elif not isinstance(reply, DeptTaskDeliveryFailed) and not accepted:
                report.problems.append(f"task {task_id}: {name} before accepted")
    for task_id in tasks:
        if task_id in cancelled:
            continue
        if not is_settled(
            by_task.get(task_id, []),
            require_terminal=require_terminal,
            delivery_failure_settles=delivery_failure_settles,
        ):
            got = report.replies_by_task.get(task_id, [])
            report.problems.append(f"task {task_id}: incomplete, replies so far {got}")
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve_app(app: FastAPI, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in this event loop (lifespan included);
    yields its base URL and stops it afterwards."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the server stopped while starting")
        if loop.time() > deadline:
            raise TimeoutError("the server did not start within 60 s")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 90.0, what: str = "condition"
) -> None:
    """Poll `condition` every 0.1 s until it holds; TimeoutError naming `what` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await condition():
        if loop.time() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s} s")
        await asyncio.sleep(0.1)


async def outage_in_the_middle(
    kafka: KafkaSettings,
    sim_url: str,
    first: Sequence[DeptMessage],
    during: Sequence[DeptMessage],
    *,
    received: Callable[[], int],
    timeout_s: float = 40.0,
) -> list[ReceivedReply]:
    """The outage every adapter is tested with. `first` reaches the department's system
    (`received()` counts what it got); the system goes down (its simulator's
    `POST /_sim/down`) while `during` is sent, and each of those tasks is reported
    DeptTaskDeliveryFailed; it comes back (`/_sim/up`) and every task is still delivered.
    Returns the replies once every task is complete, checked: valid, ordered, complete."""
    tasks = [m for m in (*first, *during) if isinstance(m, DeptTaskAssigned)]
    down_tasks = {m.task_id for m in during if isinstance(m, DeptTaskAssigned)}
    first_tasks = len(tasks) - len(down_tasks)
    await send_tasks(kafka, first)

    async def first_received() -> bool:
        return received() >= first_tasks

    await wait_for(first_received, timeout_s=timeout_s, what="the first tasks received")

    async def failures_reported() -> bool:
        replies = await read_replies(
            kafka.bootstrap_servers, tasks[0].unit_code, until=lambda r: True, timeout_s=1
        )
        failed = {
            r.payload.task_id for r in replies if isinstance(r.payload, DeptTaskDeliveryFailed)
        }
        return down_tasks <= failed

    async with httpx.AsyncClient(base_url=sim_url) as admin:
        await admin.post("/_sim/down")
        before = received()
        await send_tasks(kafka, during)
        await wait_for(failures_reported, timeout_s=20, what="DeliveryFailed while down")
        assert received() == before, "a task reached the department while it was down"
        await admin.post("/_sim/up")
    replies = await read_replies(
        kafka.bootstrap_servers,
        tasks[0].unit_code,
        until=lambda rs: complete(tasks, rs, delivery_failure_settles=False),
        timeout_s=timeout_s,
    )
    check_replies([*first, *during], replies, delivery_failure_settles=False).raise_for_problems()
    return replies


async def refusals_of(
    kafka: KafkaSettings, tasks: Sequence[DeptTaskAssigned], *, timeout_s: float = 90.0
) -> dict[uuid.UUID, DeptTaskRefused]:
    """Send `tasks`, wait until each is settled, and return the refusals by task id."""
    await send_tasks(kafka, tasks)
    replies = await read_replies(
        kafka.bootstrap_servers,
        tasks[0].unit_code,
        until=lambda rs: complete(tasks, rs),
        timeout_s=timeout_s,
    )
    return {r.payload.task_id: r.payload for r in replies if isinstance(r.payload, DeptTaskRefused)}
