"""The topic catalogue as code: every Kafka topic, its key, partitions, cleanup and owners.

The local stack, the test harness, `onegrid topics apply` and the Kubernetes generator
create topics from here, with their partition counts (never from broker auto-creation).
Static topics are known up front; each adapter unit adds its own pair
`dept.<unit>.tasks.v1` / `dept.<unit>.replies.v1`, derived from the registry's units whose
integration mode is `adapter`.

Every delete-policy topic has a retention, and consumers keep what they need in their own
tables. (The local broker, tansu's memory engine, applies no retention: it keeps every
record until it stops; docs/performance.md.)

Who may read a topic is `consumers` (consumer groups: `onegrid.<service>.<subscription>`,
each consuming service with its dead-letter topic) plus `readers` (services that read the
whole topic into memory, the RegistryView: no group, no dead letters). The Kubernetes
ACLs grant exactly these, so a service reading a topic it is not listed for fails there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from onegrid_contracts import cases, notify, registry, reports, scores, tasks
from onegrid_contracts.base import Payload
from onegrid_contracts.primitives import UNIT_CODE_PATTERN

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

SERVICES: tuple[str, ...] = (
    "registry",
    "intake",
    "dispatch",
    "adapter-urban",
    "adapter-police",
    "adapter-civil",
    "adapter-webhook",
    "scoring",
    "notification",
)

# Units whose department systems are reached through their own native adapter service
# (adapter-<unit>); other adapter-mode units come from the registry at run time.
NATIVE_ADAPTER_UNITS: tuple[str, ...] = ("urban", "police", "civil")
# Units whose systems the generic webhook adapter reaches (configured per unit in its YAML).
WEBHOOK_ADAPTER = "adapter-webhook"
WEBHOOK_ADAPTER_UNITS: tuple[str, ...] = ("housing",)
# Every adapter unit the catalogue knows: their topics exist in every deployment.
ADAPTER_UNITS: tuple[str, ...] = NATIVE_ADAPTER_UNITS + WEBHOOK_ADAPTER_UNITS


def adapter_of(unit_code: str) -> str:
    """The service that serves an adapter unit: the webhook adapter for its units, else the
    unit's own native adapter `adapter-<unit>`."""
    return WEBHOOK_ADAPTER if unit_code in WEBHOOK_ADAPTER_UNITS else f"adapter-{unit_code}"


REGISTRY_GRIDS = "registry.grids.v1"
REGISTRY_BUILDINGS = "registry.buildings.v1"
REGISTRY_UNITS = "registry.units.v1"
REGISTRY_STAFF = "registry.staff.v1"
REGISTRY_CATEGORIES = "registry.categories.v1"
REGISTRY_ROUTES = "registry.routes.v1"
REGISTRY_CALENDARS = "registry.calendars.v1"
INTAKE_REPORTS = "intake.reports.v1"
CASES_EVENTS = "cases.events.v1"
NOTIFY_REQUESTS = "notify.requests.v1"
NOTIFY_OUTCOMES = "notify.outcomes.v1"
SCORES_UPDATES = "scores.updates.v1"

_TOPIC_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9_-]*)*\.v[1-9][0-9]*$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_UNIT_CODE = re.compile(UNIT_CODE_PATTERN)
_UNIT_TOPIC = re.compile(r"^dept\.(?P<unit>[^.]+)\.(?P<kind>tasks|replies)\.v1$")
_DLQ_TOPIC = re.compile(r"^dlq\.(?P<service>[^.]+)\.v1$")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the record key is, e.g. "case id"
    partitions: int
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int | None  # None: broker default (compacted topics keep the latest per key)
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str = ""
    readers: tuple[str, ...] = ()  # read whole into memory (RegistryView), no consumer group
    # CloudEvents types carried, e.g. onegrid.case.reported.v1
    payloads: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _TOPIC_NAME.match(self.name):
            raise ValueError(f"topic name {self.name!r} must be dotted lower-case ending in .vN")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be at least 1")
        if self.cleanup_policy == "delete" and self.retention_ms is None:
            raise ValueError(f"topic {self.name}: a delete topic needs retention_ms")
        if self.retention_ms is not None and self.retention_ms < 60_000:
            raise ValueError(f"topic {self.name}: retention_ms below one minute")

    @property
    def version(self) -> int:
        return int(self.name.rsplit(".v", 1)[1])

    def config(self) -> dict[str, str]:
        """Broker topic configuration (Kafka config names)."""
        cfg: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


def _types(*models: type[Payload]) -> tuple[str, ...]:
    return tuple(m.ce_type for m in models)


