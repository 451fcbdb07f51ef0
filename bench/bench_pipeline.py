"""Worker throughput against its ceiling, on the real local broker.

Preloads a large mixed set of simulated events (once as one event per message, once with
clickstream batched as browser SDKs send it), then measures in one run:

(a) the ceiling: a raw confluent-kafka consume + JSON decode loop over the same messages;
(b) the full ``cxpulse worker`` process (parse, validate, dedup, event time, metrics,
    detectors, outputs) draining the same topics from the start.

Both figures come from the same machine in the same minutes, so their ratio is the number
to compare across runs; the absolute events/s moves with whatever else the machine does.
Because the build machine is shared, each figure is also given per CPU-second of the
measured process (``/proc`` user + system time): events per CPU-second hardly moves with
the machine's load and is the figure to compare between code versions.

Three shapes: single-event clickstream messages, clickstream in full SDK batches of 20 events,
and the realistic mix of the three streams (clickstream batched as browser SDKs flush it: 20
events or 30 s). Per shape: ceiling, Faust floor and one worker, medians of ``--repeats``;
then a fleet of two and of three worker processes in one consumer group, one run each.
``--results FILE`` writes the figures as JSON (``bench.bench_latency`` reads the maximum).
"""

from __future__ import annotations

import argparse
import json
import math
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

#: name -> (simulator stream mix or None for its default, events per batch, SDK flush delay in s)
SHAPES: dict[str, tuple[dict[str, float] | None, int, float]] = {
    "clickstream single events": ({"clickstream": 1.0}, 1, 30.0),
    "clickstream batches of 20": ({"clickstream": 1.0}, 20, 1e9),
    "mix of 3 streams": (None, 20, 30.0),
}


def preload(
    settings: Settings,
    events: int,
    batch_size: int,
    seed: int,
    mix: dict[str, float] | None = None,
    max_delay: float = 30.0,
) -> tuple[int, int]:
    """Produce about ``events`` simulated events; returns (events, messages) produced."""
    config = SimulationConfig(seed=seed, sim_seconds=events / 50.0, events_per_sim_second=50.0,
                              **({"mix": mix} if mix else {}))  # fmt: skip
    topics = {"clickstream": settings.topic_clickstream, "contacts": settings.topic_contacts,
              "deliveries": settings.topic_deliveries}  # fmt: skip
    counted = {"events": 0}

    def records():
        for stream, key, value in iter_encoded(config, batch_size=batch_size, max_delay=max_delay):
            counted["events"] += value.count(b'"event_id"')
            yield topics[stream], key, value

    messages = produce(settings, records())
    return counted["events"], messages


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_ceiling(settings: Settings, messages: int) -> tuple[float, float]:
    """Events/s of consume + orjson.loads over all input topics (no processing), and per CPU-second."""
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers, "group.id": f"ceiling-{time.time_ns()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "fetch.max.bytes": 52428800, "queued.max.messages.kbytes": 262144,
    })  # fmt: skip
    consumer.subscribe([settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries])
    seen = events = 0
    started, cpu0 = None, 0.0
    while seen < messages:
        batch = consumer.consume(10000, timeout=1.0)
        for msg in batch:
            if msg.error():
                continue
            if started is None:
                started, cpu0 = time.perf_counter(), time.process_time()
            doc = orjson.loads(msg.value())
            events += len(doc) if isinstance(doc, list) else 1
            seen += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu0
    consumer.close()
    return (events / elapsed if elapsed else float("nan")), (events / cpu if cpu else float("nan"))


def _processed(m: dict) -> float:
    return sum(sample(m, "cxpulse_messages_total", stream=s) for s in ("clickstream", "contacts", "deliveries"))


def worker_rate(
    settings: Settings, log_dir: Path, messages: int, events: int, processes: int = 1, drain_timeout: float = 1800
) -> tuple[float, float]:
    """Events/s of ``processes`` real workers in one consumer group draining the preloaded
    topics, timed from the moment every partition is owned (the first worker starts alone);
    and events per CPU-second of the worker processes over the same span."""
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
        cpu0 = sum(cpu_seconds(w.process.pid) for w in workers)
        workers[0].wait_for(lambda _m: sum(_processed(m) for m in scrape_all()) >= messages,
                            timeout=drain_timeout, what="drain")  # fmt: skip
        elapsed = time.perf_counter() - t0
        cpu = sum(cpu_seconds(w.process.pid) for w in workers) - cpu0
        done = events * (1 - n0 / messages)
        if done <= 0 or cpu <= 0:  # drained before the group settled: too little input to time
            print(f"  {processes} worker(s) drained {messages} messages before the group settled: not timed",
                  flush=True)  # fmt: skip
            return float("nan"), float("nan")
        return done / elapsed, done / cpu
    finally:
        for worker in workers:
            worker.stop()


