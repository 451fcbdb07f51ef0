"""Every expiry and window runs on the partition-aware watermark or the key's own time (issue 10).

Each test reproduces a catch-up or a rebalance in which one partition is far ahead of another,
and checks that the partition behind keeps its state and outputs.
"""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from detectors.customer_signal import CustomerSignal
from schemas.models import rfc3339
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import SIGNAL_STREAMS, CustomersHandler
from streams.event_time import RollingWindow
from streams.metrics import Metrics
from streams.pipeline import PROGRESS, Context
from streams.settings import Settings
from streams.topics import Topic

T0 = 1_700_000_000.0
HOUR, DAY = 3600.0, 86400.0


def context() -> tuple[Context, CollectorRegistry]:
    registry = CollectorRegistry()
    return Context.create(Settings(), Metrics(registry)), registry


def message(**event: object) -> bytes:
    event["ts"] = rfc3339(float(event["ts"]))  # type: ignore[arg-type]
    return orjson.dumps(event)


def test_sessions_of_a_partition_taken_over_behind_the_clock_do_not_expire_between_clicks() -> None:
    ctx, registry = context()
    clicks = ClickstreamHandler(ctx)
    clicks.event_clock.assign([0])
    view = message(event_id="v0", ts=T0 + 3 * HOUR, type="page_view", session_id="a", page="/")
    clicks.handle(view, b"a", 0)
    clicks.event_clock.hold(1)  # partition 1 arrives by a rebalance, three hours behind
    for n in range(3):  # a rage-click burst on partition 1, one message per click
        click = message(event_id=f"c{n}", ts=T0 + 0.2 * n, type="click", session_id="b", page="/pay",
                        element="button#ok", x=5, y=5)  # fmt: skip
        clicks.handle(click, b"b", 1)
        # partition 0 goes on meanwhile: its session is now the most recent arrival
        clicks.handle(message(event_id=f"v{n + 1}", ts=T0 + 3 * HOUR + n, type="page_view", session_id="a",
                              page="/"), b"a", 0)  # fmt: skip
    assert registry.get_sample_value("cxpulse_rage_clicks_total", {"page": "/pay"}) == 1.0


def test_contacts_of_a_partition_taken_over_behind_the_clock_are_still_known() -> None:
    ctx, registry = context()
    contacts = ContactsHandler(ctx)
    contacts.event_clock.assign([0])
    resolved = {"type": "contact_resolved", "first_contact_resolution": True, "handle_seconds": 300}
    contacts.handle(message(event_id="r0", ts=T0 + 8 * DAY, customer_id="c", contact_id="k0", **resolved), b"c", 0)
    contacts.event_clock.hold(1)  # partition 1 arrives by a rebalance, eight days behind
    opened = message(event_id="o1", ts=T0, type="contact_opened", customer_id="d", contact_id="k1", channel="chat",
                     reason="billing", complaint=False)  # fmt: skip
    # nothing but the progress of the partition (no dead letter, no signal)
    records = contacts.handle(opened, b"d", 1).records
    assert {r.topic for r in records if r.partition is None} <= {Topic.SERIES}
    contacts.handle(message(event_id="r1", ts=T0 + 600, customer_id="d", contact_id="k1", **resolved), b"d", 1)
    assert registry.get_sample_value("cxpulse_resolution_time_seconds_count", {"channel": "chat"}) == 1.0


def test_a_rolling_window_ends_at_the_watermark_not_at_the_newest_event() -> None:
    old = RollingWindow(window_s=HOUR, step_s=60)
    new = RollingWindow(window_s=HOUR, step_s=60)
    for window, now in ((old, None), (new, T0)):
        window.add(T0 + 2 * HOUR, 5.0, now=now)  # a partition two hours ahead
        window.add(T0, 1.0, now=now)  # the partition behind, at the watermark
    assert old.mean() == 5.0  # the event-driven end pushed the one behind out
    assert new.mean() == 3.0
    new.advance(T0 + 2 * HOUR)  # the watermark reaches the ahead partition's time
    assert new.mean() == 5.0


def test_a_signal_far_ahead_does_not_drop_the_score_of_a_customer_behind() -> None:
    ctx, _ = context()
    customers = CustomersHandler(ctx)
    customers.event_clock.assign([0, 1])  # two cx.signals partitions

    def send(signal: CustomerSignal, partition: int) -> list[str]:
        out = customers.handle(orjson.dumps([signal.to_dict()]), signal.customer_id.encode(), partition)
        return [orjson.loads(r.value)["type"] for r in out.records if r.topic == Topic.NOTIFICATIONS]

    def progress(through: float, partition: int) -> list[str]:
        sent = []
        for stream in SIGNAL_STREAMS:
            for upstream in range(ctx.settings.partitions):
                record = {"type": PROGRESS, "stream": stream, "partition": upstream, "through": through}
                out = customers.handle(orjson.dumps(record), b"progress", partition)
                sent += [orjson.loads(r.value)["type"] for r in out.records if r.topic == Topic.NOTIFICATIONS]
        return sent

    send(CustomerSignal("detractor", "x", T0, "k1"), 0)  # score 5
    send(CustomerSignal("rage_click", "y", T0 + 5 * DAY, "s9"), 1)  # another customer, days ahead
    send(CustomerSignal("complaint", "x", T0 + 60, "k2"), 0)  # 5 decayed a minute, + 4
    assert progress(T0 + 5 * DAY + 1, 1) == []  # partition 1's signals watermark runs days ahead
    assert progress(T0 + 61, 0) == ["cx.notification.frustration_outreach"]
