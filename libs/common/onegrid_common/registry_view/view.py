"""RegistryView: the registry's master data held in memory, built from the compacted topics.

    view = await RegistryView.start(settings.kafka, topics=registry_topics_read_by("intake"))
    location = view.locate(111.30, 30.70)          # Location | None
    decision = view.route("environment.exposed_garbage", location.grid.code, Priority.NORMAL)
    ...
    await view.stop()

`topics` has no default: a service follows the topics the catalogue names it a reader of
(its Kafka ACLs grant no others); tests and tools that want everything pass
REGISTRY_TOPICS. Start: every partition of those topics is assigned (no consumer group: each
process reads everything), read from the beginning up to the end offsets taken at start;
then the view is `caught_up` and `start` returns. A background task keeps reading, so later
changes arrive within milliseconds of their publication. A record with a null value (a
tombstone) deletes its key. A record that cannot be decoded is logged and skipped: a read
model has no dead-letter topic, and the next good version of the entity replaces it.

The spatial index (GridIndex) and the router (Router) are derived data: a change of grids
(or of rules and units) only marks them stale; they are rebuilt once after catch-up, then a
short debounce after the last change, and in any case before the next query that needs them.
So catching up with 1,110 grids builds the index once, not once per message.

All of it runs on the caller's event loop: queries are plain method calls between awaits,
never see half-applied batches, and need no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from onegrid_common.kafka_admin import kafka_client_kwargs
from onegrid_common.registry_view.codes import path_codes
from onegrid_common.registry_view.locate import GridIndex, Location
from onegrid_common.registry_view.routing import RouteDecision, Router, RoutingError
from onegrid_common.settings import KafkaSettings
from onegrid_common.working_time import WorkingCalendar, YearCalendar
from onegrid_contracts.cases import Tier
from onegrid_contracts.envelope import decode
from onegrid_contracts.registry import (
    REGISTRY_ENTITIES,
    Building,
    CalendarYear,
    Category,
    Grid,
    IntegrationMode,
    Priority,
    RegistryEntity,
    RoutingRule,
    Staff,
    StaffRole,
    Unit,
)

log = logging.getLogger(__name__)

E = TypeVar("E", bound=RegistryEntity)

ENTITY_BY_TOPIC: dict[str, type[RegistryEntity]] = {e.topic: e for e in REGISTRY_ENTITIES}
REGISTRY_TOPICS: tuple[str, ...] = tuple(ENTITY_BY_TOPIC)


class RegistryNotCaughtUpError(TimeoutError):
    """The registry topics could not be read to their end offsets within the timeout."""


class RegistryView:
    """The registry in memory. Create with `await RegistryView.start(...)`."""

    def __init__(self, kafka: KafkaSettings, *, topics: Sequence[str]) -> None:
        unknown = [t for t in topics if t not in ENTITY_BY_TOPIC]
        if unknown:
            raise ValueError(f"not registry topics: {', '.join(unknown)}")
        if not topics:
            raise ValueError("a registry view needs at least one registry topic")
        self._kafka = kafka
        self._topics = tuple(topics)
        self._entities: dict[type[RegistryEntity], dict[str, RegistryEntity]] = {
            ENTITY_BY_TOPIC[t]: {} for t in self._topics
        }
        self._staff_by_grid: dict[str, set[str]] = defaultdict(set)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._rebuild_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._index: GridIndex | None = None
        self._router: Router | None = None
        self._calendar: WorkingCalendar | None = None
        # Derived data exists only for what the view follows.
        self._has_index = Grid in self._entities
        self._has_router = RoutingRule in self._entities and Unit in self._entities
        self._index_stale = self._has_index
        self._router_stale = self._has_router
        self._calendar_stale = True
        self.caught_up = False
        self.records_applied = 0
        self.rebuild_debounce_s = 0.2

    @property
    def topics(self) -> tuple[str, ...]:
        """The registry topics this view follows."""
        return self._topics

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        kafka: KafkaSettings,
        *,
        topics: Sequence[str],
        timeout_s: float = 60.0,
    ) -> RegistryView:
        """A view caught up with every record published before the call; kept current
        until `stop()`. Raises RegistryNotCaughtUpError after `timeout_s`."""
        view = cls(kafka, topics=topics)
        try:
            await asyncio.wait_for(view._catch_up(), timeout_s)
        except TimeoutError as exc:
            await view.stop()
            raise RegistryNotCaughtUpError(
                f"registry topics not read to their end within {timeout_s:.0f} s"
            ) from exc
        except BaseException:
            await view.stop()
            raise
        view._task = asyncio.create_task(view._follow(), name="registry-view")
        return view

    async def stop(self) -> None:
        for task in (self._task, self._rebuild_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._rebuild_task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _catch_up(self) -> None:
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self._kafka),
            client_id=f"{self._kafka.client_id_prefix}-registry-view",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._consumer = consumer
        await consumer.start()
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            found = await self._partitions_of(consumer, topic)
            partitions.extend(TopicPartition(topic, p) for p in sorted(found))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            self._apply_batch(batch)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        self.caught_up = True
        self._rebuild_now()
        async with self._changed:
            self._changed.notify_all()

    @staticmethod
    async def _partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        # Metadata of a topic arrives asynchronously after the first request for it.
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RegistryNotCaughtUpError(f"topic {topic} has no partitions (does it exist?)")

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000, max_records=5000)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry view: fetching failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if batch:
                self._apply_batch(batch)
                self._schedule_rebuild()
                async with self._changed:
                    self._changed.notify_all()

    # -- applying records ----------------------------------------------------------------

    def _apply_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in batch.items():
            entity_type = ENTITY_BY_TOPIC[tp.topic]
            for record in records:
                self._apply(entity_type, record)

    def _apply(self, entity_type: type[RegistryEntity], record: Any) -> None:
        if record.key is None:
            log.warning(
                "registry view: %s offset %d has no key; skipped", record.topic, record.offset
            )
            return
        key = record.key.decode()
        if record.value is None:
            self._put(entity_type, key, None)
            return
        try:
            _envelope, payload = decode(record.headers, record.value)
        except Exception as exc:
            log.warning(
                "registry view: %s offset %d (key %s) cannot be decoded: %s",
                record.topic,
                record.offset,
                key,
                exc,
            )
            return
        if not isinstance(payload, entity_type) or payload.key != key:
            log.warning(
                "registry view: %s offset %d holds a %s keyed %s; skipped",
                record.topic,
                record.offset,
                type(payload).__name__,
                key,
            )
            return
        self._put(entity_type, key, payload)

    def _put(
        self, entity_type: type[RegistryEntity], key: str, entity: RegistryEntity | None
    ) -> None:
        table = self._entities[entity_type]
        old = table.pop(key, None)
        if entity is not None:
            table[key] = entity
        self.records_applied += 1
        if entity_type is Staff:
            if isinstance(old, Staff):
                for code in old.grid_codes:
                    self._staff_by_grid[code].discard(key)
            if isinstance(entity, Staff):
                for code in entity.grid_codes:
                    self._staff_by_grid[code].add(key)
        elif entity_type is Grid:
            self._index_stale = True
        elif entity_type in (Unit, RoutingRule):
            self._router_stale = self._has_router
        elif entity_type is CalendarYear:
            self._calendar_stale = True

    # -- derived data ------------------------------------------------------------------

    def _schedule_rebuild(self) -> None:
        if not (self._index_stale or self._router_stale):
            return
        if self._rebuild_task is not None and not self._rebuild_task.done():
            self._rebuild_task.cancel()  # debounce: wait for the changes to settle

        async def later() -> None:
            await asyncio.sleep(self.rebuild_debounce_s)
            self._rebuild_now()

        self._rebuild_task = asyncio.create_task(later(), name="registry-view-rebuild")

    def _rebuild_now(self) -> None:
        if self._has_index:
            self._grid_index()
        if self._has_router:
            self._route_index()

    def _grid_index(self) -> GridIndex:
        if self._index is None or self._index_stale:
            self._index = GridIndex(self._all(Grid))
            self._index_stale = False
        return self._index

    def _route_index(self) -> Router:
        if self._router is None or self._router_stale:
            self._router = Router(self._all(RoutingRule), self._all(Unit))
            self._router_stale = False
        return self._router

    def _table(self, entity_type: type[E]) -> dict[str, E]:
        table = self._entities.get(entity_type)
        if table is None:
            raise LookupError(f"this view does not follow {entity_type.topic}")
        return table  # type: ignore[return-value]

    def _all(self, entity_type: type[E]) -> list[E]:
        return sorted(self._table(entity_type).values(), key=lambda e: e.key)

    # -- waiting (tests, startup checks) ---------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[RegistryView], bool], timeout_s: float = 10.0
    ) -> None:
        """Return once `predicate(view)` holds; TimeoutError after `timeout_s`."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(check(), timeout_s)

    async def wait_for_entity(
        self,
        entity_type: type[RegistryEntity],
        key: str,
        expected: RegistryEntity | None,
        timeout_s: float = 10.0,
    ) -> None:
        """Return once the view holds exactly `expected` under `key` (None: deleted)."""
        await self.wait_until(lambda view: view._table(entity_type).get(key) == expected, timeout_s)

    # -- queries ---------------------------------------------------------------------------

    def grid(self, code: str) -> Grid | None:
        """Any grid by code (every level, inactive ones included)."""
        return self._table(Grid).get(code)

    def grids(self) -> list[Grid]:
        return self._all(Grid)

    def grid_path(self, code: str) -> tuple[Grid, ...]:
        """The known grids from the city down to `code` (itself last); empty if unknown."""
        table = self._table(Grid)
        if code not in table:
            return ()
        return tuple(table[c] for c in path_codes(code) if c in table)

    def locate(self, lon: float, lat: float, near_m: float = 0.0) -> Location | None:
        """The active grid-level cell covering the point, with its path up to the city (and
        other grids within `near_m` metres); None outside every grid. ValueError for
        coordinates outside WGS84."""
        return self._grid_index().locate(lon, lat, near_m=near_m)

    def building(self, code: str) -> Building | None:
        return self._table(Building).get(code)

    def unit(self, code: str) -> Unit | None:
        return self._table(Unit).get(code)

    def units(self) -> list[Unit]:
        """Every unit, by code (inactive ones included)."""
        return self._all(Unit)

    def adapter_units(self) -> list[Unit]:
        """Active units reached through `dept.<unit>.*` topics and an adapter."""
        return [
            u for u in self._all(Unit) if u.active and u.integration_mode is IntegrationMode.ADAPTER
        ]

    def category(self, code: str) -> Category | None:
        return self._table(Category).get(code)

    def categories(self) -> list[Category]:
        return self._all(Category)

    def rule(self, code: str) -> RoutingRule | None:
        return self._table(RoutingRule).get(code)

    def staff(self, code: str) -> Staff | None:
        return self._table(Staff).get(code)

    def staff_for_grid(
        self, grid_code: str, roles: Iterable[StaffRole] | None = None
    ) -> list[Staff]:
        """Active staff assigned to the grid, by code; only `roles` when given."""
        wanted = set(roles) if roles is not None else None
        table = self._table(Staff)
        found = [table[c] for c in self._staff_by_grid.get(grid_code, ()) if c in table]
        return sorted(
            (s for s in found if s.active and (wanted is None or s.role in wanted)),
            key=lambda s: s.code,
        )

    def unit_head(self, unit_code: str) -> Staff | None:
        """The head of a unit (who receives its deadline warnings), if named and known."""
        unit = self.unit(unit_code)
        if unit is None or unit.head_staff_code is None:
            return None
        return self.staff(unit.head_staff_code)

    def route(self, category_code: str, grid_code: str, severity: Priority) -> RouteDecision:
        """Tier, lead and assisting units for a case; RoutingError when no rule or unit fits
        (an unknown grid included)."""
        grid = self.grid(grid_code)
        if grid is None:
            raise RoutingError(f"unknown grid {grid_code}")
        return self._route_index().route(category_code, grid, severity)

    def covering_unit(self, tier: Tier, grid_code: str) -> Unit | None:
        """The active unit of `tier` whose narrowest jurisdiction covers the grid."""
        return self._route_index().covering_unit(tier, grid_code)

    def calendar(self) -> WorkingCalendar:
        """The working-day calendar from the registry's calendar years (years without data
        count weekends only: see onegrid_common.working_time)."""
        if self._calendar is None or self._calendar_stale:
            years = {
                c.year: YearCalendar(
                    year=c.year,
                    holidays=frozenset(c.holidays),
                    adjusted_working_days=frozenset(c.workdays),
                )
                for c in self._table(CalendarYear).values()
                if isinstance(c, CalendarYear)
            }
            self._calendar = WorkingCalendar(years)
            self._calendar_stale = False
        return self._calendar

    def counts(self) -> dict[str, int]:
        """Entities held per topic (for /readyz details and logs)."""
        return {t.topic: len(table) for t, table in self._entities.items()}
