"""A service's own RegistryView: the registry topics its Kafka ACLs grant it (the
catalogue's `readers`), kept in `rt.state["registry_view"]` for the service to use and for
`close_service_view` to stop. Reading another topic would be refused by the broker under
Strimzi's simple authorization, so the topics come from the catalogue's name of the service
(passed in: tests run services under other names, for schemas of their own)."""

from __future__ import annotations

from typing import Final

from onegrid_common.registry_view.view import RegistryView
from onegrid_common.service import Runtime
from onegrid_contracts.catalogue import registry_topics_read_by

STATE_KEY: Final = "registry_view"


async def open_service_view(rt: Runtime, reader: str, *, timeout_s: float = 60.0) -> RegistryView:
    """The view of the registry topics the catalogue grants `reader`, caught up."""
    view = await RegistryView.start(
        rt.settings.kafka, topics=registry_topics_read_by(reader), timeout_s=timeout_s
    )
    rt.state[STATE_KEY] = view
    return view


async def close_service_view(rt: Runtime) -> None:
    """Stop the view `open_service_view` opened, if it did."""
    view = rt.state.pop(STATE_KEY, None)
    if isinstance(view, RegistryView):
        await view.stop()
