"""The per-partition transit models: checkpointed, restored, and not taught twice (no Kafka).

A deliveries partition is run through :class:`streams.deliveries.DeliveriesHandler` once without
interruption and once with a crash: the first handler saves its checkpoint (as the worker does
right before an offset commit) and goes on a little, then a fresh handler on the same checkpoint
table restores it and re-reads the partition from an earlier offset, as Kafka hands it out again
from a committed offset. The delay predictions must be those of the uninterrupted run.
"""

from __future__ import annotations

import copy
import pickle
import zlib
from collections import namedtuple
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from deploy.simulator.simulation import Incident, SimulationConfig, iter_encoded
from streams.checkpoints import Checkpoints
from streams.deliveries import SNAPSHOT_MAGIC, TRANSIT_CHECKPOINT, DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs
from streams.settings import Settings
from streams.topics import Store, Topic

TP = namedtuple("TP", "topic partition")
DAY = 86400.0
PARTITION = 2

#: Three days of deliveries with a carrier delay on the second: ordinary and incident predictions.
WORLD = SimulationConfig(
    seed=5, sim_seconds=3 * DAY, events_per_sim_second=0.05,
    incidents=(Incident.parse("carrier_delay:carrier=dhl,region=north,at=36h,duration=8h,factor=2.5"),),
    mix={"clickstream": 0.0, "contacts": 0.0, "deliveries": 1.0},
)  # fmt: skip


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes, bytes]]:
    return [(key, value) for stream, key, value in iter_encoded(WORLD, batch_size=1) if stream == "deliveries"]


def handler_on(table: MutableMapping[str, Any], orders: MutableMapping[str, Any]) -> DeliveriesHandler:
    """A fresh deliveries handler owning partition ``PARTITION``, checkpoints in ``table``."""
    stores: dict[Store, MutableMapping[str, Any]] = {store: {} for store in Store}
    stores[Store.ORDERS] = orders
    ctx = Context.create(Settings(), Metrics(CollectorRegistry()), stores=stores, checkpoints=Checkpoints(table))
    handler = DeliveriesHandler(ctx)
    handler.event_clock.assign([PARTITION])
    ctx.checkpoints.assigned([TP(handler.source_topic, PARTITION)])
    return handler


def delayed_ids(out: Outputs) -> list[str]:
    return [
        signal["notification"]["id"]
        for record in out.records
        if record.topic == Topic.SIGNALS and record.partition is None  # not a progress record
        for signal in orjson.loads(record.value)
        if signal["kind"] == "delivery_delayed"
    ]


def feed(handler: DeliveriesHandler, messages: list[tuple[bytes, bytes]], start: int, stop: int) -> list[str]:
    ids: list[str] = []
    for offset in range(start, stop):
        key, value = messages[offset]
        ids += delayed_ids(handler.handle(value, key, PARTITION, offset))
    return ids


@pytest.fixture(scope="module")
def uninterrupted(messages: list[tuple[bytes, bytes]]) -> tuple[list[str], DeliveriesHandler]:
    handler = handler_on({}, {})
    ids = feed(handler, messages, 0, len(messages))
    assert len(ids) >= 20 and len(set(ids)) == len(ids)  # the world predicts delays, once each
    return ids, handler


@pytest.mark.parametrize("crash_after", [0, 400])
def test_a_restored_model_predicts_what_an_uninterrupted_one_does(messages, uninterrupted, crash_after) -> None:
    expected, _ = uninterrupted
    n = len(messages)
    checkpoint_at, replay_from = n // 2, n // 2 - 300  # the committed offset is at or before it
    table: dict[str, Any] = {}
    first = handler_on(table, {})
    before = feed(first, messages, 0, checkpoint_at)
    first.ctx.checkpoints.save()  # the series partials of the stream are saved beside the model
    assert f"transit/{PARTITION}" in table
    assert first.snapshot(PARTITION) is None  # nothing learnt since
    # The orders table as its changelog holds it at the commit (Faust flushes before committing).
    orders = copy.deepcopy(dict(first.orders))
    lost = feed(first, messages, checkpoint_at, checkpoint_at + crash_after)  # then kill -9
    assert set(lost) <= set(expected)

    second = handler_on(table, orders)
    second.ctx.checkpoints.restore()
    second.recovered()
    after = feed(second, messages, replay_from, n)
    assert set(before) | set(after) == set(expected)
    assert before + [i for i in after if i not in before] == expected  # and in the same order


def test_reprocessed_messages_are_not_learnt_twice(messages, uninterrupted) -> None:
    _, reference = uninterrupted
    table: dict[str, Any] = {}
    first = handler_on(table, {})
    feed(first, messages, 0, 6000)
    first.ctx.checkpoints.save()
    learnt = first.monitors[PARTITION].model.n_learnt
    second = handler_on(table, copy.deepcopy(dict(first.orders)))
    second.ctx.checkpoints.restore()
    second.recovered()
    assert second.monitors[PARTITION].model.n_learnt == learnt > 0
    feed(second, messages, 5000, 6000)  # re-read: judged, not learnt
    assert second.monitors[PARTITION].model.n_learnt == learnt
    assert second.snapshot(PARTITION) is None  # re-reading changed nothing to save
    feed(second, messages, 6000, len(messages))
    model, expected = second.monitors[PARTITION].model, reference.monitors[PARTITION].model
    assert model.n_learnt == expected.n_learnt
    assert model.transit.keys() == expected.transit.keys()
    assert all(model.transit[k].to_dict() == expected.transit[k].to_dict() for k in model.transit)


def test_snapshot_format_restore_and_forget() -> None:
    table: dict[str, Any] = {}
    handler = handler_on(table, {})
    assert handler.ctx.checkpoints.save() == 0  # nothing processed: nothing written
    handler.restore(PARTITION, b"not a pickle")  # unreadable: a fresh model, logged
    assert handler.monitors[PARTITION].model.n_learnt == 0
    def snapshot(version: int, offset: int) -> bytes:
        return SNAPSHOT_MAGIC + zlib.compress(pickle.dumps((version, offset, handler.new_model())))

    handler.restore(PARTITION, snapshot(0, 5))  # another version: fresh
    assert PARTITION not in handler._skip_through
    handler.restore(PARTITION, snapshot(1, 7))
    assert handler._skip_through[PARTITION] == 7
    handler.ctx.checkpoints.assigned([])  # the partition moved away
    assert PARTITION not in handler.monitors and PARTITION not in handler._skip_through
    assert set(table) <= {Checkpoints.key(TRANSIT_CHECKPOINT, PARTITION)}


def test_a_snapshot_over_the_record_limit_is_not_written(monkeypatch, messages) -> None:
    import streams.deliveries

    table: dict[str, Any] = {}
    handler = handler_on(table, {})
    feed(handler, messages, 0, 2000)
    size = len(handler.snapshot(PARTITION) or b"")
    assert 0 < size <= streams.deliveries.MAX_SNAPSHOT_BYTES
    feed(handler, messages, 2000, 2100)
    monkeypatch.setattr(streams.deliveries, "MAX_SNAPSHOT_BYTES", size // 2)
    handler.ctx.checkpoints.save()
    assert Checkpoints.key(TRANSIT_CHECKPOINT, PARTITION) not in table
