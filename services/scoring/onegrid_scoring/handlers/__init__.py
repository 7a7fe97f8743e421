"""Kafka side of scoring: every case event on `cases.events.v1` is recorded once.

The runtime's inbox makes redeliveries no-ops in the same transaction as the effect; the
event table's unique event id is a second guard (a replayed topic after an inbox purge).
"""

from __future__ import annotations

from collections.abc import Sequence

from onegrid_common.consumer import Handler, Incoming, PermanentError, Subscription, Transaction
from onegrid_contracts import cases
from onegrid_contracts.base import PAYLOAD_TYPES
from onegrid_contracts.cases import CaseEvent
from onegrid_contracts.catalogue import CASES_EVENTS
from onegrid_scoring.scorer import Scorer

# Every concrete case event: scoring keeps them all, so a new measure can be computed
# from history by a rebuild.
CASE_EVENT_TYPES: tuple[str, ...] = tuple(
    sorted(
        t
        for t, model in PAYLOAD_TYPES.items()
        if issubclass(model, CaseEvent) and model.__module__ == cases.__name__
    )
)


def on_case_event(scorer: Scorer) -> Handler:
    async def handle(tx: Transaction, msg: Incoming) -> None:
        if not isinstance(msg.payload, CaseEvent):
            raise PermanentError(f"{msg.envelope.type} is not a case event")
        # Recorded with the batch's other events: two round trips for the batch.
        tx.defer(scorer.record_events, (msg.envelope.id, msg.payload))

    return handle


def subscriptions(
    scorer: Scorer, *, name: str = "cases", topic: str = CASES_EVENTS
) -> Sequence[Subscription]:
    handle = on_case_event(scorer)
    return [
        Subscription(name=name, topics=(topic,), handlers=dict.fromkeys(CASE_EVENT_TYPES, handle))
    ]
