import subprocess
import sys
from pathlib import Path

import yaml

from onegrid_contracts.generate import ASYNCAPI_FILE, SCHEMA_DIR, main, render, stale_files


def test_committed_schemas_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "onegrid_contracts.generate", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_output_is_deterministic() -> None:
    assert render() == render()


def test_check_reports_a_stale_and_a_left_over_file(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert stale_files(tmp_path) == []
    (tmp_path / "onegrid.case.closed.v1.json").write_text("{}\n", "utf-8")
    (tmp_path / "onegrid.case.gone.v1.json").write_text("{}\n", "utf-8")
    assert stale_files(tmp_path) == ["onegrid.case.closed.v1.json", "onegrid.case.gone.v1.json"]
    assert main(["--check", "--out", str(tmp_path)]) == 1


def test_asyncapi_names_every_topic_with_cloudevents_headers() -> None:
    doc = yaml.safe_load((SCHEMA_DIR / ASYNCAPI_FILE).read_text("utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"cases.events.v1", "dept.{unit}.tasks.v1", "dept.{unit}.replies.v1"} <= addresses
    headers = doc["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"} <= set(
        headers["required"]
    )
    reported = doc["components"]["messages"]["CaseReported"]
    assert reported["payload"]["schema"]["$ref"] == "./onegrid.case.reported.v1.json"
    assert reported["examples"][0]["payload"]["description"] == "小区门口垃圾堆积多日无人清理"
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].removeprefix("#/channels/")
        assert channel in doc["channels"]
