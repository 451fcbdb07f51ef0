"""Worker throughput against its ceiling, on the real local broker.

Preloads a large mixed set of simulated events (once as one event per message, once with
clickstream batched as browser SDKs send it), then measures in one run:

(a) the ceiling: a raw confluent-kafka consume + JSON decode loop over the same messages;
(b) the full ``cxpulse worker`` process (parse, validate, dedup, event time, metrics,
    detectors, outputs) draining the same topics from the start.

Both figures come from the same machine in the same minutes, so their ratio is the number
to compare across runs; the absolute events/s moves with whatever else the machine does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from streams.kafka_runtime import KafkaBroker
from streams.localproc import free_port
from streams.settings import Settings
from streams.simulator import SimulationConfig, iter_encoded
from tests.kafka_harness import isolated_settings, produce, sample, start_worker


def preload(settings: Settings, events: int, batch_size: int, seed: int) -> tuple[int, int]:
    """Produce about ``events`` simulated events; returns (events, messages) produced."""
    config = SimulationConfig(seed=seed, sim_seconds=events / 50.0, events_per_sim_second=50.0)
    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
              "deliveries": settings.topic_deliveries}  # fmt: skip
    counted = {"events": 0}

    def records():
        for stream, key, value in iter_encoded(config, batch_size=batch_size):
            counted["events"] += value.count(b'"event_id"')
            yield topics[stream], key, value

    messages = produce(settings, records())
    return counted["events"], messages


def raw_ceiling(settings: Settings, messages: int) -> float:
    """Events/s of consume + orjson.loads over all input topics (no processing)."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"ceiling-{time.time_ns()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "fetch.max.bytes": 52428800, "queued.max.messages.kbytes": 262144,
    })  # fmt: skip
    consumer.subscribe([settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries])
    seen = events = 0
    started = None
    while seen < messages:
        batch = consumer.consume(10000, timeout=1.0)
        for msg in batch:
            if msg.error():
                continue
            if started is None:
                started = time.perf_counter()
            doc = orjson.loads(msg.value())
            events += len(doc) if isinstance(doc, list) else 1
            seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return events / elapsed if elapsed else float("nan")


def worker_rate(settings: Settings, log_dir: Path, messages: int, events: int) -> float:
    """Events/s of a real worker draining the preloaded topics (timed from first progress)."""
    worker = start_worker(settings, log_dir, wait_assigned=False)
    try:

        def done(m) -> float:
            return sum(sample(m, "cxpulse_messages_total", stream=s) for s in ("clickstream", "contacts", "deliveries"))

        first = worker.wait_for(lambda m: done(m) > 0, timeout=180, what="first message")
        t0, n0 = time.perf_counter(), done(first)
        last = worker.wait_for(lambda m: done(m) >= messages, timeout=1800, what="drain")
        elapsed = time.perf_counter() - t0
        accepted = sum(v for (name, _), v in last.items() if name == "cxpulse_events_total")
        return accepted * (1 - n0 / messages) / elapsed
    finally:
        worker.stop()


def run(events: int, batch_size: int, repeats: int, seed: int = 7) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cxpulse-bench-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            settings = isolated_settings(broker.bootstrap, root / "var", partitions=4)
            produced, messages = preload(settings, events, batch_size, seed)
            ceilings, workers = [], []
            for i in range(repeats):
                ceilings.append(raw_ceiling(settings, messages))
                fresh = settings.model_copy(update={"app_id": f"{settings.app_id}-{i}", "web_port": free_port()})
                workers.append(worker_rate(fresh, root / "logs", messages, produced))
            ceiling, worker = statistics.median(ceilings), statistics.median(workers)
            return {"events": produced, "messages": messages, "batch_size": batch_size,
                    "ceiling_events_per_s": ceiling, "worker_events_per_s": worker,
                    "ratio": worker / ceiling}  # fmt: skip
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'messages':>22} {'events':>9} {'ceiling ev/s':>13} {'worker ev/s':>12} {'ratio':>6}")
    for batch_size, label in ((1, "single-event"), (20, "batched (20/click msg)")):
        r = run(args.events, batch_size, args.repeats)
        print(f"{label:>22} {r['events']:>9} {r['ceiling_events_per_s']:>13,.0f} "
              f"{r['worker_events_per_s']:>12,.0f} {r['ratio']:>6.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
