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
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from deploy.simulator.simulation import SimulationConfig, iter_encoded
from streams.settings import Settings
from tests.kafka_harness import isolated_settings, produce, sample, start_worker


def preload(settings: Settings, events: int, batch_size: int, seed: int) -> tuple[int, int]:
    """Produce about ``events`` simulated events; returns (events, messages) produced."""
    config = SimulationConfig(seed=seed, sim_seconds=events / 50.0, events_per_sim_second=50.0)
    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
              "deliveries": settings.topic_deliveries}  # fmt: skip
    counted = {"events": 0}

    def records():
        for stream, key, value in iter_encoded(config, batch_size=batch_size, max_delay=30.0):
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


def _processed(m: dict) -> float:
    return sum(sample(m, "cxpulse_messages_total", stream=s) for s in ("clickstream", "contacts", "deliveries"))


def worker_rate(
    settings: Settings, log_dir: Path, messages: int, events: int, processes: int = 1, drain_timeout: float = 1800
) -> float:
    """Events/s of ``processes`` real workers in one consumer group draining the preloaded
    topics, timed from the moment every partition is owned (the first worker starts alone)."""
    workers = [start_worker(settings, log_dir, wait_assigned=False)]
    try:
        for _ in range(processes - 1):
            workers.append(start_worker(settings.model_copy(update={"web_port": free_port()}), log_dir,
                                        wait_assigned=False))  # fmt: skip
        total = settings.partitions * 3

        def owned(m: dict) -> float:
            return sum(sample(m, "cxpulse_assigned_partitions", topic=t) for t in
                       (settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries))  # fmt: skip

        def scrape_all() -> list[dict]:
            return [w.scrape() for w in workers]

        # every worker owns its share and has processed something: the group is settled
        workers[0].wait_for(lambda _m: (sum(owned(m) for m in scrape_all()) == total
                                        and all(_processed(m) > 0 for m in scrape_all())),
                            timeout=300, what="all partitions owned")  # fmt: skip
        t0, n0 = time.perf_counter(), sum(_processed(m) for m in scrape_all())
        workers[0].wait_for(lambda _m: sum(_processed(m) for m in scrape_all()) >= messages,
                            timeout=drain_timeout, what="drain")  # fmt: skip
        elapsed = time.perf_counter() - t0
        return events * (1 - n0 / messages) / elapsed
    finally:
        for worker in workers:
            worker.stop()


def faust_floor(settings: Settings, messages: int, events: int) -> float:
    """Events/s of a Faust worker whose agents do nothing (``bench/faust_floor.py``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FLOOR_TOPICS=",".join([settings.topic_clickstream, settings.topic_contacts,
                                                  settings.topic_deliveries]),
               FLOOR_TARGET=str(messages), FLOOR_APP_ID=f"floor-{time.time_ns()}",
               FLOOR_BOOTSTRAP=settings.bootstrap_servers, FLOOR_WEB_PORT=str(free_port()),
               FLOOR_DATADIR=str(settings.data_dir / "floor"))  # fmt: skip
    command = [sys.executable, "-m", "bench.faust_floor", "worker", "-l", "warn"]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, cwd=root)
    # Faust's worker redirects stdout into its log (stderr)
    found = re.search(r"FLOOR (\d+) ([\d.]+)", done.stdout + done.stderr)
    if found is None:
        raise RuntimeError(f"faust floor run failed:\n{done.stderr[-3000:]}")
    return events * int(found.group(1)) / messages / float(found.group(2))


def run(events: int, batch_size: int, repeats: int, seed: int = 7) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cxpulse-bench-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            settings = isolated_settings(broker.bootstrap, root / "var", partitions=4)
            produced, messages = preload(settings, events, batch_size, seed)
            ceilings, floors, workers, pairs = [], [], [], []
            for i in range(repeats):
                ceilings.append(raw_ceiling(settings, messages))
                floors.append(faust_floor(settings, messages, produced))
                fresh = settings.model_copy(update={"app_id": f"{settings.app_id}-{i}", "web_port": free_port()})
                workers.append(worker_rate(fresh, root / "logs", messages, produced))
                two = settings.model_copy(update={"app_id": f"{settings.app_id}-two-{i}", "web_port": free_port()})
                try:
                    pairs.append(worker_rate(two, root / "logs", messages, produced, processes=2, drain_timeout=600))
                except AssertionError as exc:  # reported, not hidden: see the README's known issues
                    print(f"two workers did not drain within 10 min: {str(exc).splitlines()[0]}", flush=True)
                    pairs.append(float("nan"))
            ceiling, worker = statistics.median(ceilings), statistics.median(workers)
            return {"events": produced, "messages": messages, "batch_size": batch_size,
                    "ceiling_events_per_s": ceiling, "floor_events_per_s": statistics.median(floors),
                    "worker_events_per_s": worker, "two_workers_events_per_s": statistics.median(pairs),
                    "ratio": worker / ceiling}  # fmt: skip
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("ceiling: confluent-kafka consume + JSON decode; faust floor: a Faust worker whose agents do "
          "nothing; worker: cxpulse worker; 2 workers: two processes in one consumer group (same machine)")
    print(f"{'messages':>24} {'events':>8} {'ev/msg':>6} {'ceiling ev/s':>13} {'faust floor':>12} "
          f"{'worker ev/s':>12} {'2 workers':>10} {'ratio':>6}")  # fmt: skip
    # Browser SDKs flush a session's events every 20 events or 30 s, whichever comes first.
    for batch_size, label in ((1, "single-event"), (20, "clickstream SDK batches")):
        r = run(args.events, batch_size, args.repeats)
        print(f"{label:>24} {r['events']:>8} {r['events'] / r['messages']:>6.2f} "
              f"{r['ceiling_events_per_s']:>13,.0f} {r['floor_events_per_s']:>12,.0f} "
              f"{r['worker_events_per_s']:>12,.0f} {r['two_workers_events_per_s']:>10,.0f} "
              f"{r['ratio']:>6.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
