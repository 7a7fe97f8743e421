"""Every service's registry view follows exactly the registry topics its Kafka ACLs grant
(the catalogue's `readers`): a view reading one more topic is refused by the broker at
start under Strimzi's simple authorization, one fewer leaves a lookup empty."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from onegrid_common.registry_view import RegistryView
from onegrid_common.registry_view.service_view import STATE_KEY
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_common.settings import Settings
from onegrid_contracts.catalogue import registry_topics_read_by, static_topics
from onegrid_dispatch import main as dispatch
from onegrid_dispatch.settings import DispatchSettings
from onegrid_intake import main as intake
from onegrid_notification import main as notification
from onegrid_registry import main as registry
from onegrid_scoring import main as scoring

pytestmark = pytest.mark.integration

# (service, what its start-up runs to open the view; each keeps it under STATE_KEY)
VIEW_STARTS: list[tuple[ServiceDefinition, Callable[[Runtime], Awaitable[Any]]]] = [
    (registry.SERVICE, registry.start_view),
    (intake.SERVICE, intake.registry_view),
    (dispatch.SERVICE, dispatch.default_registry),
    (scoring.SERVICE, scoring.registry_view),
    (notification.SERVICE, notification.registry_directory),
]


@pytest.mark.parametrize(
    ("service", "open_view"), VIEW_STARTS, ids=[s.name for s, _ in VIEW_STARTS]
)
async def test_a_service_view_follows_the_registry_topics_granted_to_it(
    settings: Settings,
    service: ServiceDefinition,
    open_view: Callable[[Runtime], Awaitable[Any]],
) -> None:
    rt = Runtime(service=service, settings=settings)
    if service is dispatch.SERVICE:
        rt.state["settings"] = DispatchSettings()  # its registry_file (unset: read the topics)
    await open_view(rt)
    view = rt.state[STATE_KEY]
    assert isinstance(view, RegistryView)
    try:
        granted = registry_topics_read_by(service.name)
        assert granted, f"{service.name} is granted no registry topic"
        assert sorted(view.topics) == sorted(granted)
    finally:
        await view.stop()


def test_every_service_granted_a_registry_topic_is_checked_above() -> None:
    readers = {reader for spec in static_topics() for reader in spec.readers}
    assert readers == {service.name for service, _ in VIEW_STARTS}
