"""One simulator world through the worker's handlers in one process, without Kafka.

The handlers are the ones the worker runs; ``cx.signals`` records are handed to the customers
handler as soon as they are produced (one partition, in order). The result is the set of
CloudEvent ids on ``cx.alerts`` and ``cx.notifications``: a function of the input alone, so the
same world must always give the same ids, whatever the code's layout.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import orjson
from prometheus_client import CollectorRegistry

from deploy.simulator.simulation import Incident, Simulation, SimulationConfig, batch_messages, encode
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs
from streams.settings import Settings
from streams.topics import Topic

HOUR = 3600.0
DAY = 86400.0

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


def partition_of(key: bytes, partitions: int) -> int:
    """A stable stand-in for Kafka's key partitioner (only the grouping by key matters here)."""
    return zlib.crc32(key) % partitions


def run_world(
    config: SimulationConfig,
    settings: Settings | None = None,
    batch_size: int = 5,
    partitions: int = 1,
    ahead: int | None = None,
) -> WorldOutputs:
    """Feed every message of ``config``'s world through fresh handlers; collect output ids.

    With ``partitions`` > 1 each input message goes to the partition of its key; ``ahead``
    names a partition consumed entirely *before* the others (a catch-up in which one partition
    runs days ahead), otherwise messages arrive in event-time order as in live traffic.
    """
    ctx = Context.create(settings or Settings(), Metrics(CollectorRegistry()))
    handlers = {
        "clickstream": ClickstreamHandler(ctx),
        "contacts": ContactsHandler(ctx),
        "deliveries": DeliveriesHandler(ctx),
    }
    for handler in handlers.values():
        handler.event_clock.assign(range(partitions))
    customers = CustomersHandler(ctx)
    result = WorldOutputs()

    def collect(out: Outputs) -> None:
        for record in out.records:
            if record.topic == Topic.SIGNALS:
                collect(customers.handle(record.value, record.key, 0))
            elif record.topic == Topic.ALERTS:
                result.alert_ids.add(orjson.loads(record.value)["id"])
            elif record.topic == Topic.NOTIFICATIONS:
                event = orjson.loads(record.value)
                result.notification_ids.add(event["id"])
                short = event["type"].rsplit(".", 1)[-1]
                result.notification_types[short] = result.notification_types.get(short, 0) + 1
                result.ids_by_type.setdefault(short, set()).add(event["id"])
            elif record.topic == Topic.DEADLETTER:
                result.deadletters += 1

    messages = [
        (message.stream, key, encode(message), partition_of(key, partitions))
        for message in batch_messages(Simulation(config).events(), batch_size)
        for key in [message.key.encode()]
    ]
    if ahead is not None:
        messages.sort(key=lambda m: m[3] != ahead)  # stable: each partition keeps its order
    for stream, key, value, partition in messages:
        collect(handlers[stream].handle(value, key, partition))
    return result
