"""One simulator world through the worker's handlers in one process, without Kafka.

The handlers are the ones the worker runs; ``cx.signals`` records are handed to the customers
handler of their partition (the customer's, or the one a progress record names) as soon as they
are produced, ``cx.series`` records to the series owner of their partition (:class:`Fleet` keeps
them as a log, so an owner can re-read it
after a crash). The result is the set of CloudEvent ids on ``cx.alerts`` and
``cx.notifications``: a function of the input alone, so the same world must always give the
same ids, whatever the code's layout. A :class:`Fleet` may split the partitions between several
independent "workers" (handler sets), as Kafka spreads them over worker processes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from prometheus_client import CollectorRegistry

from deploy.simulator.simulation import Incident, Simulation, SimulationConfig, batch_messages, encode
from streams.checkpoints import Checkpoints
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import SIGNAL_STREAMS, CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import PROGRESS, Context, Outputs, StreamHandler
from streams.series import SeriesOwnerHandler
from streams.settings import Settings
from streams.topics import Store, Topic, topic_names

HOUR = 3600.0
DAY = 86400.0
#: Progress past any event time the parser accepts (2100-01-01): the end of a finite world's input.
END = 4102444800.0

#: A small world with one incident of every kind (about 60k events, a few seconds to run).
GOLDEN_WORLD = SimulationConfig(
    seed=11,
    sim_seconds=2 * DAY,
    events_per_sim_second=0.35,
    mix={"clickstream": 0.55, "contacts": 0.2, "deliveries": 0.25},
    n_customers=3000,
    incidents=(
        Incident.parse("carrier_delay:carrier=dhl,region=north,at=12h,duration=6h,factor=2.5"),
        Incident.parse("complaint_spike:reason=billing,at=30h,duration=30m,factor=6"),
        Incident.parse("rage_click_storm:page=/checkout,at=34h,duration=20m"),
        Incident.parse("error_storm:page=/cart,at=40h,duration=20m"),
    ),
)


@dataclass
class WorldOutputs:
    alert_ids: set[str] = field(default_factory=set)
    notification_ids: set[str] = field(default_factory=set)
    notification_types: dict[str, int] = field(default_factory=dict)
    #: short type -> its notification ids
    ids_by_type: dict[str, set[str]] = field(default_factory=dict)
    deadletters: int = 0
    #: alert id -> times it was emitted (a re-read after a crash emits the same id again)
    alert_events: dict[str, int] = field(default_factory=dict)
    #: (series, episode start, status) of every alert emitted, in order
    alerts: list[tuple[str, str, str]] = field(default_factory=list)


def partition_of(key: bytes, partitions: int) -> int:
    """A stable stand-in for Kafka's key partitioner (only the grouping by key matters here)."""
    return zlib.crc32(key) % partitions


class TP(NamedTuple):
    """A topic partition, as Faust hands assignments to :class:`streams.checkpoints.Checkpoints`."""

    topic: str
    partition: int


class Message(NamedTuple):
    stream: str
    key: bytes
    value: bytes
    partition: int


def world_messages(config: SimulationConfig, batch_size: int = 5, partitions: int = 1) -> list[Message]:
    """Every input message of ``config``'s world, in event-time order, with its partition."""
    return [
        Message(message.stream, key, encode(message), partition_of(key, partitions))
        for message in batch_messages(Simulation(config).events(), batch_size)
        for key in [message.key.encode()]
    ]


class Worker:
    """One worker's handlers over the input and ``cx.series`` partitions it owns."""

    def __init__(
        self,
        settings: Settings,
        partitions: Iterable[int],
        stores: MutableMapping[Store, MutableMapping[str, Any]] | None = None,
        checkpoint_table: MutableMapping[str, Any] | None = None,
    ) -> None:
        self.partitions = sorted(partitions)
        self.checkpoints = Checkpoints(checkpoint_table if checkpoint_table is not None else {})
        self.ctx = Context.create(settings, Metrics(CollectorRegistry()), stores=stores, checkpoints=self.checkpoints)
        self.ctx.progress_wall = None  # progress after every message that moves a clock enough: no wall time
        self.stores = self.ctx.stores
        # No wall time in a world run: the customers agent's never-reported rule never fires.
        self.ctx.clock = lambda: 0.0
        ctx = self.ctx
        self.handlers: dict[str, StreamHandler] = {
            "clickstream": ClickstreamHandler(ctx),
            "contacts": ContactsHandler(ctx),
            "deliveries": DeliveriesHandler(ctx),
        }
        for handler in self.handlers.values():
            handler.event_clock.assign(self.partitions)
        self.customers = CustomersHandler(ctx)
        self.series = SeriesOwnerHandler(ctx)
        names = topic_names(settings)
        # Every topic with per-partition state is owned on the same partition numbers.
        self.checkpoints.assigned(
            TP(names[topic], p) for topic in (Topic.CLICKSTREAM, Topic.CONTACTS, Topic.DELIVERIES, Topic.SERIES)
            for p in self.partitions
        )  # fmt: skip


