"""Series owners on the real broker: a complaint spike spread over both partitions gives one alert.

The contacts go to both input partitions (keys by customer); their partials meet on ``cx.series``
in the owner of the series, which alerts once, with the ids an in-process run of the same events
gives (the sums do not depend on how keys are partitioned, nor on how the worker interleaves
its partitions).
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from tests.inprocess import Fleet, Message, partition_of
from tests.kafka_harness import consume_all, produce, sample

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
BASELINE_MIN, SPIKE_MIN, AFTER_MIN = 70, 5, 15


def complaints() -> list[tuple[bytes, bytes]]:
    """4 billing complaints a minute, 30 a minute for 5 minutes after 70, then quiet traffic."""
    out = []
    n = 0
    for minute in range(BASELINE_MIN + SPIKE_MIN + AFTER_MIN):
        per = 30 if BASELINE_MIN <= minute < BASELINE_MIN + SPIKE_MIN else 4
        for i in range(per):
            n += 1
            ts = datetime.fromtimestamp(T0 + minute * 60 + i * 60 / per, UTC).isoformat()
            event = {"event_id": f"sk-{n}", "ts": ts, "type": "contact_opened", "contact_id": f"k{n}",
                     "customer_id": f"cust-{n % 97}", "channel": "phone", "reason": "billing",
                     "complaint": True}  # fmt: skip
            out.append((f"cust-{n % 97}".encode(), orjson.dumps(event)))
    return out


def test_a_spike_over_both_partitions_alerts_once_with_the_in_process_ids(kafka_settings, worker):
    s = kafka_settings
    records = complaints()
    fleet = Fleet(partitions=s.partitions)
    for key, value in records:
        fleet.feed(Message("contacts", key, value, partition_of(key, s.partitions)))
    expected = fleet.result.alerts
    firing = [a for a in expected if a[2] == "firing"]
    assert [a[0] for a in firing] == ['complaints{reason="billing"}', 'complaints_by_channel{channel="phone"}']
    produce(s, [(s.topic_contacts, key, value) for key, value in records])
    got = consume_all(s, s.topic_alerts, expected=len(fleet.result.alert_ids), timeout=180)
    events = [orjson.loads(r.value) for r in got]
    assert sorted(e["id"] for e in events) == sorted(fleet.result.alert_ids)
    assert {e["source"] for e in events} == {"/cxpulse/contacts"}
    samples = worker.scrape()
    assert sample(samples, "cxpulse_alerts_total", type="complaint_spike") == len(firing)
    assert sample(samples, "cxpulse_series_late_partials_total", stream="contacts") == 0
