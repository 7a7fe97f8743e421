"""What a department's team implements: the `DepartmentClient` (one per department system).

The SDK calls it in order, one message at a time, with retries around it; the client only
translates. It returns `Accepted` or `Refused` for a new task, and raises:
- `DepartmentUnavailableError` when the call may succeed later (connection refused, timeout,
  HTTP 5xx/429): the SDK retries with backoff and counts it in the circuit breaker;
- `DepartmentRejectedError` when no retry can help (HTTP 4xx for a malformed request): the SDK
  sends a DeptTaskDeliveryFailed at once and goes on to the next message.
Status comes back either by `poll` (the SDK calls it every poll interval with the open
tasks) or by a callback route of the adapter that hands `DeptUpdate`s to
`AdapterEngine.record_updates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from onegrid_contracts.cases import DeadlineKind, RefusalReason
from onegrid_contracts.tasks import DeptTaskAssigned, DeptTaskCancelled, DeptTaskFollowUp

IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class CallContext:
    """Per call: the unit, the idempotency key (task id or follow-up id) and the trace."""

    unit_code: str
    idempotency_key: str
    traceparent: str | None = None

    def headers(self) -> dict[str, str]:
        """Headers every department call should carry: the department side deduplicates
        on the idempotency key, and the trace continues into its system."""
        headers = {IDEMPOTENCY_HEADER: self.idempotency_key}
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        return headers


@dataclass(frozen=True)
class Accepted:
    external_ref: str  # the department's own reference number
    note: str | None = None
    handled_by: str | None = None


@dataclass(frozen=True)
class Refused:
    refusal_reason: RefusalReason
    reason: str
    handled_by: str | None = None


DeliveryOutcome = Accepted | Refused


class DepartmentUnavailableError(Exception):
    """The department could not take the call now; retry later. `reason` labels metrics."""

    def __init__(self, message: str, *, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason


class DepartmentRejectedError(Exception):
    """The department rejected the call for good (bad request); retrying cannot help."""


UpdateKind = Literal["progressed", "completed", "refused", "extension_requested"]
TERMINAL_UPDATES: frozenset[str] = frozenset({"completed", "refused"})


@dataclass(frozen=True)
class DeptUpdate:
    """One status change in the department's system, already translated.

    `update_id` identifies the change in the department's system (e.g. "<ref>:<status>"):
    the SDK drops an update it has seen, so polling the same status twice is harmless.
    Name the task by `external_ref`, or by `task_id` when the department echoes ours.
    """

    update_id: str
    kind: UpdateKind
    at: datetime
    external_ref: str | None = None
    task_id: UUID | None = None
    note: str | None = None
    external_status: str | None = None
    result: str | None = None
    fixed: bool = True
    handled_by: str | None = None
    refusal_reason: RefusalReason = RefusalReason.OTHER
    deadline_kind: DeadlineKind = DeadlineKind.RESOLUTION
    requested_due_at: datetime | None = None
    request_id: UUID | None = None

    def __post_init__(self) -> None:
        if self.external_ref is None and self.task_id is None:
            raise ValueError("a department update names its task by external_ref or task_id")
        if self.kind == "extension_requested" and self.requested_due_at is None:
            raise ValueError("an extension request needs requested_due_at")


@dataclass(frozen=True)
class OpenTask:
    """A task the department accepted and has not finished: what `poll` asks about."""

    task_id: UUID
    case_id: UUID
    external_ref: str
    delivered_at: datetime


class DepartmentClient(Protocol):
    """The department side of an adapter. All methods are called from one task per unit."""

    # False: the department calls back (the adapter's route feeds `record_updates`).
    supports_polling: bool

    async def deliver(self, task: DeptTaskAssigned, ctx: CallContext) -> DeliveryOutcome: ...

    async def follow_up(
        self, message: DeptTaskFollowUp, external_ref: str, ctx: CallContext
    ) -> None: ...

    async def cancel(
        self, message: DeptTaskCancelled, external_ref: str, ctx: CallContext
    ) -> None: ...

    async def poll(
        self, open_tasks: Sequence[OpenTask], ctx: CallContext
    ) -> Sequence[DeptUpdate]: ...

    async def aclose(self) -> None: ...
