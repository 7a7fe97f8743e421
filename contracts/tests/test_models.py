"""Validation rules of the payloads: bad input gets a clear error."""

from typing import Any

import pytest
from pydantic import ValidationError

from onegrid_contracts import registry
from onegrid_contracts.cases import CaseClosed, CaseReported, DeadlineExtended
from onegrid_contracts.primitives import (
    CategoryCode,
    GridCode,
    Location,
    ReporterRef,
    StaffCode,
)
from onegrid_contracts.reports import ChannelReport, ReportBody, id_number_is_valid
from onegrid_contracts.scores import ScoreUpdated


def example(model: Any, index: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = model.model_json_schema()["examples"][index]
    return dict(data)


@pytest.mark.parametrize(("lon", "lat"), [(180.5, 30.7), (-181, 30.7), (111.3, 90.1), (111.3, -91)])
def test_coordinates_outside_wgs84_are_refused(lon: float, lat: float) -> None:
    with pytest.raises(ValidationError, match=r"(lon|lat)"):
        Location(lon=lon, lat=lat)


def test_naive_datetimes_are_refused() -> None:
    data = example(CaseReported)
    data["occurred_at"] = "2026-11-23T09:30:00"
    with pytest.raises(ValidationError, match="occurred_at"):
        CaseReported.model_validate(data)


def test_reporter_phone_must_be_masked() -> None:
    with pytest.raises(ValidationError, match="masked_phone"):
        ReporterRef(reporter_id="rp-1", masked_phone="13800135678")


def test_anonymous_reporter_carries_no_contact() -> None:
    with pytest.raises(ValidationError, match="anonymous"):
        ReporterRef(reporter_id="rp-1", anonymous=True, masked_phone="138****5678")


def test_duplicate_report_joins_its_case() -> None:
    data = example(CaseReported)
    data["duplicate_of"] = "11111111-2222-4333-8444-555555555555"
    with pytest.raises(ValidationError, match="duplicate_of must equal case_id"):
        CaseReported.model_validate(data)


def test_grid_path_ends_with_the_grid() -> None:
    data = example(CaseReported)
    data["grid_path"] = ["420500", "420502"]
    with pytest.raises(ValidationError, match="grid_path must end with grid_code"):
        CaseReported.model_validate(data)


def test_a_case_closed_other_than_fixed_says_why() -> None:
    data = example(CaseClosed)
    data["outcome"] = "not_fixable"
    with pytest.raises(ValidationError, match="needs a reason"):
        CaseClosed.model_validate(data)


def test_an_extension_moves_the_deadline_later() -> None:
    data = example(DeadlineExtended)
    data["new_due_at"] = data["old_due_at"]
    with pytest.raises(ValidationError, match="later"):
        DeadlineExtended.model_validate(data)


def test_payloads_are_frozen_and_ignore_unknown_fields() -> None:
    reported = CaseReported.model_validate({**example(CaseReported), "future_field": 1})
    assert not hasattr(reported, "future_field")
    with pytest.raises(ValidationError, match="frozen"):
        reported.description = "changed"  # type: ignore[misc]


def test_http_report_body_refuses_a_misspelt_field() -> None:
    data = example(ReportBody)
    data["descripton"] = data.pop("description")
    with pytest.raises(ValidationError) as info:
        ReportBody.model_validate(data)
    locs = {err["loc"] for err in info.value.errors()}
    assert ("descripton",) in locs
    assert ("description",) in locs


def test_http_report_body_refuses_a_misspelt_nested_field() -> None:
    data = example(ReportBody)
    data["reporter"] = {"name": "张三", "phnoe": "13800138000"}
    with pytest.raises(ValidationError, match="phnoe"):
        ReportBody.model_validate(data)


def test_report_needs_a_point_or_an_address_with_grid() -> None:
    data = example(ReportBody)
    data["location"] = {"address": "西陵区夷陵大道 58 号"}
    with pytest.raises(ValidationError, match="needs grid_code"):
        ReportBody.model_validate(data)
    data["grid_code"] = "420502003001001"
    assert ReportBody.model_validate(data).location is not None
    data["location"] = {"lon": 111.3}
    with pytest.raises(ValidationError, match="both lon and lat"):
        ReportBody.model_validate(data)


def test_report_text_with_control_characters_is_refused() -> None:
    data = example(ReportBody)
    data["description"] = "垃圾\x00堆积"
    with pytest.raises(ValidationError, match="control characters"):
        ReportBody.model_validate(data)


def test_only_grid_workers_resolve_on_site() -> None:
    data = example(ReportBody)
    data["channel"] = "wechat"
    data["resolved_on_site"] = True
    with pytest.raises(ValidationError, match="resolved_on_site"):
        ReportBody.model_validate(data)


def test_channel_report_has_the_http_body_fields_plus_its_key() -> None:
    body_fields = set(ReportBody.model_fields)
    assert body_fields < set(ChannelReport.model_fields)
    assert set(ChannelReport.model_fields) - body_fields == {
        "channel_report_id",
        "gateway",
        "received_at",
    }


def test_resident_id_check_character() -> None:
    assert id_number_is_valid("11010519491231002X")
    assert not id_number_is_valid("110105194912310021")
    data = example(ReportBody)
    data["reporter"] = {"name": "张三", "id_number": "110105194912310021"}
    with pytest.raises(ValidationError, match="check character"):
        ReportBody.model_validate(data)


def test_score_rank_cannot_exceed_the_field() -> None:
    data = example(ScoreUpdated)
    data["rank"] = 10
    data["rank_of"] = 9
    with pytest.raises(ValidationError, match="rank is greater"):
        ScoreUpdated.model_validate(data)
    assert ScoreUpdated.model_validate(example(ScoreUpdated)).key == "unit:urban:2026-Q4"


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (GridCode, registry.GridCode),
        (CategoryCode, registry.CategoryCode),
        (StaffCode, registry.StaffCode),
    ],
)
def test_code_rules_match_the_registry(ours: Any, theirs: Any) -> None:
    # written twice because registry.py imports cases.py; this keeps them equal in meaning
    samples = ["420502003001001", "environment.exposed_garbage", "S0000123", "4205", "X"]
    from pydantic import TypeAdapter

    for sample in samples:
        ok_ours = _accepts(TypeAdapter(ours), sample)
        ok_theirs = _accepts(TypeAdapter(theirs), sample)
        assert ok_ours == ok_theirs, sample


def _accepts(adapter: Any, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True
