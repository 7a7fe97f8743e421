"""What intake decides about one report, as pure functions: who may send it, where it is,
what it is about, whether an operator must look, and how it is told apart from a resend."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from onegrid_contracts.cases import Channel, ReviewReason
from onegrid_contracts.reports import ReporterInput
from onegrid_intake.domain.classify import DEFAULT_MIN_CONFIDENCE, classify
from onegrid_intake.domain.ports import CategoryRule, GridMatch, Registry

# The fields of a report that the idempotency fingerprint covers (HTTP body and channel
# report alike; a gateway's own metadata such as received_at is not part of the report).
REPORT_FIELDS = frozenset(
    {
        "channel",
        "category_code",
        "description",
        "location",
        "grid_code",
        "occurred_at",
        "reporter",
        "attachments",
        "resolved_on_site",
    }
)

ALL_CHANNELS = frozenset(Channel)
# Which channels each role may submit on. Gateways (role service) and the command centre
# relay every channel; residents use their apps; grid workers their own app.
CHANNELS_BY_ROLE: dict[str, frozenset[Channel]] = {
    "reporter": frozenset({Channel.WECHAT, Channel.RESIDENT_APP}),
    "grid_worker": frozenset({Channel.GRID_WORKER_APP}),
    "operator": ALL_CHANNELS,
    "service": ALL_CHANNELS,
    "admin": ALL_CHANNELS,
}
SUBMIT_ROLES = tuple(CHANNELS_BY_ROLE)


def allowed_channels(roles: Iterable[str]) -> frozenset[Channel]:
    allowed: frozenset[Channel] = frozenset()
    for role in roles:
        allowed |= CHANNELS_BY_ROLE.get(role, frozenset())
    return allowed


def fingerprint(report: dict[str, Any]) -> str:
    """SHA-256 of the report's canonical JSON (keys sorted): equal iff the same report."""
    canonical = {k: v for k, v in report.items() if k in REPORT_FIELDS}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def reporter_id(
    key: bytes,
    reporter: ReporterInput | None,
    *,
    subject: str | None,
    report_id: str,
) -> str:
    """An opaque reference, stable across one person's reports: a keyed hash of the phone,
    else the ID number, else the caller's account; anonymous reports get one of their own."""
    if reporter is not None and reporter.phone:
        basis = "phone:" + reporter.phone
    elif reporter is not None and reporter.id_number:
        basis = "id:" + reporter.id_number
    elif subject:
        basis = "sub:" + subject
    else:
        return "rp-anon-" + report_id.replace("-", "")[:16]
    digest = hmac.new(key, basis.encode(), hashlib.sha256).hexdigest()
    return "rp-" + digest[:16]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class Assessment:
    """Where the report is, what it is about, and what an operator must look at."""

    grid: GridMatch | None
    category: CategoryRule | None
    category_confidence: float | None  # None when the reporter chose the category
    review_reasons: tuple[ReviewReason, ...]
    errors: tuple[FieldError, ...] = field(default=())


def assess(
    *,
    registry: Registry,
    lon: float | None,
    lat: float | None,
    grid_code: str | None,
    category_code: str | None,
    description: str,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> Assessment:
    errors: list[FieldError] = []
    reasons: list[ReviewReason] = []

    named_grid = None
    if grid_code is not None:
        named_grid = registry.grid(grid_code)
        if named_grid is None:
            errors.append(FieldError("grid_code", f"unknown grid code {grid_code!r}"))
    grid = None
    if lon is not None and lat is not None:
        grid = registry.locate(lon, lat)
    if grid is None:
        grid = named_grid
    if grid is None and not errors:
        reasons.append(ReviewReason.OUTSIDE_GRID)

    category = None
    confidence: float | None = None
    if category_code is not None:
        category = registry.category(category_code)
        if category is None:
            errors.append(FieldError("category_code", f"unknown category {category_code!r}"))
        elif not category.active:
            errors.append(FieldError("category_code", f"category {category_code!r} is retired"))
    else:
        proposal = classify(description, registry.categories(), min_confidence=min_confidence)
        confidence = proposal.confidence
        if proposal.category_code is not None:
            category = registry.category(proposal.category_code)
        elif proposal.best_candidate is None:
            reasons.append(ReviewReason.NO_CATEGORY)
        else:
            reasons.append(ReviewReason.LOW_CATEGORY_CONFIDENCE)
    return Assessment(grid, category, confidence, tuple(reasons), tuple(errors))


def applicant_errors(
    rule: CategoryRule | None, reporter: ReporterInput | None
) -> tuple[FieldError, ...]:
    """A service request filed on a resident's behalf (低保, 高龄补贴 …) is the applicant's
    own: the unit cannot act without their name and resident ID number."""
    if rule is None or not rule.requires_id_number:
        return ()
    errors: list[FieldError] = []
    if reporter is None or not reporter.id_number:
        errors.append(
            FieldError(
                "reporter.id_number",
                f"category {rule.code} is a service request: give the applicant's resident "
                "ID number",
            )
        )
    if reporter is None or not reporter.name:
        errors.append(
            FieldError(
                "reporter.name",
                f"category {rule.code} is a service request: give the applicant's name",
            )
        )
    return tuple(errors)