def _concrete_subclasses(base: type[Payload]) -> list[type[Payload]]:
    found: list[type[Payload]] = []
    for sub in base.__subclasses__():
        if sub.__dict__.get("ce_type"):
            found.append(sub)
        found.extend(_concrete_subclasses(sub))
    return found


CASE_EVENT_TYPES: tuple[str, ...] = tuple(
    sorted(m.ce_type for m in _concrete_subclasses(cases.CaseEvent))
)
DEPT_TASK_TYPES: tuple[str, ...] = _types(
    tasks.DeptTaskAssigned, tasks.DeptTaskFollowUp, tasks.DeptTaskCancelled
)
DEPT_REPLY_TYPES: tuple[str, ...] = tuple(
    sorted(m.ce_type for m in _concrete_subclasses(tasks.DeptReply))
)


def _registry_topic(
    entity: type[registry.RegistryEntity],
    *,
    readers: tuple[str, ...],
    partitions: int = 3,
    key: str = "entity code",
) -> TopicSpec:
    return TopicSpec(
        name=entity.topic,
        key=key,
        partitions=partitions,
        cleanup_policy="compact",
        retention_ms=None,
        producers=("registry",),
        consumers=(),
        readers=readers,
        description=f"{entity.__name__} master data: the latest version per code; "
        "a null value deletes the key.",
        payloads=_types(entity),
    )


def dlq_topic(service: str) -> str:
    """The dead-letter topic of a consuming service: dlq.<service>.v1."""
    if not _SERVICE_NAME.match(service):
        raise ValueError(f"service name {service!r} must be lower-case letters, digits and '-'")
    return f"dlq.{service}.v1"


def _dlq_spec(service: str) -> TopicSpec:
    return TopicSpec(
        name=dlq_topic(service),
        key="original key",
        partitions=1,
        cleanup_policy="delete",
        retention_ms=14 * DAY_MS,
        producers=(service,),
        consumers=(),
        description=f"Messages {service} could not process after its retries, with the error "
        "in headers; the original headers and body are kept.",
    )


def _static_without_dlq() -> list[TopicSpec]:
    return [
        # Readers: what each service's RegistryView follows (registry_topics_read_by).
        _registry_topic(
            registry.Grid, readers=("registry", "intake", "dispatch", "scoring", "notification")
        ),
        _registry_topic(registry.Building, readers=()),  # for other systems; no service reads it
        _registry_topic(registry.Unit, readers=("dispatch", "notification")),
        _registry_topic(registry.Staff, readers=("dispatch", "notification")),
        _registry_topic(registry.Category, readers=("intake", "dispatch")),
        _registry_topic(registry.RoutingRule, readers=("dispatch",)),
        _registry_topic(
            registry.CalendarYear, readers=("dispatch",), partitions=1, key="year (e.g. 2026)"
        ),
        TopicSpec(
            name=INTAKE_REPORTS,
            key="channel report id",
            partitions=6,
            cleanup_policy="delete",
            # Carries reporter PII in clear: keep it no longer than a redelivery needs.
            retention_ms=1 * DAY_MS,
            producers=("gateway-hotline", "gateway-iot", "gateway-video"),
            consumers=("intake",),
            description="Reports from channel gateways (12345 hotline, IoT, video); same shape "
            "and validation as POST /v1/reports.",
            payloads=_types(reports.ChannelReport),
        ),
        TopicSpec(
            name=CASES_EVENTS,
            key="case id",
            partitions=12,
            cleanup_policy="delete",
            retention_ms=7 * DAY_MS,
            producers=("intake", "dispatch"),
            consumers=("dispatch", "intake", "scoring", "notification"),
            description="Every case transition, with who, when and why; a case's events are "
            "in order (keyed by case id).",
            payloads=CASE_EVENT_TYPES,
        ),
        TopicSpec(
            name=NOTIFY_REQUESTS,
            key="recipient (<kind>:<id>)",
            partitions=6,
            cleanup_policy="delete",
            retention_ms=3 * DAY_MS,
            producers=("dispatch", "intake", "scoring"),
            consumers=("notification",),
            description="Ask for a templated message to a reporter, staff member, unit or desk.",
            payloads=_types(notify.NotificationRequested),
        ),
        TopicSpec(
            name=NOTIFY_OUTCOMES,
            key="recipient (<kind>:<id>)",
            partitions=6,
            cleanup_policy="delete",
            retention_ms=3 * DAY_MS,
            producers=("notification",),
            # For other systems (a city data platform): no onegrid service consumes it;
            # dispatch's case timeline asks notification over HTTP instead.
            consumers=(),
            description="Delivered, failed or deferred, per request and channel.",
            payloads=_types(notify.NotificationOutcome),
        ),
        TopicSpec(
            name=SCORES_UPDATES,
            key="subject (<kind>:<code>:<period>)",
            partitions=3,
            cleanup_policy="compact",
            retention_ms=None,
            producers=("scoring",),
            consumers=(),
            description="The latest score of each unit, grid worker and grid per period.",
            payloads=_types(scores.ScoreUpdated),
        ),
    ]


