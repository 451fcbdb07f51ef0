"""Append -> notification latency at a live pace (issue 10/11): prints figures, asserts no timing.

One worker on four partitions; 200 messages/s of live traffic (event time = wall time) on the
three input topics, with two probes per second: a detractor survey (``detractor_followup``, an
ordered type that waits for the signals watermark) and a failed delivery scan of a known order
(``delivery_failed``, transactional: decided on arrival). Latency is the Kafka timestamp of the
notification (set by the worker's producer) minus the time the probe was handed to the producer.
Run with ``-s``: ``pytest -s tests/streams/test_notification_latency_kafka.py``.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from streams.settings import Settings
from tests.kafka_harness import isolated_settings, sample, start_worker, wait_signals_drained

pytestmark = pytest.mark.kafka

RATE = 200.0  # messages per second, all streams
SECONDS = 60.0
PROBES_PER_S = 2.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def traffic(settings: Settings, seconds: float) -> tuple[dict[str, float], dict[str, int]]:
    """Produce live traffic; return the produce time of each probe by its notification subject,
    and the messages per topic."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5})
    rng = random.Random(7)
    sent: dict[str, float] = {}
    counts: dict[str, int] = {}
    started = time.monotonic()
    n = 0
    probe_every = int(RATE / PROBES_PER_S)

    def send(topic: str, key: str, event: dict) -> None:
        producer.produce(topic, key=key.encode(), value=orjson.dumps(event))
        counts[topic] = counts.get(topic, 0) + 1
        producer.poll(0)

    while time.monotonic() - started < seconds:
        ahead = started + n / RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        now = time.time()
        i, n = n, n + 1
        if i % probe_every == 0:  # a detractor survey and a failed scan, at the same instant
            contact, order = f"probe-k{i}", f"probe-o{i}"
            customer = f"probe-c{i}"
            survey = {"event_id": f"e{i}s", "ts": iso(now), "type": "survey_response", "customer_id": customer,
                      "contact_id": contact, "csat": 1}  # fmt: skip
            send(settings.topic_contacts, customer, survey)
            send(settings.topic_deliveries, order, {"event_id": f"e{i}c", "ts": iso(now - 1), "type": "created",
                                                    "order_id": order, "customer_id": f"probe-d{i}", "carrier": "dhl",
                                                    "region": "north", "promised_by": iso(now + 86400)})  # fmt: skip
            send(settings.topic_deliveries, order, {"event_id": f"e{i}f", "ts": iso(now), "type": "failed_attempt",
                                                    "order_id": order, "customer_id": f"probe-d{i}", "carrier": "dhl",
                                                    "region": "north"})  # fmt: skip
            sent[contact] = sent[order] = time.time()
            continue
        kind = rng.random()
        if kind < 0.55:
            session = f"s{rng.randrange(2000)}"
            send(settings.topic_clickstream, session, {"event_id": f"e{i}", "ts": iso(now), "type": "page_view",
                                                       "session_id": session, "page": "/home",
                                                       "customer_id": f"c{rng.randrange(5000)}"})  # fmt: skip
        elif kind < 0.75:
            customer = f"c{rng.randrange(5000)}"
            send(settings.topic_contacts, customer, {"event_id": f"e{i}", "ts": iso(now), "type": "contact_opened",
                                                     "customer_id": customer, "contact_id": f"k{i}", "channel": "chat",
                                                     "reason": "billing", "complaint": False})  # fmt: skip
        else:
            order = f"o{i}"
            send(settings.topic_deliveries, order, {"event_id": f"e{i}", "ts": iso(now), "type": "created",
                                                    "order_id": order, "customer_id": f"c{rng.randrange(5000)}",
                                                    "carrier": "ups", "region": "south",
                                                    "promised_by": iso(now + 3 * 86400)})  # fmt: skip
    assert producer.flush(60) == 0
    return sent, counts


def latencies(settings: Settings, sent: dict[str, float]) -> dict[str, list[float]]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "latency-reader",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([settings.topic_notifications])
    out: dict[str, list[float]] = {}
    quiet = time.monotonic()
    try:
        while time.monotonic() - quiet < 5:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            quiet = time.monotonic()
            event = orjson.loads(msg.value())
            subject = event.get("subject")
            if subject in sent:
                kind = event["type"].rsplit(".", 1)[-1]
                out.setdefault(kind, []).append(msg.timestamp()[1] / 1000 - sent[subject])
    finally:
        consumer.close()
    return out


@pytest.mark.parametrize("progress_s", [1.0, 0.2])
def test_append_to_notification_latency(kafka_broker, tmp_path, progress_s) -> None:
    settings = isolated_settings(kafka_broker.bootstrap, tmp_path / "var", partitions=4,
                                 signals_progress_seconds=progress_s)  # fmt: skip
    worker = start_worker(settings, tmp_path / "logs")
    try:
        sent, counts = traffic(settings, SECONDS)
        streams = {settings.topic_clickstream: "clickstream", settings.topic_contacts: "contacts",
                   settings.topic_deliveries: "deliveries"}  # fmt: skip
        worker.wait_for(lambda m: all(sample(m, "cxpulse_messages_total", stream=streams[t]) >= n
                                      for t, n in counts.items()), timeout=300, what="input processed")  # fmt: skip
        wait_signals_drained([worker])
    finally:
        worker.stop()
    got = latencies(settings, sent)
    for kind, values in sorted(got.items()):
        values.sort()
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        p50 = statistics.median(values)
        print(f"\nprogress every {progress_s:.1f} s: {kind}: n={len(values)} p50={p50 * 1000:.0f} ms "
              f"p99={p99 * 1000:.0f} ms max={values[-1] * 1000:.0f} ms")  # fmt: skip
    probes = len(sent) // 2
    # Not a timing assertion: every probe gave both notifications, except that the detractors of
    # the last seconds stay held: once traffic stops, no input partition reports progress.
    assert len(got.get("delivery_failed", [])) == probes
    assert len(got.get("detractor_followup", [])) >= probes - 2 * PROBES_PER_S * 2
