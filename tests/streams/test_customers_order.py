"""The customers agent decides in event-time order on its signals watermark (issue 10)."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from detectors.customer_signal import CustomerSignal, NotificationCandidate
from schemas.models import NOTIFY_DELIVERY_FAILED, NOTIFY_FRUSTRATION_OUTREACH
from streams.customers import SIGNAL_STREAMS, TICK, CustomersHandler
from streams.metrics import Metrics
from streams.pipeline import PROGRESS, Context
from streams.settings import Settings
from streams.topics import Store, Topic

CUSTOMER = "c-1"


def handler(stores: dict[Store, dict] | None = None) -> CustomersHandler:
    ctx = Context.create(Settings(partitions=1), Metrics(CollectorRegistry()), stores=stores)
    return CustomersHandler(ctx)


def signal(kind: str, ts: float, source: str = "k", notification: NotificationCandidate | None = None) -> bytes:
    return orjson.dumps([CustomerSignal(kind, CUSTOMER, ts, source, {}, notification).to_dict()])


def progress(stream: str, through: float) -> bytes:
    return orjson.dumps({"type": PROGRESS, "stream": stream, "partition": 0, "through": through})


def notifications(h: CustomersHandler, raw: bytes) -> list[dict]:
    out = h.handle(raw, CUSTOMER.encode(), 0)
    return [orjson.loads(r.value) for r in out.records if r.topic == Topic.NOTIFICATIONS]


def all_progress(h: CustomersHandler, through: float) -> list[dict]:
    return [n for stream in SIGNAL_STREAMS for n in notifications(h, progress(stream, through))]


# complaint 4 + detractor 5 cross the threshold 8 at t=20 in event-time order; in the arrival
# order below, the score would cross only with the late detractor, at t=30.
SIGNALS = [signal("complaint", 10.0, "k1"), signal("detractor", 20.0, "k2"), signal("complaint", 30.0, "k3")]


def outreach(arrival: list[bytes]) -> list[dict]:
    h = handler()
    sent = [n for raw in arrival for n in notifications(h, raw)]
    assert not sent  # nothing decided before the watermark passes
    return all_progress(h, 100.0)


def test_release_order_is_event_time_order_whatever_the_arrival() -> None:
    in_order = outreach(SIGNALS)
    shuffled = outreach([SIGNALS[2], SIGNALS[1], SIGNALS[0]])
    assert [n["type"] for n in in_order] == [NOTIFY_FRUSTRATION_OUTREACH]
    assert in_order[0]["time"] == "1970-01-01T00:00:20Z"  # the episode starts at the detractor
    assert [n["id"] for n in shuffled] == [n["id"] for n in in_order]


def test_watermark_is_the_minimum_once_every_input_partition_reported() -> None:
    h = handler()
    for raw in SIGNALS:
        notifications(h, raw)
    assert not notifications(h, progress("clickstream", 100.0))
    assert not notifications(h, progress("contacts", 100.0))
    assert h.marks.get(0) is None  # deliveries has not reported: -inf, everything held
    assert not notifications(h, progress("deliveries", 15.0))  # the minimum: only t=10 released
    assert h.marks[0] == 15.0 and len(h.held[CUSTOMER]["signals"]) == 2
    assert not notifications(h, progress("deliveries", 20.0))  # ts 20 is not below the watermark
    [sent] = notifications(h, progress("deliveries", 20.5))
    assert sent["type"] == NOTIFY_FRUSTRATION_OUTREACH
    assert [s["ts"] for s in h.held[CUSTOMER]["signals"]] == [30.0]
    assert not notifications(h, progress("deliveries", 10.0))  # progress never goes back
    assert h.marks[0] == 20.5


def test_a_signal_below_the_watermark_is_processed_at_once() -> None:
    h = handler()
    all_progress(h, 100.0)
    assert notifications(h, signal("complaint", 50.0, "k1")) == []
    assert CUSTOMER not in h.held and h.scores.score(CUSTOMER, 50.0) == 4.0


def test_transactional_candidates_go_out_at_once_and_their_signal_waits() -> None:
    h = handler()
    failed = NotificationCandidate(NOTIFY_DELIVERY_FAILED, "f-1", CUSTOMER, "o-1", 40.0, {"customer_id": CUSTOMER})
    [sent] = notifications(h, signal("delivery_failed", 40.0, "o-1", failed))
    assert sent["id"] == "f-1"
    assert h.held[CUSTOMER]["signals"][0]["notification"] is None  # decided: only the score waits
    assert notifications(h, signal("delivery_failed", 40.0, "o-1", failed)) == []  # duplicate
    all_progress(h, 100.0)
    assert h.scores.score(CUSTOMER, 40.0) == 4.0


def test_held_signals_survive_a_crash_in_the_changelogged_store() -> None:
    stores: dict[Store, dict] = {store: {} for store in Store}
    before = handler(stores)
    for raw in SIGNALS:
        notifications(before, raw)
    # The worker dies; its tables come back from their changelogs on the next worker, and the
    # progress map is re-learnt from the next progress records.
    after = handler({store: dict(table) for store, table in stores.items()})
    after.recovered()
    assert [n["id"] for n in all_progress(after, 100.0)] == [n["id"] for n in outreach(SIGNALS)]
    assert not after.held


def handler_on_a_wall_clock() -> tuple[CustomersHandler, list[float]]:
    """A handler (idle time 30 s) whose wall clock the test moves, holding ``SIGNALS``."""
    wall = [0.0]
    ctx = Context.create(Settings(partitions=1, idle_partition_seconds=30.0), Metrics(CollectorRegistry()))
    ctx.clock = lambda: wall[0]
    h = CustomersHandler(ctx)
    for raw in SIGNALS:
        notifications(h, raw)
    return h, wall


def test_an_input_partition_that_never_reported_holds_back_only_for_the_idle_time() -> None:
    h, wall = handler_on_a_wall_clock()
    # No clickstream traffic at all: contacts and deliveries report, clickstream never does.
    assert not notifications(h, progress("contacts", 100.0)) and not notifications(h, progress("deliveries", 100.0))
    wall[0] = 29.0
    assert not notifications(h, progress("contacts", 101.0))
    wall[0] = 31.0  # silent since the first progress for the idle time: left out (liveness only)
    [sent] = notifications(h, progress("contacts", 102.0))
    assert sent["time"] == "1970-01-01T00:00:20Z"


def test_a_drained_backlog_with_a_silent_stream_is_woken_by_a_tick() -> None:
    h, wall = handler_on_a_wall_clock()
    # The backlog drains within the idle time: no progress record comes after it.
    assert not notifications(h, progress("contacts", 100.0)) and not notifications(h, progress("deliveries", 100.0))
    assert h.stalled() == []  # not yet: clickstream may still report
    wall[0] = 31.0
    assert h.stalled() == [0]  # the worker's timer sends partition 0 a tick
    [sent] = notifications(h, orjson.dumps({"type": TICK}))
    assert sent["time"] == "1970-01-01T00:00:20Z"
    assert h.stalled() == []


def test_waiting_counts_partitions_held_back_by_a_stream_that_never_reported() -> None:
    h, wall = handler_on_a_wall_clock()
    assert h.waiting() == 0  # no progress at all yet: nothing known to wait for
    notifications(h, progress("contacts", 100.0))
    assert h.waiting() == 1  # clickstream and deliveries have not reported
    wall[0] = 31.0
    assert h.waiting() == 1  # left out, but not yet applied: the tick is due
    notifications(h, orjson.dumps({"type": TICK}))
    assert h.waiting() == 0
    assert h.metrics.registry.get_sample_value("cxpulse_signals_partitions_waiting") == 0