class Fleet:
    """Workers sharing the partitions (partition p goes to worker ``p % workers``)."""

    def __init__(self, settings: Settings | None = None, partitions: int = 1, workers: int = 1) -> None:
        settings = settings or Settings()
        if settings.partitions != partitions:  # the owners wait for every input partition
            settings = settings.model_copy(update={"partitions": partitions})
        self.settings = settings
        self.n_partitions = partitions
        self.workers = [Worker(settings, range(w, partitions, workers)) for w in range(workers)]
        self.result = WorldOutputs()
        #: per (stream, partition): the offset of the next input message
        self.offsets: dict[tuple[str, int], int] = {}
        #: cx.series as Kafka would keep it: per partition, its records (offset = index)
        self.series_log: dict[int, list[tuple[bytes | None, bytes]]] = {p: [] for p in range(partitions)}

    def worker_of(self, partition: int) -> Worker:
        return self.workers[partition % len(self.workers)]

    def feed(self, message: Message, offset: int | None = None) -> None:
        """Hand one input message to the worker owning its partition (next offset by default)."""
        position = (message.stream, message.partition)
        if offset is None:
            offset = self.offsets.get(position, 0)
        self.offsets[position] = max(self.offsets.get(position, 0), offset + 1)
        handler = self.worker_of(message.partition).handlers[message.stream]
        self.collect(handler.handle(message.value, message.key, message.partition, offset))

    def deliver_signals(self, partition: int, key: bytes, value: bytes) -> None:
        self.collect(self.worker_of(partition).customers.handle(value, key, partition))

    def finish(self) -> None:
        """The input ended: every input partition reports progress past the world's end, so the
        customers agents release what they still hold (live, the input never ends)."""
        for stream in SIGNAL_STREAMS:
            for upstream in range(self.n_partitions):
                record = orjson.dumps({"type": PROGRESS, "stream": stream, "partition": upstream, "through": END})
                for partition in range(self.n_partitions):
                    self.deliver_signals(partition, f"{stream}/{upstream}".encode(), record)

    def deliver_series(self, partition: int, offset: int) -> None:
        key, value = self.series_log[partition][offset]
        self.collect(self.worker_of(partition).series.handle(value, key, partition, offset))

    def collect(self, out: Outputs) -> None:
        result = self.result
        for record in out.records:
            if record.topic == Topic.SIGNALS:
                assert record.key is not None
                partition = record.partition
                if partition is None:
                    partition = partition_of(record.key, self.n_partitions)
                self.deliver_signals(partition, record.key, record.value)
            elif record.topic == Topic.SERIES:
                partition = record.partition
                if partition is None:
                    assert record.key is not None
                    partition = partition_of(record.key, self.n_partitions)
                log = self.series_log[partition]
                log.append((record.key, record.value))
                self.deliver_series(partition, len(log) - 1)
            elif record.topic == Topic.ALERTS:
                event = orjson.loads(record.value)
                result.alert_ids.add(event["id"])
                result.alert_events[event["id"]] = result.alert_events.get(event["id"], 0) + 1
                data = event["data"]
                result.alerts.append((data["series"], data["episode_start"], data["status"]))
            elif record.topic == Topic.NOTIFICATIONS:
                event = orjson.loads(record.value)
                result.notification_ids.add(event["id"])
                short = event["type"].rsplit(".", 1)[-1]
                result.notification_types[short] = result.notification_types.get(short, 0) + 1
                result.ids_by_type.setdefault(short, set()).add(event["id"])
            elif record.topic == Topic.DEADLETTER:
                result.deadletters += 1


def run_world(
    config: SimulationConfig,
    settings: Settings | None = None,
    batch_size: int = 5,
    partitions: int = 1,
    ahead: int | None = None,
    workers: int = 1,
) -> WorldOutputs:
    """Feed every message of ``config``'s world through fresh handlers; collect output ids.

    With ``partitions`` > 1 each input message goes to the partition of its key; ``ahead``
    names a partition consumed entirely *before* the others (a catch-up in which one partition
    runs days ahead), otherwise messages arrive in event-time order as in live traffic.
    ``workers`` splits the partitions between that many independent handler sets.
    """
    fleet = Fleet(settings, partitions, workers)
    messages = world_messages(config, batch_size, partitions)
    if ahead is not None:
        messages.sort(key=lambda m: m.partition != ahead)  # stable: each partition keeps its order
    for message in messages:
        fleet.feed(message)
    fleet.finish()
    return fleet.result
