"""Table recovery after ``kill -9``: the memory store against RocksDB, on the real local broker.

The ``orders`` changelog is preloaded with ``--orders`` orders of ``--updates`` writes each (the
state of a shipped order with a few scans, about the size the deliveries handler writes), spread
over the partitions as the worker spreads them. Then, for each store:

1. a worker starts on an empty data folder and recovers the whole changelog (first start, or a
   new owner after a rebalance: both stores read everything);
2. it is killed with SIGKILL and started again with the same data folder: the memory store reads
   the whole changelog again, RocksDB only what it has not applied yet.

Printed: seconds from "Restoring state from changelog topics" to "Done reading" in the worker's
log (the recovery itself), and from the process start to the first processed message (what a
restart costs end to end). Nothing is asserted; figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from streams.settings import Settings
from tests.kafka_harness import WorkerProcess, isolated_settings, produce, start_worker

PARTITIONS = 4
LOG_TS = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def order_state(i: int, update: int) -> dict:
    """An open order as ``DeliveryDelayMonitor`` keeps it, after ``update`` scans."""
    ts = 1_700_000_000.0 + i
    snaps = [["in_transit", ts + 3600.0 * k] for k in range(update)]
    return {
        "order_id": f"ord-{i}", "customer_id": f"cust-{i % 50000:06d}", "carrier": "dhl", "region": "north",
        "promised_by": ts + 4 * 86400.0, "eta": None, "created": ts, "shipped": ts + 600.0,
        "last_ts": ts + 3600.0 * update, "last_status": "in_transit", "n_scans": update, "snaps": snaps,
        "events": [], "notified": [], "missed": [], "due": ts + 86400.0, "legs": {"shipped": 600.0},
    }  # fmt: skip


def preload_changelog(settings: Settings, orders: int, updates: int) -> int:
    """Write the ``orders`` changelog as Faust would (JSON key and value); returns records written."""
    topic = f"{settings.app_id}-orders-changelog"
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"cleanup.policy": "compact"})]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 20})
    written = 0
    for update in range(1, updates + 1):
        for i in range(orders):
            key = orjson.dumps(f"ord-{i}")
            while True:
                try:
                    producer.produce(topic, key=key, value=orjson.dumps(order_state(i, update)),
                                     partition=i % PARTITIONS)  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.1)
            written += 1
    assert producer.flush(120) == 0
    return written


def log_time(line: str) -> float:
    match = LOG_TS.match(line)
    assert match, line
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def recovery_seconds(worker: WorkerProcess, since_line: int) -> float:
    """Seconds between the last "Restoring state" and "Done reading" lines after ``since_line``."""
    lines = worker.log_path.read_text(errors="replace").splitlines()[since_line:]
    start = [log_time(x) for x in lines if "Restoring state from changelog topics" in x]
    end = [log_time(x) for x in lines if "Done reading from changelog topics" in x]
    return end[-1] - start[-1] if start and end else 0.0


def start_and_measure(settings: Settings, logs: Path) -> tuple[WorkerProcess, float, float]:
    """Start a worker, wait until it processed a message; (worker, recovery s, start-to-processing s)."""
    log_path = logs / f"worker-{settings.web_port}.log"
    before = len(log_path.read_text(errors="replace").splitlines()) if log_path.exists() else 0
    started = time.monotonic()
    worker = start_worker(settings, logs, wait_assigned=False, loglevel="info")
    resumed = worker.seconds_to_resume(since=started, timeout=600)
    return worker, recovery_seconds(worker, before), resumed


def run(store: str, orders: int, updates: int, bootstrap: str, root: Path) -> dict[str, float]:
    settings = isolated_settings(bootstrap, root / store.rstrip(":/"), partitions=PARTITIONS, store=store,
                                 web_port=free_port(), instance_id=f"bench-{store[:5]}")  # fmt: skip
    written = preload_changelog(settings, orders, updates)
    # A trickle of input, so "processing again" has something to process.
    deliveries = [(settings.topic_deliveries, f"o{i}".encode(), b"{}") for i in range(200)]
    produce(settings, deliveries)
    logs = root / "logs"
    worker, first_recovery, first_resume = start_and_measure(settings, logs)
    worker.kill()
    produce(settings, deliveries)
    worker, again_recovery, again_resume = start_and_measure(settings, logs)
    worker.stop()
    figures = {"records": written, "first_recovery_s": first_recovery, "first_resume_s": first_resume,
               "restart_recovery_s": again_recovery, "restart_resume_s": again_resume}  # fmt: skip
    print(f"{store:12s} {written} changelog records: first start recovery {first_recovery:.1f}s "
          f"(processing after {first_resume:.1f}s); after kill -9 recovery {again_recovery:.1f}s "
          f"(processing after {again_resume:.1f}s)", flush=True)  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--stores", default="memory://,rocksdb://")
    parser.add_argument("--bootstrap", default=os.environ.get("CXPULSE_BENCH_BOOTSTRAP"),
                        help="an existing broker (default: start one)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cxpulse-recovery-") as tmp:
        root = Path(tmp)
        broker = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
            broker.start()
            bootstrap = broker.bootstrap
        try:
            for store in args.stores.split(","):
                run(store, args.orders, args.updates, bootstrap, root)
        finally:
            if broker is not None:
                broker.stop()


if __name__ == "__main__":
    main()
