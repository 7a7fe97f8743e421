"""Write the JSON Schema of every payload and the AsyncAPI 3.0 document to contracts/schemas/.

    python -m onegrid_contracts.generate            # write
    python -m onegrid_contracts.generate --check    # exit 1 if the committed files are stale

Non-Python teams integrate from these files alone, so they are committed and the output is
deterministic (sorted keys, stable order, trailing newline).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from onegrid_contracts import catalogue
from onegrid_contracts.base import PAYLOAD_TYPES, Payload
from onegrid_contracts.envelope import (
    H_CONTENT_TYPE,
    H_ID,
    H_SOURCE,
    H_SPECVERSION,
    H_SUBJECT,
    H_TIME,
    H_TRACEPARENT,
    H_TRACESTATE,
    H_TYPE,
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def payload_models() -> dict[str, type[Payload]]:
    """Every payload declared in onegrid_contracts, by CloudEvents type (sorted)."""
    return {
        ce_type: model
        for ce_type, model in sorted(PAYLOAD_TYPES.items())
        if model.__module__.startswith("onegrid_contracts.")
    }


def schema_file_name(ce_type: str) -> str:
    return f"{ce_type}.json"


def json_schema(model: type[Payload]) -> dict[str, Any]:
    """The consumer-side (validation) JSON Schema of a payload, examples included."""
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_file_name(model.ce_type),
        "x-ce-type": model.ce_type,
        **schema,
    }


def _dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _channel_id(name: str) -> str:
    return name.replace(".", "-").replace("{", "").replace("}", "")


def _headers_schema() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka binary binding headers plus W3C trace context.",
        "required": [H_SPECVERSION, H_ID, H_TYPE, H_SOURCE, H_TIME, H_CONTENT_TYPE],
        "properties": {
            H_SPECVERSION: {"const": "1.0", "description": "CloudEvents spec version."},
            H_ID: {**text, "description": "Event id (UUID); consumers deduplicate on it."},
            H_TYPE: {**text, "description": "Payload type, e.g. onegrid.case.reported.v1."},
            H_SOURCE: {**text, "description": "Producing service, e.g. intake."},
            H_TIME: {**text, "format": "date-time", "description": "RFC 3339 event time."},
            H_SUBJECT: {**text, "description": "The case id, for case-related events."},
            H_CONTENT_TYPE: {"const": "application/json"},
            H_TRACEPARENT: {
                **text,
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context; one trace per case.",
            },
            H_TRACESTATE: {**text, "description": "W3C trace state."},
        },
    }


def _topic_binding(spec: catalogue.TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [spec.cleanup_policy]}
    if spec.retention_ms is not None:
        config["retention.ms"] = spec.retention_ms
    return {
        "kafka": {
            "topic": spec.name,
            "partitions": spec.partitions,
            "topicConfiguration": config,
            "bindingVersion": "0.5.0",
        }
    }


def asyncapi_document() -> dict[str, Any]:
    models = payload_models()
    name_of = {ce_type: model.__name__ for ce_type, model in models.items()}

    specs = catalogue.static_topics()
    tasks_spec, replies_spec = catalogue.unit_topics("unit")
    unit_specs = [
        (tasks_spec, "dept.{unit}.tasks.v1", "adapter of the unit"),
        (replies_spec, "dept.{unit}.replies.v1", "adapter of the unit"),
    ]

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    all_specs: list[tuple[catalogue.TopicSpec, str, str | None]] = [
        (spec, spec.name, None) for spec in specs
    ] + [(spec, address, adapter) for spec, address, adapter in unit_specs]
    for spec, address, adapter in sorted(all_specs, key=lambda item: item[1]):
        cid = _channel_id(address)
        channel: dict[str, Any] = {
            "address": address,
            "description": spec.description or f"Dead-letter topic ({spec.key} as key).",
            "messages": {
                name_of[t]: {"$ref": f"#/components/messages/{name_of[t]}"}
                for t in sorted(spec.payloads)
            },
            "bindings": _topic_binding(spec),
            "x-key": spec.key,
        }
        producers = list(spec.producers)
        consumers = list(spec.consumers)
        if adapter is not None:
            channel["parameters"] = {
                "unit": {"description": "Unit code (registry unit with integration mode adapter)."}
            }
            channel["bindings"]["kafka"]["topic"] = address
            producers = [adapter if p.startswith("adapter-") else p for p in producers]
            consumers = [adapter if c.startswith("adapter-") else c for c in consumers]
        channel["x-producers"] = producers
        channel["x-consumers"] = consumers
        if spec.readers:
            channel["x-readers"] = list(spec.readers)  # whole topic into memory, no group
        channels[cid] = channel
        if spec.payloads:
            refs = [
                {"$ref": f"#/channels/{cid}/messages/{name_of[t]}"} for t in sorted(spec.payloads)
            ]
            operations[f"send-{cid}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": "Produced by " + ", ".join(producers),
                "messages": refs,
            }
            if consumers or spec.readers:
                readers = [f"{r} (read whole)" for r in spec.readers]
                operations[f"receive-{cid}"] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "summary": "Consumed by " + ", ".join([*consumers, *readers]),
                    "messages": refs,
                }

    messages: dict[str, Any] = {}
    for ce_type, model in models.items():
        schema = model.model_json_schema(mode="validation")
        examples = schema.get("examples", [])
        messages[model.__name__] = {
            "name": model.__name__,
            "title": ce_type,
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {
                "schemaFormat": "application/schema+json;version=draft-2020-12",
                "schema": {"$ref": f"./{schema_file_name(ce_type)}"},
            },
            "examples": [
                {
                    "name": f"example-{i + 1}",
                    "headers": {
                        H_SPECVERSION: "1.0",
                        H_TYPE: ce_type,
                        H_CONTENT_TYPE: "application/json",
                    },
                    "payload": example,
                }
                for i, example in enumerate(examples)
            ],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "onegrid",
            "version": "1.0.0",
            "description": "Every Kafka topic and message of onegrid. Messages use the "
            "CloudEvents 1.0 Kafka binary binding: attributes in headers, the JSON payload as "
            "the record value. Consumers ignore unknown fields and must tolerate unknown enum "
            "values; within a topic version only optional fields are added.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {
            "schemas": {"CloudEventsHeaders": _headers_schema()},
            "messages": messages,
        },
    }


def render() -> dict[str, str]:
    """File name → content of everything generated."""
    files = {
        schema_file_name(ce_type): _dump_json(json_schema(model))
        for ce_type, model in payload_models().items()
    }
    files[ASYNCAPI_FILE] = yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def stale_files(out_dir: Path = SCHEMA_DIR, files: dict[str, str] | None = None) -> list[str]:
    """Files that differ from what would be generated, are missing, or are left over."""
    files = render() if files is None else files
    stale = [
        name
        for name, content in files.items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text("utf-8") != content
    ]
    if out_dir.is_dir():
        generated = set(files)
        stale += [
            p.name
            for p in out_dir.iterdir()
            if p.suffix in {".json", ".yaml"} and p.name not in generated
        ]
    return sorted(stale)


def write(out_dir: Path = SCHEMA_DIR) -> list[str]:
    """Write every file, remove left-over ones; return the names that changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = render()
    changed = stale_files(out_dir, files)
    for name in changed:
        path = out_dir / name
        if name in files:
            path.write_text(files[name], "utf-8")
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onegrid_contracts.generate")
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="output folder")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(
                f"{len(stale)} generated file(s) in {args.out} are stale: "
                + ", ".join(stale)
                + "\nrun: python -m onegrid_contracts.generate",
                file=sys.stderr,
            )
            return 1
        print(f"{args.out}: up to date")
        return 0
    changed = write(args.out)
    print(
        f"{args.out}: {len(changed)} file(s) written"
        + (": " + ", ".join(changed) if changed else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
