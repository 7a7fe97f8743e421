"""Every payload's examples validate against its model AND its committed JSON Schema:
non-Python teams integrate from the schemas and examples alone."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from onegrid_contracts.base import Payload
from onegrid_contracts.envelope import decode_payload, encode_payload
from onegrid_contracts.generate import SCHEMA_DIR, payload_models
from onegrid_contracts.reports import ReportBody

MODELS = payload_models()


def committed_schema(ce_type: str) -> dict[str, Any]:
    path: Path = SCHEMA_DIR / f"{ce_type}.json"
    assert path.is_file(), f"{path} is missing: run python -m onegrid_contracts.generate"
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def examples_of(model: type[Payload] | type[ReportBody]) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = model.model_json_schema().get("examples", [])
    return examples


@pytest.mark.parametrize("ce_type", sorted(MODELS))
def test_every_payload_has_a_realistic_example(ce_type: str) -> None:
    assert examples_of(MODELS[ce_type]), f"{ce_type} has no example"


@pytest.mark.parametrize("ce_type", sorted(MODELS))
def test_examples_validate_against_model_and_committed_schema(ce_type: str) -> None:
    model = MODELS[ce_type]
    schema = committed_schema(ce_type)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    for example in examples_of(model) + schema.get("examples", []):
        model.model_validate(example)
        errors = sorted(validator.iter_errors(example), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@pytest.mark.parametrize("ce_type", sorted(MODELS))
def test_encoded_examples_decode_to_the_same_payload_and_fit_the_schema(ce_type: str) -> None:
    model = MODELS[ce_type]
    schema = committed_schema(ce_type)
    for example in examples_of(model):
        payload = model.model_validate(example)
        body = encode_payload(payload)
        assert decode_payload(ce_type, body) == payload
        jsonschema.validate(json.loads(body), schema)


def test_case_examples_speak_chinese_where_a_person_writes() -> None:
    example = examples_of(MODELS["onegrid.case.reported.v1"])[0]
    assert example["description"] == "小区门口垃圾堆积多日无人清理"
    assert example["reporter"]["masked_phone"] == "138****5678"


def test_committed_schema_refuses_what_the_model_refuses() -> None:
    schema = committed_schema("onegrid.case.reported.v1")
    bad = {**examples_of(MODELS["onegrid.case.reported.v1"])[0]}
    bad["location"] = {"lon": 181.0, "lat": 30.7}
    with pytest.raises(jsonschema.ValidationError, match="181"):
        jsonschema.validate(bad, schema)


def test_report_body_example_is_valid() -> None:
    for example in examples_of(ReportBody):
        ReportBody.model_validate(example)
