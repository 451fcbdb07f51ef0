"""Append -> notification latency through the real broker and one real worker.

Live simulated traffic (the realistic mix of the three streams, event time = now) is produced
at a fixed rate in messages per second; among it, ten times a second, a detractor survey
answer of a customer never seen before (so no cooldown or cap applies). Each becomes a
``detractor_followup`` notification after two Kafka hops (``cx.contacts`` -> worker ->
``cx.signals`` -> worker -> ``cx.notifications``). Latency is the time from the producer's
``produce()`` of the survey to the notification's arrival at a consumer of
``cx.notifications`` (same host, same clock). The first seconds (group settling) are left out.

Two modes per rate, on the same traffic: ``ordered`` (the default settings: a detractor
follow-up is decided in event-time order, once every input partition of every stream has passed
the survey's time) and ``immediate`` (``CXPULSE_IMMEDIATE_NOTIFICATION_TYPES`` with
``detractor_followup`` added: decided on arrival, like the transactional types). In this mix the
clickstream is batched as browser SDKs flush it (20 events or 30 s), so its event time trails the
other streams' by up to 30 s, and ordered notifications wait for it: the figure shows what that
ordering costs with SDK-batched clickstream. Probes stop ``TAIL_S`` before the traffic does: once
traffic stops no partition moves its clock, and the last probes would wait for the idle rule.

The simulator is too slow to pre-generate a minute at thousands of messages per second, so the
run's traffic is made once at :data:`BASE_RATE` messages/s, and a higher rate is copies of it side
by side, ids suffixed so that each copy is a population of its own (:func:`tile`).

Prints p50 / p99 / max per rate and mode; no assertion.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from deploy.simulator.simulation import SimulationConfig, iter_encoded
from streams.settings import Settings
from tests.kafka_harness import isolated_settings, start_worker

PROBES_PER_S = 10.0
MIX_SHAPE = "mix of 3 streams"
WARMUP_S = 5.0
#: Probes stop this long before the traffic: the SDK flush delay (30 s) and a margin.
TAIL_S = 35.0
#: Added to the immediate types in the ``immediate`` mode.
IMMEDIATE = "delivery_delayed,delivery_failed,detractor_followup"


#: The simulator makes a few hundred records per second of CPU here, far too few to pre-generate
#: a minute at thousands of messages per second: it makes the run's traffic at up to
#: :data:`BASE_RATE` messages/s once, and faster traffic is copies of it (see :func:`tile`).
BASE_RATE = 200.0
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT")


def base_traffic(seconds: float, seed: int) -> tuple[list[tuple[str, bytes, bytes]], float]:
    """``seconds`` of the realistic mix at about :data:`BASE_RATE` messages/s, event time from now
    (clickstream batched as browser SDKs flush it: 20 events or 30 s, as bench_pipeline's mix), as
    ``(stream, key, value)``; and its start time."""
    start = time.time()

    def generate(events_per_s: float) -> list[tuple[str, bytes, bytes]]:
        config = SimulationConfig(seed=seed, start=start, sim_seconds=seconds, events_per_sim_second=events_per_s)
        return list(iter_encoded(config, batch_size=20, max_delay=30.0))

    # Events per message depend on the mix and the flush timer: measure it once, then scale.
    trial = generate(BASE_RATE * 2.5)
    return generate(BASE_RATE * 2.5 * BASE_RATE * seconds / max(1, len(trial))), start


def tile(base: list[tuple[str, bytes, bytes]], start: float, rate: float, to: float) -> list[tuple[str, bytes, bytes]]:
    """``base`` (traffic from ``start``) as ``rate`` messages/s from ``to``, in event time.

    Copies side by side raise the rate: each copy's message comes right after the base message it
    copies, and is a population of its own (each ``*_id`` value and the key get a ``~copy``
    suffix, so no event id repeats and no session, customer or order spans two copies). Event
    times are moved to start at ``to`` and stretched so the traffic runs at one event-time second
    per wall second at ``rate``.
    """
    if not base:
        return []
    span = max(1e-9, max(_newest_ts(value) for _, _, value in base) - start)
    copies = max(1, round(rate * span / len(base)))
    stretch = copies * len(base) / (rate * span)  # event-time seconds per base second
    out: list[tuple[str, bytes, bytes]] = []
    for topic, key, raw in base:
        value = orjson.loads(raw)
        for copy in range(copies):
            suffix = f"~{copy}"
            if isinstance(value, list):
                body: object = [_retag(e, suffix, start, to, stretch) for e in value]
            else:
                body = _retag(value, suffix, start, to, stretch)
            out.append((topic, key + suffix.encode(), orjson.dumps(body)))
    return out


def _retag(event: dict[str, object], suffix: str, start: float, to: float, stretch: float) -> dict[str, object]:
    retagged: dict[str, object] = {}
    for name, value in event.items():
        if isinstance(value, str):
            if name.endswith("_id"):
                value = value + suffix
            elif _TIMESTAMP.match(value):
                ts = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                value = datetime.fromtimestamp(to + (ts - start) * stretch, UTC).isoformat()
        retagged[name] = value
    return retagged


def _newest_ts(value: bytes) -> float:
    """The newest event time (epoch seconds) in a simulated message (one event or an SDK batch)."""
    decoded = orjson.loads(value)
    events = decoded if isinstance(decoded, list) else [decoded]
    return max(datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).timestamp() for e in events)


def _probe(i: int, ts: str) -> tuple[bytes, bytes]:
    customer = f"latency-probe-{i}"
    event = {"event_id": f"{customer}-survey", "ts": ts, "type": "survey_response", "customer_id": customer,
             "contact_id": None, "csat": 1}  # fmt: skip
    return customer.encode(), orjson.dumps(event)


def measure(settings: Settings, rate: float, records: list[tuple[str, bytes, bytes]]) -> list[float]:
    """Latencies (s) of the probes produced after the warm-up, at ``rate`` messages/s in all."""
    probe_until = len(records) - TAIL_S * rate
    sent: dict[bytes, float] = {}
    received: dict[bytes, float] = {}
    done = threading.Event()

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"latency-{time.time_ns()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})  # fmt: skip
    parts = consumer.list_topics(settings.topic_notifications, timeout=10).topics[settings.topic_notifications]
    tps = [TopicPartition(settings.topic_notifications, p) for p in parts.partitions]
    ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    consumer.assign([TopicPartition(tp.topic, tp.partition, end) for tp, end in zip(tps, ends, strict=True)])

    def read() -> None:
        while not done.is_set():
            for msg in consumer.consume(1000, timeout=0.05):
                if msg.error() is None and msg.key() in sent and msg.key() not in received:
                    received[msg.key()] = time.time()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 1})
    every = max(1, round(rate / PROBES_PER_S))
    started = time.monotonic()
    probes = 0
    # A probe carries the event time the traffic has reached (the newest event produced), not the
    # wall clock: the background was generated before the run and its event time lags the wall
    # clock by that much, and the customers agent decides a survey once every input partition has
    # passed its time. Live, every stream's event time is the wall clock's.
    stream_time = _newest_ts(records[0][2]) if records else time.time()
    for i, (topic, key, value) in enumerate(records):
        ahead = started + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        if i % every == 0 and i < probe_until:
            key, value = _probe(probes, datetime.fromtimestamp(stream_time, UTC).isoformat())
            topic = settings.topic_contacts
            probes += 1
            sent[key] = time.time()
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if i % every != 0:
            stream_time = max(stream_time, _newest_ts(value))
    producer.flush(60)
    achieved = len(records) / max(1e-9, time.monotonic() - started)
    print(f"  produced {len(records):,} messages at {achieved:,.0f}/s (asked {rate:,.0f}/s)", flush=True)
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)
    done.set()
    reader.join(5)
    consumer.close()
    first = min(sent.values()) + WARMUP_S
    missing = sum(1 for k in sent if k not in received)
    if missing:
        print(f"  {missing} of {len(sent)} probes got no notification within 30 s", flush=True)
    return sorted(received[k] - t for k, t in sent.items() if t >= first and k in received)


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="200", help="comma-separated messages/s")
    parser.add_argument("--seconds", type=float, default=70.0)
    parser.add_argument("--modes", default="ordered,immediate", help="comma-separated, of: ordered, immediate")
    parser.add_argument("--max-rate", type=float, help="messages/s one worker reached (mix): add 50%% of it")
    parser.add_argument("--max-from", type=Path, help="bench_pipeline --results JSON: add 50%% of its measured "
                        "maximum (one worker, mix of 3 streams) to the rates")  # fmt: skip
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    if args.max_rate:
        rates.append(round(0.5 * args.max_rate))
    elif args.max_from is not None and args.max_from.exists():
        mix = orjson.loads(args.max_from.read_bytes()).get(MIX_SHAPE)
        if mix:
            per_message = mix["events"] / mix["messages"]
            rates.append(round(0.5 * mix["worker_events_per_s"] / per_message))
            worker = mix["worker_events_per_s"]
            print(f"50% of the measured maximum: {rates[-1]:,.0f} messages/s "
                  f"(one worker, {worker:,.0f} events/s at {per_message:.2f} events/message)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cxpulse-latency-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            # The same traffic for every rate and mode, generated once (the simulator is slow).
            base, start = base_traffic(args.seconds, seed=11)
            print(f"{'messages/s':>11} {'mode':>10} {'probes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
                  flush=True)  # fmt: skip
            for rate in rates:
                for mode in filter(None, args.modes.split(",")):
                    settings = isolated_settings(broker.bootstrap, root / "var", partitions=4)
                    if mode == "immediate":
                        settings = settings.model_copy(update={"immediate_notification_types": IMMEDIATE})
                    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
                              "deliveries": settings.topic_deliveries}  # fmt: skip
                    worker = start_worker(settings, root / "logs")
                    try:
                        # event time from now (after the worker started), so it runs with the wall clock
                        records = tile(base, start, rate, to=time.time())
                        # each mode has its own topics (isolated_settings: "t<tag>.<stream>")
                        mapped = [(topics[stream], k, v) for stream, k, v in records]
                        lat = measure(settings, rate, mapped)
                    finally:
                        worker.stop()
                    print(f"{rate:>11,.0f} {mode:>10} {len(lat):>7} {1000 * percentile(lat, 0.5):>8.0f} "
                          f"{1000 * percentile(lat, 0.99):>8.0f} {1000 * (max(lat) if lat else float('nan')):>8.0f}",
                          flush=True)  # fmt: skip
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
