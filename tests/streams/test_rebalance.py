"""What a worker does when partitions move, without Kafka: ownership, tables, indexes, expiry.

The Kafka side (real rebalances, restarts) is in ``test_scale_out_kafka.py`` and
``test_restart_kafka.py``; here each piece is checked on its own.
"""

from __future__ import annotations

import asyncio
import types
import weakref
from collections import UserDict
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import pytest
from faust.exceptions import PartitionsMismatch
from faust.streams import _current_event
from faust.types import TP
from prometheus_client import CollectorRegistry

from detectors.contact_rules import RepeatContactRule
from detectors.customer_signal import CustomerSignal, NotificationCandidate
from detectors.delivery_delay import DeliveryDelayMonitor
from detectors.frustration_score import FrustrationScore
from detectors.notification_policy import NotificationPolicy
from schemas.models import NOTIFY_REPEAT_CONTACT, ContactEvent, DeliveryEvent
from streams.app import backlog_probe, create_app, unread
from streams.contacts import ContactsHandler
from streams.customers import CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.event_time import Watermark
from streams.metrics import Metrics
from streams.pipeline import Context
from streams.rebalance import Ownership, group_instance_id, heartbeat_interval
from streams.settings import Settings
from streams.tables import Table
from streams.topics import CHECKPOINTS_TABLE, Store, Topic

DAY = 86400.0
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()


# --- ownership: watermarks, lag gauges, positions ----------------------------------------------


def test_given_away_partitions_leave_the_watermark_the_lag_gauge_and_the_positions() -> None:
    metrics = Metrics(CollectorRegistry())
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: 0.0)
    positions: dict[Any, int] = {}
    ownership = Ownership({"t.deliveries": mark}, positions, metrics)
    p0, p1 = TP("t.deliveries", 0), TP("t.deliveries", 1)
    assert ownership.assigned({p0, p1, TP("app-orders-changelog", 0)}) == set()
    mark.observe(1000.0, 0), mark.observe(400.0, 1)
    assert mark.advance() == 400.0  # partition 1 holds the stream back
    for tp in (p0, p1):
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(7)
        positions[tp] = 9

    assert ownership.assigned({p0}) == {p1}
    assert mark.advance() == 1000.0  # partition 1 left: it no longer holds the watermark
    lag = {s.labels["partition"] for s in metrics.registry.collect() for s in s.samples
           if s.name == "cxpulse_consumer_lag_messages"}  # fmt: skip
    assert lag == {"0"}  # a gauge child keeps its last value forever: removed
    assert positions == {}  # the consumer seeks back to the committed offsets after a rebalance


def test_a_partition_handed_over_behind_the_clock_holds_back_the_safe_time() -> None:
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: 0.0)
    ownership = Ownership({"t.deliveries": mark}, {}, Metrics(CollectorRegistry()))
    p0, p1 = TP("t.deliveries", 0), TP("t.deliveries", 1)
    ownership.assigned({p0})
    mark.observe(5000.0, 0)
    assert mark.advance() == 5000.0 and mark.safe == 5000.0
    ownership.assigned({p0, p1})  # p1 comes from a worker that died: its data is hours behind
    assert mark.advance() == 5000.0 and mark.safe == float("-inf")
    mark.observe(1000.0, 1)
    assert mark.advance() == 5000.0 and mark.safe == 1000.0  # due checks wait for p1 to catch up


def test_partitions_assigned_at_start_hold_the_watermark_before_their_first_event() -> None:
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: 0.0)
    ownership = Ownership({"t.deliveries": mark}, {}, Metrics(CollectorRegistry()))
    ownership.assigned({TP("t.deliveries", 0), TP("t.deliveries", 1)})
    mark.observe(5000.0, 0)  # partition 0 fetched first
    assert mark.advance() == float("-inf")  # partition 1 has not reported: nothing may close
    mark.observe(4000.0, 1)
    assert mark.advance() == 4000.0


