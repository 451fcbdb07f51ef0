"""Produce simulated traffic to Kafka: pacing (event-time speedup and/or a wall-clock rate cap),
clickstream batching, progress on stderr, optional ground-truth file.

The generation itself is pure and lives in :mod:`deploy.simulator.simulation`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from deploy.simulator.simulation import (
    DEFAULT_TOPICS,
    STREAMS,
    Simulation,
    SimulationConfig,
    batch_messages,
    format_ts,
    write_truth,
)
from streams.broker_access import cluster_metadata
from streams.size_budget import DEFAULT_BUDGET

#: Producer defaults tuned for throughput; ``producer_config`` overrides them (the CLI passes
#: ``streams.topics.client_config``, whose ``message.max.bytes`` follows CXPULSE_MAX_MESSAGE_BYTES).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "message.max.bytes": DEFAULT_BUDGET.input_record_bytes,  # what the input topics accept
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 262_144,
    "compression.type": "lz4",
    "enable.idempotence": True,
    "acks": "all",
}

FLUSH_TIMEOUT_S = 60.0
METADATA_TIMEOUT_S = 30.0
FLUSH_STEP_S = 0.5


def run_simulation(
    config: SimulationConfig,
    *,
    bootstrap_servers: str,
    topics: Mapping[str, str] | None = None,
    rate: float | None = None,
    speedup: float | None = None,
    batch_size: int = 5,
    producer_config: Mapping[str, Any] | None = None,
    progress: bool = True,
    truth_path: Path | None = None,
    max_batch_delay: float = 5.0,
    progress_interval: float = 5.0,
) -> dict[str, Any]:
    """Generate ``config``'s events and produce them.

    ``speedup``: event-time seconds per wall second (None: as fast as possible unless
    ``rate`` is set). ``rate``: cap in events per wall second (None: no cap). Both may be
    given; the slower one wins. Clickstream events are sent as JSON arrays of up to
    ``batch_size`` events of one session (1 = one plain object per message); contacts and
    deliveries one per message. Writes the truth JSON to ``truth_path``. Returns stats;
    delivery errors do not raise: check ``delivery_failures`` and ``undelivered``.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if speedup is not None and speedup <= 0:
        raise ValueError("speedup must be positive")
    topic_of = dict(DEFAULT_TOPICS) | dict(topics or {})
    conf: dict[str, Any] = dict(PRODUCER_DEFAULTS) | {"bootstrap.servers": bootstrap_servers}
    conf |= dict(producer_config or {})
    failures = [0]
    first_error: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures[0] += 1
            if not first_error:
                first_error.append(str(err))

    producer = Producer(conf)
    # Reach the broker before the simulation spends seconds building its world: refused
    # credentials (with cxpulse's client_config) fail here, at once.
    cluster_metadata(producer, METADATA_TIMEOUT_S)
    sim = Simulation(config, record_truth=truth_path is not None)
    per_stream = {s: {"events": 0, "messages": 0} for s in STREAMS}
    dumps = orjson.dumps
    produce = producer.produce
    poll = producer.poll
    start_ts = config.start
    wall0 = time.monotonic()
    next_report = wall0 + progress_interval
    events = 0
    messages = 0
    for msg in batch_messages(sim.events(), batch_size, max_batch_delay):
        n = len(msg.events)
        # Pacing: the wall time at which this message is due.
        due = wall0
        if speedup is not None:
            due = max(due, wall0 + (msg.ts - start_ts) / speedup)
        if rate is not None:
            due = max(due, wall0 + events / rate)
        now = time.monotonic()
        while due - now > 0.002:
            poll(min(due - now, 0.05))
            now = time.monotonic()
        value = dumps(msg.events if msg.batch else msg.events[0])
        topic = topic_of[msg.stream]
        while True:
            try:
                produce(topic, value, msg.key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.05)
        events += n
        messages += 1
        stats = per_stream[msg.stream]
        stats["events"] += n
        stats["messages"] += 1
        if messages % 1000 == 0:
            poll(0)
        if progress and now >= next_report:
            next_report = now + progress_interval
            elapsed = now - wall0
            share = (msg.ts - start_ts) / config.sim_seconds
            print(
                f"simulate: {events} events, {messages} messages, "
                f"{events / max(elapsed, 1e-9):,.0f} ev/s, event time {format_ts(msg.ts)} "
                f"({100 * share:.1f}%)",
                file=sys.stderr,
                flush=True,
            )
    remaining = _flush(producer, FLUSH_TIMEOUT_S)
    elapsed = time.monotonic() - wall0
    result: dict[str, Any] = {
        "events": events,
        "messages": messages,
        "per_stream": per_stream,
        "wall_seconds": round(elapsed, 3),
        "events_per_second": round(events / max(elapsed, 1e-9), 1),
        "event_time_start": format_ts(config.start),
        "event_time_end": format_ts(config.end),
        "delivery_failures": failures[0],
        "undelivered": remaining,
        "topics": {s: topic_of[s] for s in STREAMS},
    }
    if first_error:
        result["first_error"] = first_error[0]
    if truth_path is not None:
        write_truth(sim.truth(), truth_path)
        result["truth_path"] = str(truth_path)
    if progress:
        print(
            f"simulate: done, {events} events in {messages} messages, {elapsed:.1f}s "
            f"({result['events_per_second']:,.0f} ev/s), {failures[0]} delivery failures",
            file=sys.stderr,
            flush=True,
        )
    return result


def _flush(producer: Producer, timeout: float) -> int:
    """Wait for outstanding deliveries; return how many are left. In short steps, because one long
    ``flush`` keeps waiting after a callback raised (e.g. on refused credentials) and only then
    re-raises it."""
    deadline = time.monotonic() + timeout
    remaining = producer.flush(0)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(min(FLUSH_STEP_S, max(0.0, deadline - time.monotonic())))
    return remaining
