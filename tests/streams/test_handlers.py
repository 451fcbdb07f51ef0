"""Metric computations of the stream handlers, on a fresh registry (no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import cloudevents as ce
from schemas.ids import detractor_followup_id
from schemas.models import NOTIFY_DETRACTOR_FOLLOWUP
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler, nps_category
from streams.customers import SIGNAL_STREAMS, CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import PROGRESS, Context
from streams.settings import Settings
from streams.topics import Topic

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


@pytest.fixture
def ctx() -> Context:
    return Context.create(Settings(window_seconds=3600), Metrics(CollectorRegistry()))


def value(ctx: Context, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)


def send(handler, *events: dict) -> list:
    records = []
    for event in events:
        records += handler.handle(orjson.dumps(event)).records
    return records


def test_csat_nps_ces_and_fcr_rolling_values(ctx):
    h = ContactsHandler(ctx)
    surveys = [(5, 10, 2), (4, 9, 3), (2, 5, 6), (1, 8, 7)]
    send(
        h,
        *[
            {
                "event_id": f"s{i}",
                "ts": iso(i * 60),
                "type": "survey_response",
                "customer_id": "c",
                "csat": c,
                "nps": n,
                "ces": e,
            }
            for i, (c, n, e) in enumerate(surveys)
        ],
    )
    assert value(ctx, "cxpulse_csat_rolling_score") == 3.0
    assert value(ctx, "cxpulse_ces_rolling_score") == 4.5
    # 2 promoters, 1 detractor, 1 passive of 4: NPS = 50 - 25 = 25.
    assert value(ctx, "cxpulse_nps_rolling_score") == 25.0
    assert value(ctx, "cxpulse_nps_responses_total", category="passive") == 1
    # An hour and more later the window holds only the newest survey.
    send(h, {"event_id": "late-1", "ts": iso(2 * 3600), "type": "survey_response", "customer_id": "c", "csat": 5})
    assert value(ctx, "cxpulse_csat_rolling_score") == 5.0
    assert value(ctx, "cxpulse_csat_score_count") == 5


def test_first_contact_resolution_and_resolution_time(ctx):
    h = ContactsHandler(ctx)
    opened = [
        {
            "event_id": f"o{i}",
            "ts": iso(0),
            "type": "contact_opened",
            "contact_id": f"k{i}",
            "customer_id": "c",
            "channel": "email",
            "reason": "returns",
            "complaint": i == 0,
        }
        for i in range(4)
    ]
    resolved = [
        {
            "event_id": f"r{i}",
            "ts": iso(600 * (i + 1)),
            "type": "contact_resolved",
            "contact_id": f"k{i}",
            "customer_id": "c",
            "first_contact_resolution": i != 3,
        }
        for i in range(4)
    ]
    send(h, *opened, *resolved)
    assert value(ctx, "cxpulse_fcr_rolling_ratio") == 0.75
    assert value(ctx, "cxpulse_complaints_total", reason="returns", channel="email") == 1
    assert value(ctx, "cxpulse_resolution_time_seconds_sum", channel="email") == 600 * (1 + 2 + 3 + 4)
    assert value(ctx, "cxpulse_resolution_time_seconds_bucket", channel="email", le="1800.0") == 3


def test_one_contact_map_times_resolution_once_and_gives_a_later_survey_its_reason(ctx, monkeypatch):
    monkeypatch.setattr("streams.contacts.MAX_KNOWN_CONTACTS", 2)
    h = ContactsHandler(ctx)

    def contact(i: int, kind: str, ts: float, **extra) -> dict:
        return {"event_id": f"{kind}{i}-{ts}", "ts": iso(ts), "type": kind, "contact_id": f"k{i}",
                "customer_id": f"c{i}", **extra}

    send(h, contact(0, "contact_opened", 0, channel="chat", reason="billing", complaint=False),
         contact(0, "contact_resolved", 100, first_contact_resolution=True),
         contact(0, "contact_resolved", 200, first_contact_resolution=True))
    assert value(ctx, "cxpulse_resolution_time_seconds_count", channel="chat") == 1  # not timed twice
    records = send(h, contact(0, "survey_response", 300, csat=1))
    signals = [s for r in records if r.topic == Topic.SIGNALS and r.partition is None for s in orjson.loads(r.value)]
    assert [s["kind"] for s in signals] == ["detractor"]
    assert "billing" in orjson.dumps(signals[0]).decode()  # the reason of the contact, kept after resolution
    # Bounded: two newer contacts push k0 out, so its next survey has no reason to borrow.
    send(h, contact(1, "contact_opened", 400, channel="chat", reason="returns", complaint=False),
         contact(2, "contact_opened", 500, channel="chat", reason="account", complaint=False))
    assert len(h.contacts) == 2 and "k0" not in h.contacts


@pytest.mark.parametrize(
    ("score", "category"),
    [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter"), (10, "promoter")],
)
def test_nps_bands(score, category):
    assert nps_category(score) == category


def test_on_time_ratio_by_carrier_and_region(ctx):
    h = DeliveriesHandler(ctx)
    events = []
    for i in range(4):
        base = {"order_id": f"o{i}", "customer_id": "c", "carrier": "dpd", "region": "east"}
        events.append({**base, "event_id": f"c{i}", "ts": iso(0), "type": "created", "promised_by": iso(86400)})
        # Orders 0-2 arrive before the promise, order 3 after it.
        events.append({**base, "event_id": f"d{i}", "ts": iso(3600 if i < 3 else 86460), "type": "delivered"})
    send(h, *events)
    assert value(ctx, "cxpulse_deliveries_total", carrier="dpd", region="east", outcome="on_time") == 3
    assert value(ctx, "cxpulse_deliveries_total", carrier="dpd", region="east", outcome="late") == 1
    assert value(ctx, "cxpulse_on_time_rolling_ratio", carrier="dpd", region="east") == 0.75
    assert value(ctx, "cxpulse_orders_open") == 0


def test_client_error_ratio_and_sessions_expire_in_event_time(ctx):
    h = ClickstreamHandler(ctx)
    views = [
        {"event_id": f"v{i}", "ts": iso(i), "type": "page_view", "session_id": f"s{i}", "page": "/a"} for i in range(10)
    ]
    send(h, *views, {"event_id": "e1", "ts": iso(11), "type": "error", "session_id": "s1", "page": "/a"})
    assert value(ctx, "cxpulse_client_error_rolling_ratio") == pytest.approx(0.1)
    assert value(ctx, "cxpulse_active_sessions") == 10
    send(h, {"event_id": "v-late", "ts": iso(7200), "type": "page_view", "session_id": "new", "page": "/a"})
    assert value(ctx, "cxpulse_active_sessions") == 1  # the others idled past the 30 min timeout
    assert value(ctx, "cxpulse_sessions_started_total") == 11


def test_rejected_input_becomes_dead_letter_records(ctx):
    h = ContactsHandler(ctx)
    out = h.handle(b"garbage", key=b"cust-9", partition=3, offset=77)
    (record,) = out.records
    headers = dict(record.headers)
    assert (record.topic, record.key, record.value) == (Topic.DEADLETTER, b"cust-9", b"garbage")
    assert headers["cxpulse-reason"] == b"invalid_json"
    assert (headers["cxpulse-source-partition"], headers["cxpulse-source-offset"]) == (b"3", b"77")
    assert value(ctx, "cxpulse_events_rejected_total", stream="contacts", reason="invalid_json") == 1


def test_notifications_go_out_as_cloudevents_with_the_configured_source():
    ctx = Context.create(Settings(source_id="urn:shop:eu"), Metrics(CollectorRegistry()))
    contacts, customers = ContactsHandler(ctx), CustomersHandler(ctx)
    survey = {"event_id": "s1", "ts": iso(0), "type": "survey_response", "customer_id": "c", "contact_id": "k1",
              "csat": 1}  # fmt: skip
    records = contacts.handle(orjson.dumps(survey)).records
    (signals,) = [r for r in records if r.topic == Topic.SIGNALS and r.partition is None]
    # On cx.signals the candidate is plain data, not an envelope.
    candidate = orjson.loads(signals.value)[0]["notification"]
    assert set(candidate) == {"type", "id", "customer_id", "subject", "time", "data"}
    assert not customers.handle(signals.value, signals.key, 0).records  # held for the signals watermark
    records = []
    for stream in SIGNAL_STREAMS:  # every input partition reports progress past the survey
        for p in range(ctx.settings.partitions):
            progress = {"type": PROGRESS, "stream": stream, "partition": p, "through": T0 + 1}
            records += customers.handle(orjson.dumps(progress), b"progress", 0).records
    (record,) = records
    event = ce.decode(record.value)
    assert (record.topic, record.key, record.headers) == (Topic.NOTIFICATIONS, b"c", ce.KAFKA_HEADERS)
    assert (event["type"], event["subject"]) == (NOTIFY_DETRACTOR_FOLLOWUP, "k1")
    assert event["source"] == "urn:shop:eu/contacts"
    assert event["id"] == candidate["id"] == detractor_followup_id("c", "k1", T0)
    assert value(ctx, "cxpulse_notifications_total", type="detractor_followup") == 1


@pytest.mark.parametrize(
    ("handler", "step_s"), [(ClickstreamHandler, 60.0), (ContactsHandler, 60.0), (DeliveriesHandler, 3600.0)]
)
def test_each_stream_feeds_its_series_partials_at_its_step(handler, step_s):
    # The alerts themselves come from the series owners (tests/streams/test_series.py).
    h = handler(Context.create(Settings(), Metrics(CollectorRegistry())))
    assert h.monitor is not None
    assert (h.monitor.stream, h.monitor.step_s) == (h.stream, step_s)


@pytest.mark.parametrize(
    "notification",
    [{"type": "cx.notification.unknown"}, {"id": ""}, {"time": "yesterday"}],
)
def test_a_malformed_candidate_on_signals_is_dead_lettered(notification):
    ctx = Context.create(Settings(), Metrics(CollectorRegistry()))
    candidate = {"type": NOTIFY_DETRACTOR_FOLLOWUP, "id": "x", "customer_id": "c", "subject": None, "time": 1.0,
                 "data": {"customer_id": "c"}}  # fmt: skip
    signal = {"kind": "detractor", "customer_id": "c", "ts": 1.0, "source_id": "k", "detail": {},
              "notification": {**candidate, **notification}}  # fmt: skip
    raw = orjson.dumps([signal])
    (record,) = CustomersHandler(ctx).handle(raw, b"c", 0, 5).records
    assert (record.topic, record.value) == (Topic.DEADLETTER, raw)
    assert dict(record.headers)["cxpulse-reason"] == b"schema_violation"
