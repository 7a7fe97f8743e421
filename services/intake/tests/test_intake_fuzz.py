"""Fuzzing POST /v1/reports: whatever the body, intake answers 2xx or 4xx, never 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onegrid_intake.testing import body, grid_points, key

from .conftest import IntakeUnderTest

pytestmark = pytest.mark.integration

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50), st.sampled_from(["", "\x00", "井盖" * 3, "1" * 18, "13800138000"]),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = ["channel", "category_code", "description", "location", "grid_code", "occurred_at",
          "reporter", "attachments", "resolved_on_site", "extra"]  # fmt: skip


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> Any:
    """A valid report with a few fields replaced by arbitrary JSON, or arbitrary JSON."""
    if draw(st.booleans()):
        return draw(json_values)
    report = body(111.29, 30.70)
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        if draw(st.integers(0, 4)) == 0:
            report.pop(name, None)
        else:
            report[name] = draw(json_values)
    return report


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(report=near_valid_bodies())
async def test_no_body_makes_intake_fail(intake: IntakeUnderTest, report: Any) -> None:
    auth = intake.token("fuzzer", "operator")
    resp = await intake.client.post("/v1/reports", json=report, headers={**auth, **key()})
    assert resp.status_code < 500, resp.text
    assert resp.status_code in (202, 400, 409, 413, 422, 429), resp.text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lon=st.floats(-180, 180), lat=st.floats(-90, 90),
    description=st.text(min_size=1, max_size=200), category=st.sampled_from(
        [None, "environment.exposed_garbage", "facilities.manhole_cover"]),
)  # fmt: skip
async def test_any_valid_point_and_text_is_accepted(
    intake: IntakeUnderTest, lon: float, lat: float, description: str, category: str | None
) -> None:
    # A caller per example: hypothesis often draws one longitude many times over, and a
    # caller past the rate limit (CALLER_LIMIT a minute) gets 429, not what this checks.
    auth = intake.token(f"fuzz-valid-{uuid.uuid4().hex}", "operator")
    report = body(lon, lat, description=description, category_code=category)
    resp = await intake.client.post("/v1/reports", json=report, headers={**auth, **key()})
    assert resp.status_code in (202, 422), resp.text
    if resp.status_code == 422:  # only the text can be bad: blank or control characters
        assert {e["field"] for e in resp.json()["errors"]} <= {"description", "body", ""}
    assert grid_points(intake.city)
