"""End to end on the real broker: exact metrics on /metrics and exact dead letters."""

from __future__ import annotations

import orjson
import pytest

from tests.kafka_harness import consume_all, produce, sample

pytestmark = pytest.mark.kafka

T0 = "2026-03-02T09:00:00+00:00"


def ts(seconds: int) -> str:
    """RFC 3339 event time ``seconds`` after T0, in a non-UTC offset to exercise parsing."""
    from datetime import datetime, timedelta, timezone

    base = datetime.fromisoformat(T0) + timedelta(seconds=seconds)
    return base.astimezone(timezone(timedelta(hours=2))).isoformat()


def click_event(i: int, kind: str, session: str, page: str, at: int, **extra) -> dict:
    return {"event_id": f"ck-{i}", "ts": ts(at), "type": kind, "session_id": session, "page": page, **extra}


def test_metrics_and_dead_letters_are_exact(kafka_settings, worker):
    s = kafka_settings
    batch = [
        click_event(1, "page_view", "s1", "/orders/8812", 0, customer_id="cust-1"),
        click_event(2, "click", "s1", "/orders/8812", 1, element="#track", x=10, y=10),
        click_event(3, "error", "s1", "/orders/8812", 2, message="TypeError"),
    ]
    mixed_batch = [
        click_event(6, "login", "s2", "/login", 700, success=False),
        {"event_id": "ck-7", "ts": ts(700), "type": "boom", "session_id": "s2", "page": "/x"},
        click_event(8, "click", "s2", "/login", 701),  # no element: schema violation
    ]
    bad_csat = {"event_id": "ct-5", "ts": ts(40), "type": "survey_response", "customer_id": "cust-2", "csat": 9}
    bad_ts = {"event_id": "ct-6", "ts": "yesterday", "type": "survey_response", "customer_id": "cust-2", "nps": 3}
    clickstream = [
        (orjson.dumps(batch), b"s1"),
        (orjson.dumps(click_event(4, "page_view", "s2", "/products/55", 600)), b"s2"),
        (orjson.dumps(batch[0]), b"s1"),  # a retried event: duplicate
        (b'{"event_id": "broken", ', b"s3"),  # not JSON
        (orjson.dumps(mixed_batch), b"s2"),
        # 10 minutes behind the clock (grace 120 s): late, still counted.
        (orjson.dumps(click_event(9, "page_view", "s2", "/products/56", 100)), b"s2"),
    ]
    contacts = [
        {
            "event_id": "ct-1",
            "ts": ts(0),
            "type": "contact_opened",
            "contact_id": "k1",
            "customer_id": "cust-1",
            "channel": "chat",
            "reason": "billing",
            "complaint": True,
        },
        {
            "event_id": "ct-2",
            "ts": ts(10),
            "type": "contact_opened",
            "contact_id": "k2",
            "customer_id": "cust-2",
            "channel": "phone",
            "reason": "delivery",
            "complaint": False,
            "order_id": "o-1",
        },
        {
            "event_id": "ct-3",
            "ts": ts(600),
            "type": "contact_resolved",
            "contact_id": "k1",
            "customer_id": "cust-1",
            "first_contact_resolution": True,
            "handle_seconds": 300,
        },
        {
            "event_id": "ct-4",
            "ts": ts(700),
            "type": "survey_response",
            "customer_id": "cust-1",
            "contact_id": "k1",
            "csat": 2,
            "nps": 10,
            "ces": 3,
        },
        bad_csat,
        bad_ts,
    ]
    day = 86400
    deliveries = [
        {
            "event_id": "dv-1",
            "ts": ts(0),
            "type": "created",
            "order_id": "o-1",
            "customer_id": "cust-1",
            "carrier": "dhl",
            "region": "north",
            "promised_by": ts(2 * day),
        },
        {
            "event_id": "dv-2",
            "ts": ts(day),
            "type": "delivered",
            "order_id": "o-1",
            "customer_id": "cust-1",
            "carrier": "dhl",
            "region": "north",
        },
        {
            "event_id": "dv-3",
            "ts": ts(0),
            "type": "created",
            "order_id": "o-2",
            "customer_id": "cust-2",
            "carrier": "ups",
            "region": "south",
            "promised_by": ts(3600),
        },
        {
            "event_id": "dv-4",
            "ts": ts(7200),
            "type": "delivered",
            "order_id": "o-2",
            "customer_id": "cust-2",
            "carrier": "ups",
            "region": "south",
        },
        {
            "event_id": "dv-5",
            "ts": ts(7300),
            "type": "failed_attempt",
            "order_id": "o-3",
            "customer_id": "cust-3",
            "carrier": "ups",
            "region": "south",
        },
    ]
    records = [(s.topic_clickstream, key, value) for value, key in clickstream]
    records += [(s.topic_contacts, e["customer_id"].encode(), orjson.dumps(e)) for e in contacts]
    records += [(s.topic_deliveries, e["order_id"].encode(), orjson.dumps(e)) for e in deliveries]
    # Per-key order is what Kafka guarantees; send each stream's records in order.
    produce(s, records)

    m = worker.wait_for(
        lambda m: (
            sample(m, "cxpulse_messages_total", stream="clickstream") == len(clickstream)
            and sample(m, "cxpulse_messages_total", stream="contacts") == len(contacts)
            and sample(m, "cxpulse_messages_total", stream="deliveries") == len(deliveries)
        ),
        what="all messages processed",
    )

    # Accepted events by stream and type: the duplicate and the rejects are not counted.
    assert sample(m, "cxpulse_events_total", stream="clickstream", type="page_view") == 3
    assert sample(m, "cxpulse_events_total", stream="clickstream", type="click") == 1
    assert sample(m, "cxpulse_events_total", stream="clickstream", type="error") == 1
    assert sample(m, "cxpulse_events_total", stream="clickstream", type="login") == 1
    assert sample(m, "cxpulse_events_duplicate_total", stream="clickstream") == 1
    assert sample(m, "cxpulse_events_late_total", stream="clickstream") == 1
    rejected = {
        (dict(labels)["stream"], dict(labels)["reason"]): value
        for (name, labels), value in m.items()
        if name == "cxpulse_events_rejected_total" and value  # processing_error is exported at 0
    }
    assert rejected == {
        ("clickstream", "invalid_json"): 1,
        ("clickstream", "unknown_type"): 1,
        ("clickstream", "schema_violation"): 1,
        ("contacts", "schema_violation"): 1,
        ("contacts", "bad_timestamp"): 1,
    }
    # Clickstream metrics, pages normalised to route templates.
    assert sample(m, "cxpulse_page_views_total", page="/orders/:id") == 1
    assert sample(m, "cxpulse_page_views_total", page="/products/:id") == 2
    assert sample(m, "cxpulse_client_errors_total", page="/orders/:id") == 1
    assert sample(m, "cxpulse_logins_total", outcome="failure") == 1
    assert sample(m, "cxpulse_sessions_started_total") == 2
    assert sample(m, "cxpulse_active_sessions") == 2
    # Contacts.
    assert sample(m, "cxpulse_contacts_opened_total", channel="chat", reason="billing") == 1
    assert sample(m, "cxpulse_contacts_opened_total", channel="phone", reason="delivery") == 1
    assert sample(m, "cxpulse_complaints_total", reason="billing", channel="chat") == 1
    assert sample(m, "cxpulse_complaints_total", reason="delivery", channel="phone") == 0
    assert sample(m, "cxpulse_contacts_resolved_total", first_contact_resolution="true") == 1
    assert sample(m, "cxpulse_resolution_time_seconds_count", channel="chat") == 1
    assert sample(m, "cxpulse_resolution_time_seconds_sum", channel="chat") == 600
    assert sample(m, "cxpulse_csat_score_sum") == 2 and sample(m, "cxpulse_csat_score_count") == 1
    assert sample(m, "cxpulse_ces_score_sum") == 3
    assert sample(m, "cxpulse_nps_responses_total", category="promoter") == 1
    assert sample(m, "cxpulse_csat_rolling_score") == 2
    assert sample(m, "cxpulse_nps_rolling_score") == 100
    assert sample(m, "cxpulse_fcr_rolling_ratio") == 1
    # Deliveries.
    assert sample(m, "cxpulse_deliveries_total", carrier="dhl", region="north", outcome="on_time") == 1
    assert sample(m, "cxpulse_deliveries_total", carrier="ups", region="south", outcome="late") == 1
    assert sample(m, "cxpulse_on_time_rolling_ratio", carrier="ups", region="south") == 0
    assert sample(m, "cxpulse_failed_delivery_attempts_total", carrier="ups", region="south") == 1
    assert sample(m, "cxpulse_delivery_status_total", status="created", carrier="dhl", region="north") == 1

    # Dead letters: exactly the five rejects, each with its reason and provenance.
    letters = consume_all(s, s.topic_deadletter, expected=5)
    assert len(letters) == 5
    by_reason = sorted((r.headers["cxpulse-stream"].decode(), r.headers["cxpulse-reason"].decode()) for r in letters)
    assert by_reason == sorted(rejected)
    for letter in letters:
        assert letter.headers["cxpulse-source-topic"].decode() in (s.topic_clickstream, s.topic_contacts)
        assert int(letter.headers["cxpulse-source-offset"]) >= 0
        assert int(letter.headers["cxpulse-source-partition"]) in (0, 1)
        assert letter.headers["cxpulse-error"]
    invalid = next(r for r in letters if r.headers["cxpulse-reason"] == b"invalid_json")
    assert invalid.value == b'{"event_id": "broken", '  # original bytes, unchanged
    assert invalid.key == b"s3"
    csat = next(r for r in letters if b"csat" in r.value)
    assert orjson.loads(csat.value) == bad_csat
    assert b"csat" in csat.headers["cxpulse-error"] and b"5" in csat.headers["cxpulse-error"]
    in_batch = [r for r in letters if "cxpulse-batch-index" in r.headers]
    assert sorted(int(r.headers["cxpulse-batch-index"]) for r in in_batch) == [1, 2]
    assert all(r.key == b"s2" for r in in_batch)  # a batch's elements keep the message key