def faust_floor(settings: Settings, messages: int, events: int) -> tuple[float, float]:
    """Events/s (and per CPU-second) of a Faust worker whose agents do nothing (``bench/faust_floor.py``)."""
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
    found = re.search(r"FLOOR (\d+) ([\d.]+) ([\d.]+)", done.stdout + done.stderr)
    if found is None:
        raise RuntimeError(f"faust floor run failed:\n{done.stderr[-3000:]}")
    done_events = events * int(found.group(1)) / messages
    return done_events / float(found.group(2)), done_events / float(found.group(3))


#: Shapes whose messages carry many events get more events, so the worker has as many messages to
#: drain as in the single-event shape (a drain of a few thousand messages is over before it is timed).
EVENTS_SCALE = {"clickstream batches of 20": 10.0, "mix of 3 streams": 2.0}


def run(events: int, shape: str, repeats: int, seed: int = 7) -> dict[str, float]:
    mix, batch_size, max_delay = SHAPES[shape]
    events = int(events * EVENTS_SCALE.get(shape, 1.0))
    with tempfile.TemporaryDirectory(prefix="cxpulse-bench-") as tmp:
        root = Path(tmp)
        broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            settings = isolated_settings(broker.bootstrap, root / "var", partitions=4)
            produced, messages = preload(settings, events, batch_size, seed, mix, max_delay)
            ceilings, floors, workers = [], [], []
            for i in range(repeats):
                ceilings.append(raw_ceiling(settings, messages))
                floors.append(faust_floor(settings, messages, produced))
                fresh = settings.model_copy(update={"app_id": f"{settings.app_id}-{i}", "web_port": free_port()})
                workers.append(worker_rate(fresh, root / "logs", messages, produced))
            fleet = {}
            for processes in (2, 3):
                group = settings.model_copy(update={"app_id": f"{settings.app_id}-fleet{processes}",
                                                    "web_port": free_port()})  # fmt: skip
                try:
                    fleet[processes] = worker_rate(group, root / "logs", messages, produced, processes=processes,
                                                   drain_timeout=600)[0]  # fmt: skip
                except AssertionError as exc:  # reported, not hidden: see the README's known issues
                    print(f"{processes} workers did not drain within 10 min: {str(exc).splitlines()[0]}", flush=True)
                    fleet[processes] = float("nan")

            def med(runs: list[tuple[float, float]], i: int) -> float:
                return statistics.median(r[i] for r in runs)

            ceiling, worker = med(ceilings, 0), med(workers, 0)
            return {"events": produced, "messages": messages, "batch_size": batch_size,
                    "ceiling_events_per_s": ceiling, "ceiling_events_per_cpu_s": med(ceilings, 1),
                    "floor_events_per_s": med(floors, 0), "floor_events_per_cpu_s": med(floors, 1),
                    "worker_events_per_s": worker, "worker_events_per_cpu_s": med(workers, 1),
                    "two_workers_events_per_s": fleet[2], "three_workers_events_per_s": fleet[3],
                    "ratio": worker / ceiling, "floor_ratio": med(floors, 0) / ceiling}  # fmt: skip
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of: " + ", ".join(SHAPES))
    parser.add_argument("--results", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    print(
        "ceiling: confluent-kafka consume + JSON decode; floor: a Faust worker configured like ours whose agents do "
        "nothing; worker: cxpulse worker; 2/3 proc: processes in one consumer group on this machine (one run); "
        "/cpu-s: events per CPU-second of the measured process(es); ratio: worker (floor) ev/s over ceiling ev/s"
    )
    print(f"{'shape':>27} {'events':>7} {'ev/msg':>6} {'ceiling':>8} {'/cpu-s':>8} {'floor':>7} {'/cpu-s':>7} "
          f"{'worker':>7} {'/cpu-s':>7} {'2 proc':>7} {'3 proc':>7} {'ratio':>6} {'floor':>6}")  # fmt: skip
    results = {}
    for shape in filter(None, args.shapes.split(",")):
        r = results[shape] = run(args.events, shape, args.repeats)
        print(f"{shape:>27} {r['events']:>7} {r['events'] / r['messages']:>6.2f} "
              f"{r['ceiling_events_per_s']:>8,.0f} {r['ceiling_events_per_cpu_s']:>8,.0f} "
              f"{r['floor_events_per_s']:>7,.0f} {r['floor_events_per_cpu_s']:>7,.0f} "
              f"{r['worker_events_per_s']:>7,.0f} {r['worker_events_per_cpu_s']:>7,.0f} "
              f"{r['two_workers_events_per_s']:>7,.0f} {r['three_workers_events_per_s']:>7,.0f} "
              f"{r['ratio']:>6.3f} {r['floor_ratio']:>6.3f}", flush=True)  # fmt: skip
    if args.results:
        # NaN (a fleet drained before it settled) is not JSON: null
        finite = {shape: {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                  for shape, r in results.items()}  # fmt: skip
        args.results.write_text(json.dumps(finite, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
