"""adapter-webhook: a YAML-configured unit against the generic webhook simulator (signed
events out, signed callbacks in, an outage in the middle), and configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from onegrid_adapter_webhook.config import ConfigError, load_config
from onegrid_adapter_webhook.main import build
from onegrid_common.adapters import DeliveryPolicy
from onegrid_common.adapters.testkit import (
    complete,
    free_port,
    outage_in_the_middle,
    read_replies,
    sample_task,
    send_tasks,
    serve_app,
    wait_for,
)
from onegrid_common.db import schema_for
from onegrid_common.service import build_app
from onegrid_common.settings import Settings
from onegrid_common.simulators.webhook import WebhookSim
from onegrid_common.testing.helpers import create_topic
from onegrid_contracts.catalogue import unit_replies_topic, unit_tasks_topic
from onegrid_contracts.tasks import DeptTaskCompleted, DeptTaskRefused

SECRET = "housing-test-secret"
POLICY = DeliveryPolicy(
    max_attempts=3,
    backoff_base_s=0.2,
    backoff_cap_s=0.5,
    breaker_failures=3,
    breaker_reset_s=0.5,
    call_timeout_s=3.0,
)
CONFIG = """
units:
  {unit}:
    endpoint: {endpoint}
    secret: {secret}
    callback_base_url: {callback}
    fields:
      ref: task_id
      title: category_name
      detail: description
      case: case_no
      lon: location.lon
      source: "=onegrid"
    response: {{ref: ticket, status: status, message: message}}
    callback: {{ref: ticket, status: state, note: message, event_id: event_id, at: at}}
    status_mapping:
      received: accepted
      rejected: refused
      working: progressed
      done: completed
"""


@dataclass
class Stack:
    unit: str
    sim: WebhookSim
    sim_url: str


@contextlib.asynccontextmanager
async def serve_unit(
    settings: Settings, kafka_bootstrap: str, directory: Path, policy: DeliveryPolicy
) -> AsyncIterator[Stack]:
    """A housing unit of its own behind the webhook simulator, served by adapter-webhook."""
    unit = f"housing-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, unit_tasks_topic(unit), partitions=1)
    await create_topic(kafka_bootstrap, unit_replies_topic(unit), partitions=1)
    sim = WebhookSim(
        secret=SECRET, refuse_values=frozenset({"聚众赌博"}), state_delays_s=(0.2, 0.4)
    )
    port = free_port()
    async with serve_app(sim.app()) as sim_url:
        path = directory / "units.yaml"
        path.write_text(
            CONFIG.format(
                unit=unit,
                endpoint=f"{sim_url}/hooks/onegrid",
                secret=SECRET,
                callback=f"http://127.0.0.1:{port}",
            )
        )
        service = build(load_config(path), policy)
        async with serve_app(build_app(service, settings), port=port):
            yield Stack(unit, sim, sim_url)


@pytest.fixture(scope="module")
async def stack(
    settings: Settings, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("webhook")
    async with serve_unit(settings, kafka_bootstrap, directory, POLICY) as served:
        yield served


@pytest.mark.integration
async def test_outage_in_the_middle_loses_nothing_and_duplicates_nothing(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    first = [sample_task(stack.unit) for _ in range(4)]
    during = [sample_task(stack.unit) for _ in range(4)]
    replies = await outage_in_the_middle(
        settings.kafka, stack.sim_url, first, during, received=lambda: len(stack.sim.by_ref)
    )
    tasks = [*first, *during]
    assert [r["ref"] for r in stack.sim.received if r["type"] == "assigned"] == [
        str(t.task_id) for t in tasks
    ]
    body = stack.sim.tickets[stack.sim.by_ref[str(first[0].task_id)]]["body"]
    assert body["title"] == "暴露垃圾"
    assert body["source"] == "onegrid"
    assert body["lon"] == pytest.approx(111.2865)
    assert stack.sim.bad_signatures == 0
    done = [r.payload for r in replies if isinstance(r.payload, DeptTaskCompleted)]
    assert {d.result for d in done} == {"已处理完毕"}


@pytest.mark.integration
async def test_department_refusal_maps_to_a_refused_reply(
    stack: Stack, settings: Settings, kafka_bootstrap: str
) -> None:
    task = sample_task(stack.unit, category_code="security.gambling", category_name="聚众赌博")
    await send_tasks(settings.kafka, [task])
    replies = await read_replies(
        kafka_bootstrap, stack.unit, until=lambda rs: complete([task], rs), timeout_s=90
    )
    refused = [r.payload for r in replies if isinstance(r.payload, DeptTaskRefused)]
    assert [r.reason for r in refused if r.task_id == task.task_id] == ["不属于本单位职责"]


# Run at COMMIT, before the task's row becomes visible to other transactions: a worker
# woken inside the transaction reads during this half second and finds nothing.
SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON adapter_delivery
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


@pytest.mark.integration
async def test_a_queued_task_goes_out_once_committed_not_after_an_idle_interval(
    settings: Settings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # The consumer wakes the unit's worker once the task's row is committed: woken before,
    # the worker would find no row and sleep the whole idle interval.
    idle = POLICY.model_copy(update={"idle_interval_s": 120.0})
    async with serve_unit(settings, kafka_bootstrap, tmp_path, idle) as served:
        conn = await asyncpg.connect(settings.db.dsn)
        try:
            await conn.execute(f"SET search_path TO {schema_for('adapter-webhook')}")
            await conn.execute(SLOW_COMMIT)
            await asyncio.sleep(1.0)  # the worker's first look finds the queue empty
            task = sample_task(served.unit)
            await send_tasks(settings.kafka, [task])

            async def delivered() -> bool:
                return str(task.task_id) in served.sim.by_ref

            await wait_for(delivered, timeout_s=30, what="the task's delivery")
        finally:
            await conn.execute(
                "DROP TRIGGER slow_commit ON adapter_delivery; DROP FUNCTION slow_commit()"
            )
            await conn.close()


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        CONFIG.format(unit="Bad_Unit", endpoint="ftp://x", secret="s", callback="http://a").replace(
            "detail: description", "detail: no_such_field"
        )
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "no_such_field" in message
    assert "endpoint" in message
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
