"""The adapter SDK: how a department's system joins the one case flow (多网融合).

A department team writes a `DepartmentClient` (translate a canonical task into the
department's call, and its statuses back) and gets a whole service from `adapter_service`:

    SERVICE = adapter_service("adapter-housing", lambda rt: [AdapterUnit("housing", MyClient())])

The SDK consumes `dept.<unit>.tasks.v1` through the runtime's inbox (idempotent by task id),
keeps a per-unit delivery queue in PostgreSQL (delivered in order; nothing lost while the
department is down), retries with exponential backoff and jitter behind a circuit breaker,
sends DeptTaskDeliveryFailed when the retry budget runs out, and replies on
`dept.<unit>.replies.v1` through the outbox. `onegrid_common.adapters.testkit` checks an
adapter's replies against the protocol. docs/adapters.md walks through it.
"""

from onegrid_common.adapters.client import (
    IDEMPOTENCY_HEADER,
    Accepted,
    CallContext,
    DeliveryOutcome,
    DepartmentClient,
    DepartmentRejectedError,
    DepartmentUnavailableError,
    DeptUpdate,
    OpenTask,
    Refused,
    UpdateKind,
)
from onegrid_common.adapters.engine import (
    AdapterEngine,
    AdapterUnit,
    DeliveryPolicy,
    UpdateResult,
)
from onegrid_common.adapters.http import DepartmentHttp
from onegrid_common.adapters.resilience import Backoff, BreakerState, CircuitBreaker
from onegrid_common.adapters.service import adapter_service, engine_of, request_engine

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Accepted",
    "AdapterEngine",
    "AdapterUnit",
    "Backoff",
    "BreakerState",
    "CallContext",
    "CircuitBreaker",
    "DeliveryOutcome",
    "DeliveryPolicy",
    "DepartmentClient",
    "DepartmentHttp",
    "DepartmentRejectedError",
    "DepartmentUnavailableError",
    "DeptUpdate",
    "OpenTask",
    "Refused",
    "UpdateKind",
    "UpdateResult",
    "adapter_service",
    "engine_of",
    "request_engine",
]