class _LagConsumer:
    """What the backlog probe reads of Faust's consumer: highwaters and committed offsets."""

    def __init__(self, highwaters: dict[TP, int], committed: dict[TP, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters.get(tp)


def test_backlog_is_the_consumers_real_lag_per_partition() -> None:
    p0, p1, p2 = (TP("t.deliveries", p) for p in range(3))
    consumer = _LagConsumer({p0: 10, p1: 10}, {p0: 4, p1: 10})
    positions: dict[Any, int] = {p0: 9}
    app = types.SimpleNamespace(consumer=consumer)
    backlog = backlog_probe(app, "t.deliveries", positions)  # type: ignore[arg-type]
    assert unread(consumer, positions, p0) == 0 and not backlog(0)  # offset 9 of 10 processed
    positions[p0] = 5
    assert unread(consumer, positions, p0) == 4 and backlog(0)
    assert unread(consumer, positions, p1) == 0 and not backlog(1)  # nothing since the commit, none new
    consumer._committed_offset[p1] = 3
    assert backlog(1)  # resumes from offset 3 of 10
    assert unread(consumer, positions, p2) is None and backlog(2)  # no fetch answer yet: not known done


def test_a_partition_left_waiting_by_the_fetcher_keeps_holding_the_watermark() -> None:
    wall = [0.0]
    p0, p1 = TP("t.deliveries", 0), TP("t.deliveries", 1)
    consumer = _LagConsumer({p0: 100, p1: 50}, {p0: 0, p1: 0})
    positions: dict[Any, int] = {}
    app = types.SimpleNamespace(consumer=consumer)
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: wall[0],
                     backlog=backlog_probe(app, "t.deliveries", positions))  # type: ignore[arg-type]  # fmt: skip
    mark.observe(1000.0, 0), mark.observe(400.0, 1)
    positions[p0], positions[p1] = 0, 0
    wall[0] = 100.0  # partition 1 silent for 100 s of wall time, 49 messages unread
    mark.observe(2000.0, 0)
    positions[p0] = 1
    assert mark.advance() == 400.0
    positions[p1] = 49  # read to the end and still silent: now it is idle
    assert mark.advance() == 2000.0


def test_instance_id_and_heartbeat() -> None:
    import socket

    assert group_instance_id("auto", 6066) == f"{socket.gethostname()}-6066"
    assert group_instance_id("worker-a", 6066) == "worker-a"
    assert group_instance_id("", 6066) is None  # dynamic membership
    assert heartbeat_interval(15.0) == 3.0 and heartbeat_interval(10.0) == 2.0


def test_worker_uses_static_membership_no_standbys_and_rebuilds_every_table(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, web_port=7111, instance_id="w1", broker_session_timeout_seconds=12)
    pipeline = create_app(settings, Metrics(CollectorRegistry()))
    conf = pipeline.app.conf
    assert conf.consumer_group_instance_id == "w1" and conf.broker_session_timeout == 12.0
    assert conf.broker_heartbeat_interval == 2.4 and conf.table_standby_replicas == 0
    assert conf.Table is Table
    tables = {table.name: table for table in pipeline.app.tables.values()}
    assert set(tables) == {store.value for store in Store} | {CHECKPOINTS_TABLE}
    assert all(isinstance(table, Table) and table._recover_callbacks for table in tables.values())
    assert all(handler.event_clock.backlog is not None for handler in pipeline.handlers.values())


# --- tables: every key in its own changelog partition --------------------------------------------


class _Consumer:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def topic_partitions(self, topic: str) -> int | None:
        return self.partitions.get(topic)


@pytest.fixture
def table() -> Table:
    app = faust.App("rebalance-unit", store="memory://", Table=Table)
    table = app.Table("orders", default=None, partitions=4)
    assert isinstance(table, Table)
    table.sent = []  # type: ignore[attr-defined]

    def send_changelog(partition: int, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        table.sent.append((partition, key, value))  # type: ignore[attr-defined]
        return types.SimpleNamespace(message=types.SimpleNamespace(partition=partition))

    table.send_changelog = send_changelog  # type: ignore[method-assign]
    app.consumer = _Consumer({"t.deliveries": 4, table.changelog_topic_name: 4})  # type: ignore[assignment]
    return table


class _Event:
    def __init__(self, partition: int, topic: str = "t.deliveries", key: Any = None, value: Any = None) -> None:
        self.message = types.SimpleNamespace(partition=partition, topic=topic, value=value)
        self.key, self.value = key, value


def test_table_writes_and_tombstones_go_to_the_keys_own_partition(table: Table) -> None:
    event = _Event(partition=0)
    token = _current_event.set(weakref.ref(event))  # processing a message of partition 0
    try:
        table.apply_changelog_batch([_Event(1, key="o-1", value={"due": 5})])  # restored from partition 1
        table["o-new"] = {"due": 1}  # a new key: the partition of the message, as Faust does
        table["o-1"] = {"due": 9}  # a due check of partition 1's order, from partition 0's message
        del table["o-1"]  # expired: the tombstone goes where the order lives
        table.pop("o-gone", None)  # nothing to delete: no tombstone
    finally:
        _current_event.reset(token)
    assert table.sent == [(0, "o-new", {"due": 1}), (1, "o-1", {"due": 9}), (1, "o-1", None)]  # type: ignore[attr-defined]
    assert table.key_partitions == {"o-new": 0}


def test_after_a_rebalance_foreign_keys_are_dropped_before_the_indexes_are_rebuilt(table: Table) -> None:
    table.apply_changelog_batch([_Event(p, key=f"o-{p}", value={"due": p}) for p in range(4)])
    seen: list[set[str]] = []

    async def rebuild() -> None:
        seen.append(set(table.keys()))

    table.on_recover(rebuild)
    topic = table.changelog_topic_name
    asyncio.run(table.on_recovery_completed({TP(topic, 0), TP(topic, 2)}, set()))
    assert seen == [{"o-0", "o-2"}]  # no changelog record: only the local copy goes
    assert table.sent == []  # type: ignore[attr-defined]


def test_a_changelog_topic_created_moments_ago_does_not_crash_the_agent(table: Table) -> None:
    topic = table.changelog_topic_name
    table.app.consumer = _Consumer({"t.deliveries": 4, topic: 0})  # type: ignore[assignment]
    table._verify_source_topic_partitions("t.deliveries")  # 0 partitions = not known yet: no error
    table.app.consumer = _Consumer({"t.deliveries": 4, topic: 2})  # type: ignore[assignment]
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("t.deliveries")


# --- detectors: expiry deletes (a changelog tombstone), indexes rebuilt from the store ----------


class Recording(UserDict):
    """A mapping that records deletions, as a Faust table turns each into a tombstone."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.deleted.append(key)


def contact(i: int, customer: str, ts: float) -> ContactEvent:
    return ContactEvent(f"e{i}", ts, "contact_opened", customer, contact_id=f"k{i}", channel="chat", reason="billing")


def candidate(i: str, customer: str, ts: float) -> NotificationCandidate:
    return NotificationCandidate(NOTIFY_REPEAT_CONTACT, i, customer, None, ts, {"customer_id": customer})


def test_every_detector_deletes_what_expires() -> None:
    contacts, scores, policy, orders = Recording(), Recording(), Recording(), Recording()
    rule = RepeatContactRule(store=contacts)
    rule.process(contact(1, "c-1", 0.0))
    rule.advance(8 * DAY)
    score = FrustrationScore(store=scores)
    score.observe(CustomerSignal("complaint", "c-1", 0.0, "k1"))
    score.advance(30 * DAY)
    decide = NotificationPolicy(store=policy)
    decide.decide([candidate("n1", "c-1", 0.0)])
    decide.expire(3 * DAY)
    monitor = DeliveryDelayMonitor(orders)
    monitor.process(DeliveryEvent("d1", 0.0, "shipped", "o-1", "c-1", "dhl", "north", promised_by=DAY))
    monitor.advance(30 * DAY)
    for store in (contacts, scores, policy, orders):
        assert len(store) == 0 and len(store.deleted) == 1


def test_indexes_are_rebuilt_from_what_the_store_holds_after_a_rebalance() -> None:
    contacts, scores = Recording(), Recording()
    rule, score = RepeatContactRule(store=contacts), FrustrationScore(store=scores)
    rule.process(contact(1, "mine", 0.0))
    score.observe(CustomerSignal("complaint", "mine", 0.0, "k1"))
    # The rebalance: "mine" moved to another worker, "theirs" was restored from a changelog.
    for store, value in ((contacts, [[0.0, "k9", "billing", "chat"]]),
                         (scores, {"score": 4.0, "ts": 0.0, "episode": None, "signals": []})):  # fmt: skip
        store.data = {"theirs": value}
    rule.rebuild_index(), score.rebuild_index()
    rule.advance(8 * DAY), score.advance(30 * DAY)
    assert contacts.deleted == ["theirs"] and scores.deleted == ["theirs"]


def test_the_handlers_rebuild_their_indexes_when_recovered() -> None:
    ctx = Context.create(Settings(), Metrics(CollectorRegistry()))
    contacts, customers = ContactsHandler(ctx), CustomersHandler(ctx)
    assert contacts.stores == (Store.CONTACTS,)
    assert customers.stores == (Store.FRUSTRATION, Store.POLICY, Store.LOGINS, Store.HELD)
    ctx.store(Store.CONTACTS)["c-1"] = [[0.0, "k1", "billing", "chat"]]
    ctx.store(Store.FRUSTRATION)["c-1"] = {"score": 4.0, "ts": 0.0, "episode": None, "signals": []}
    contacts.recovered(), customers.recovered()
    contacts.repeats.advance(8 * DAY), customers.scores.advance(30 * DAY)
    assert ctx.store(Store.CONTACTS) == {} and ctx.store(Store.FRUSTRATION) == {}


def test_the_deliveries_handler_rebuilds_its_due_index_when_recovered() -> None:
    ctx = Context.create(Settings(), Metrics(CollectorRegistry()))
    deliveries = DeliveriesHandler(ctx)
    assert deliveries.stores == (Store.ORDERS,)
    elsewhere = DeliveryDelayMonitor({})  # the order as its previous owner left it in the changelog
    elsewhere.process(DeliveryEvent("d1", 0.0, "shipped", "o-1", "c-1", "dhl", "north", promised_by=DAY))
    ctx.store(Store.ORDERS).update(elsewhere.store)
    # restored under the handler's feet: not indexed yet (one monitor per input partition)
    assert all(monitor.next_due() is None for monitor in deliveries.monitors.values())
    deliveries.recovered()
    assert [monitor.next_due() is not None for monitor in deliveries.monitors.values()] == [True]
    for monitor in deliveries.monitors.values():
        monitor.advance(30 * DAY)
    assert ctx.store(Store.ORDERS) == {}  # checked and expired on this worker's clock


def test_due_checks_run_only_up_to_the_time_they_are_given() -> None:
    orders: dict[str, Any] = {}
    monitor = DeliveryDelayMonitor(orders)
    monitor.process(DeliveryEvent("a1", 0.0, "shipped", "o-a", "c-1", "dhl", "north", promised_by=2 * DAY))
    monitor.process(DeliveryEvent("b1", 10 * DAY, "shipped", "o-b", "c-2", "dhl", "north", promised_by=12 * DAY))
    monitor.rebuild_index()  # its clock is now o-b's time, far ahead of o-a's partition
    monitor.advance(60.0)
    assert orders["o-a"]["notified"] == [] and orders["o-a"]["missed"] == []  # not judged at o-b's time


# --- at-least-once: a replayed message must not change the outcome --------------------------------


def test_a_signal_delivered_again_counts_once() -> None:
    score = FrustrationScore()
    complaint = CustomerSignal("complaint", "c-1", 0.0, "k1")
    assert score.observe(complaint) is None and score.observe(complaint) is None  # 4, not 8
    assert score.score("c-1", 0.0) == 4.0


def test_a_detractor_after_a_restart_keeps_its_contacts_reason() -> None:
    ctx = Context.create(Settings(), Metrics(CollectorRegistry()))
    ContactsHandler(ctx).handle(orjson.dumps(
        {"event_id": "o1", "ts": iso(0), "type": "contact_opened", "contact_id": "k1", "customer_id": "c-1",
         "channel": "chat", "reason": "billing", "complaint": False}))  # fmt: skip
    # A new process: the in-memory contact map is empty; the tables survive.
    restarted = ContactsHandler(Context.create(Settings(), Metrics(CollectorRegistry()), stores=ctx.stores))
    out = restarted.handle(orjson.dumps(
        {"event_id": "s1", "ts": iso(60), "type": "survey_response", "customer_id": "c-1", "contact_id": "k1",
         "csat": 1}))  # fmt: skip
    (signals,) = [orjson.loads(r.value) for r in out.records if r.topic == Topic.SIGNALS and r.partition is None]
    assert signals[0]["notification"]["data"]["reason"] == "billing"


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()