def consuming_services() -> tuple[str, ...]:
    """Services of SERVICES that consume a topic, each of which has a dead-letter topic.

    Every adapter consumes its units' task topics, so adapters count as consumers."""
    consumers = {c for spec in _static_without_dlq() for c in spec.consumers}
    consumers.update(s for s in SERVICES if s.startswith("adapter-"))
    return tuple(s for s in SERVICES if s in consumers)


def registry_topics_read_by(service: str) -> tuple[str, ...]:
    """The registry topics a service's RegistryView follows: those naming it a reader."""
    return tuple(spec.name for spec in _static_without_dlq() if service in spec.readers)


def static_topics() -> list[TopicSpec]:
    """Every topic that exists regardless of which units have adapters."""
    return _static_without_dlq() + [_dlq_spec(s) for s in consuming_services()]


def validate_unit_code(unit_code: str) -> str:
    if not _UNIT_CODE.match(unit_code):
        raise ValueError(
            f"unit code {unit_code!r} cannot name a topic: use lower-case letters, digits "
            "and '-' (2 to 63 characters, starting with a letter)"
        )
    return unit_code


def unit_tasks_topic(unit_code: str) -> str:
    return f"dept.{validate_unit_code(unit_code)}.tasks.v1"


def unit_replies_topic(unit_code: str) -> str:
    return f"dept.{validate_unit_code(unit_code)}.replies.v1"


def unit_topics(unit_code: str, *, adapter: str | None = None) -> list[TopicSpec]:
    """The task and reply topics of an adapter unit.

    `adapter` names the service that serves the unit; by default `adapter_of(unit)`:
    adapter-webhook for WEBHOOK_ADAPTER_UNITS, else `adapter-<unit>` (urban → adapter-urban).
    """
    validate_unit_code(unit_code)
    service = adapter if adapter is not None else adapter_of(unit_code)
    if not _SERVICE_NAME.match(service):
        raise ValueError(f"adapter service name {service!r} is not a valid service name")
    return [
        TopicSpec(
            name=unit_tasks_topic(unit_code),
            key="case id",
            partitions=3,
            cleanup_policy="delete",
            retention_ms=7 * DAY_MS,
            producers=("dispatch",),
            consumers=(service,),
            description=f"Tasks for unit {unit_code}: assigned, follow-up, cancelled.",
            payloads=DEPT_TASK_TYPES,
        ),
        TopicSpec(
            name=unit_replies_topic(unit_code),
            key="case id",
            partitions=3,
            cleanup_policy="delete",
            retention_ms=7 * DAY_MS,
            producers=(service,),
            consumers=("dispatch",),
            description=f"Replies of unit {unit_code}: accepted, refused, progressed, "
            "completed, extension requested, delivery failed.",
            payloads=DEPT_REPLY_TYPES,
        ),
    ]


def all_topics(adapter_unit_codes: Iterable[str] = ADAPTER_UNITS) -> list[TopicSpec]:
    """Static topics plus the pair of each adapter unit (duplicates ignored), by name; by
    default every adapter unit of the catalogue (native and webhook)."""
    specs = {spec.name: spec for spec in static_topics()}
    for unit_code in sorted(set(adapter_unit_codes)):
        for spec in unit_topics(unit_code):
            specs[spec.name] = spec
    return [specs[name] for name in sorted(specs)]


def topic(name: str) -> TopicSpec:
    """The spec of a topic by name; unit and dead-letter topics are derived from the name."""
    for spec in static_topics():
        if spec.name == name:
            return spec
    unit = _UNIT_TOPIC.match(name)
    if unit is not None:
        tasks_spec, replies_spec = unit_topics(unit["unit"])
        return tasks_spec if unit["kind"] == "tasks" else replies_spec
    dlq = _DLQ_TOPIC.match(name)
    if dlq is not None:
        return _dlq_spec(dlq["service"])
    raise KeyError(f"unknown topic {name!r}: not in the onegrid catalogue")


def topic_of_type(ce_type: str) -> str | None:
    """The static topic carrying `ce_type`, or None for unit topics' types and unknown ones."""
    for spec in _static_without_dlq():
        if ce_type in spec.payloads:
            return spec.name
    return None
