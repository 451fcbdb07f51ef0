"""Real Kafka, real workers: the harness behind the integration tests and benchmarks.

Nothing is mocked. A session-scoped broker is installed from Maven Central (cached) and
started on free loopback ports with its own data folder, so tests never touch a running
demo; each test gets its own topic names and consumer group, so tests never see each
other's records.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import free_port
from streams.app import LAG_INTERVAL_S
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import create_topics

WORKER_READY_TIMEOUT_S = 120.0
_STARTED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    """A failing fixture must not leave workers running after the session."""
    for process in _STARTED:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def isolated_settings(bootstrap: str, data_dir: Path, create: bool = True, **overrides: Any) -> Settings:
    """Settings with unique topics and group for one test; ``create=False`` leaves the topics to the test."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": f"cxpulse-test-{tag}",
        "data_dir": data_dir,
        "partitions": 2,
        "web_port": free_port(),
    }
    for name in ("clickstream", "contacts", "deliveries", "signals", "series", "alerts", "notifications", "deadletter"):
        values[f"topic_{name}"] = f"t{tag}.{name}"
    values.update(overrides)
    settings = Settings(**values)
    if create:
        create_topics(settings)
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CXPULSE_{name.upper()}"] = str(value)
    return env


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """All samples of a /metrics page: (name, labels) -> value."""
    text = requests.get(url, timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0.0 when the series does not exist (a counter never touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class WorkerProcess:
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}/metrics"

    def scrape(self) -> dict:
        return scrape(self.metrics_url)

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout
        samples: dict = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}); log:\n{self.log_tail()}")
            try:
                samples = self.scrape()
                if predicate(samples):
                    return samples
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """``kill -9`` the worker: no shutdown, no commit, no flush."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def seconds_to_resume(self, since: float, timeout: float = WORKER_READY_TIMEOUT_S) -> float:
        """Seconds from ``since`` (``time.monotonic()``) until this process has processed an input
        message (its ``cxpulse_messages_total`` starts at 0)."""

        def processed(samples: dict) -> bool:
            return any(
                name == "cxpulse_messages_total" and value > 0 for (name, _), value in samples.items()
            )  # fmt: skip

        self.wait_for(processed, timeout=timeout, what="the restarted worker to process messages")
        return time.monotonic() - since

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def lag_report(samples: dict, topic: str, partition: int) -> float | None:
    """A worker's ``cxpulse_consumer_lag_messages`` for one partition; None when it does not report
    it (a worker reports only the partitions it owns)."""
    labels = frozenset({"topic": topic, "partition": str(partition)}.items())
    return samples.get(("cxpulse_consumer_lag_messages", labels))


def fleet_lag(workers: list[WorkerProcess], scrapes: list[dict], topic_setting: str) -> dict[tuple[str, int], list]:
    """(consumer group, partition) -> the lag reported by each worker of that group that reports it."""
    reports: dict[tuple[str, int], list] = {}
    for worker, samples in zip(workers, scrapes, strict=True):
        s = worker.settings
        topic = getattr(s, topic_setting)
        for p in range(s.partitions):
            reports.setdefault((s.app_id, p), [])
            lag = lag_report(samples, topic, p)
            if lag is not None:
                reports[s.app_id, p].append(lag)
    return reports


def wait_drained(
    workers: Iterable[WorkerProcess], topic_setting: str = "topic_signals", timeout: float = 300.0
) -> list[dict]:
    """Wait until each consumer group among ``workers`` has processed everything on one topic: every
    partition is reported by exactly one worker (its owner), with a lag of 0, in a lag report taken
    after this call started. Returns each worker's last scrape."""
    workers = list(workers)
    time.sleep(LAG_INTERVAL_S + 1.0)
    deadline = time.monotonic() + timeout
    reports: dict = {}
    while True:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited ({worker.process.returncode}); log:\n{worker.log_tail()}")
        try:
            scrapes = [worker.scrape() for worker in workers]
            reports = fleet_lag(workers, scrapes, topic_setting)
            if all(lags == [0] for lags in reports.values()):
                return scrapes
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.log_path.name}\n{w.log_tail(1500)}" for w in workers)
            raise AssertionError(f"timed out waiting for {topic_setting} drained: {reports}\n{tails}")
        time.sleep(0.5)


def customer_signals(value: bytes) -> list[dict[str, Any]]:
    """The signals of one ``cx.signals`` record (none in a progress record)."""
    decoded = orjson.loads(value)
    return decoded if isinstance(decoded, list) else []


def signals_settled(samples: dict) -> bool:
    """A worker's input partitions have reported their newest clocks, and none of its customers
    partitions waits for an input partition that never reported (the idle rule has applied)."""
    pending = sum(v for (name, _), v in samples.items() if name == "cxpulse_signals_progress_pending")
    return pending == 0 and samples.get(("cxpulse_signals_partitions_waiting", frozenset()), 0.0) == 0


def wait_signals_settled(workers: Iterable[WorkerProcess], timeout: float = 300.0) -> None:
    """Wait until every worker's signals progress has settled (:func:`signals_settled`)."""
    for worker in workers:
        worker.wait_for(signals_settled, timeout=timeout, what="signals progress settled")


def wait_signals_drained(workers: Iterable[WorkerProcess], timeout: float = 300.0) -> list[dict]:
    """After the input is processed, wait until the customers agents have consumed the candidates
    on ``cx.signals`` (:func:`wait_drained`), including the progress reported once the input went
    quiet, which releases the last held signals. Returns each worker's last scrape."""
    workers = list(workers)
    wait_signals_settled(workers, timeout)
    return wait_drained(workers, "topic_signals", timeout)


def start_worker(
    settings: Settings,
    log_dir: Path,
    wait_assigned: bool = True,
    command: tuple[str, ...] = ("worker",),
    env_settings: Settings | None = None,
    loglevel: str = "warning",
    module: str = "streams.cli",
) -> WorkerProcess:
    """Run ``cxpulse worker`` (or ``command``) as a real process and wait until it owns its
    partitions. ``settings`` are those the process runs with; ``env_settings`` (default the
    same) those its environment is given, when the command derives its own (``replay``);
    ``module`` is the entry point (a test may plant a bug with its own, see faulty_worker.py).
    A worker started again with the same settings appends to the same log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{settings.web_port}.log"
    loglevel = os.environ.get("CXPULSE_TEST_WORKER_LOGLEVEL", loglevel)  # "info" to debug a rebalance
    with log_path.open("ab") as log:
        # In the worker's own log format, so a restart's time to its first log line (interpreter,
        # imports, app creation) shows next to Faust's start-up and recovery lines.
        stamp = time.strftime("%Y-%m-%d %H:%M:%S") + f",{int(time.time() * 1000) % 1000:03d}"
        log.write(f"[{stamp}] [harness] [INFO] starting {module} {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", module, *command, "--loglevel", loglevel],
            env=settings_env(env_settings or settings),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _STARTED.append(process)
    worker = WorkerProcess(settings, process, log_path)
    if wait_assigned:
        inputs = (settings.topic_clickstream, settings.topic_contacts, settings.topic_deliveries)
        worker.wait_for(
            lambda s: (
                sum(sample(s, "cxpulse_assigned_partitions", topic=t) for t in inputs)
                == len(inputs) * settings.partitions
            ),
            timeout=WORKER_READY_TIMEOUT_S,
            what="partition assignment",
        )
    return worker


@dataclass
class Delivery:
    """Where the broker stored a record, or why it refused it."""

    partition: int = -1
    offset: int = -1
    error: str | None = None


def deliver(
    settings: Settings, records: Iterable[tuple[str, bytes | None, bytes | None]], **config: Any
) -> list[Delivery]:
    """Send (topic, key, value) records, wait for every answer; ``config`` adds librdkafka settings.

    Idempotent by default: without it librdkafka may reorder records of a partition when it retries
    a request (a loaded broker), and "the same input" would not be the same in every run."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5,
                         "enable.idempotence": True, **config})  # fmt: skip
    deliveries: list[Delivery] = []

    def on_delivery(delivery: Delivery, err: Any, msg: Any) -> None:
        if err is not None:
            delivery.error = str(err)
        else:
            delivery.partition, delivery.offset = msg.partition(), msg.offset()

    for topic, key, value in records:
        delivery = Delivery()
        deliveries.append(delivery)
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=partial(on_delivery, delivery))
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:  # refused by the producer itself (e.g. message.max.bytes)
                delivery.error = str(exc)
                break
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records got no answer"
    return deliveries


def produce(settings: Settings, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (topic, key, value) records and wait for every acknowledgement."""
    deliveries = deliver(settings, records)
    refused = [d.error for d in deliveries if d.error is not None]
    assert not refused, f"{len(refused)} records were not acknowledged: {refused[0]}"
    return len(deliveries)


class LiveTraffic(threading.Thread):
    """Produces (topic, key, value) records at ``rate`` messages per second in the background, as
    live traffic does, while a test adds, removes or kills workers."""

    def __init__(self, settings: Settings, records: list[tuple[str, bytes | None, bytes]], rate: float) -> None:
        super().__init__(daemon=True, name="live-traffic")
        self.settings, self.records, self.rate = settings, records, rate
        self.produced = 0
        self.error: BaseException | None = None

    @property
    def seconds(self) -> float:
        return len(self.records) / self.rate

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.settings.bootstrap_servers, "linger.ms": 5,
                                 "enable.idempotence": True})  # in order, even when a request is retried
            started = time.monotonic()
            for i, (topic, key, value) in enumerate(self.records):
                ahead = started + i / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                while True:
                    try:
                        producer.produce(topic, key=key, value=value)
                        break
                    except BufferError:
                        producer.poll(0.1)
                producer.poll(0)
                self.produced += 1
            assert producer.flush(60) == 0, "records were not acknowledged"
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 600.0) -> None:
        """Wait until every record is produced and acknowledged."""
        self.join(timeout)
        assert not self.is_alive(), "live traffic did not finish"
        if self.error is not None:
            raise self.error


def cloudevents_by_id(settings: Settings, topic: str, timeout: float = 60.0) -> dict[str, list[bytes]]:
    """Every CloudEvent on ``topic``, by id: each copy as canonical JSON (sorted keys)."""
    by_id: dict[str, list[bytes]] = defaultdict(list)
    expected = sum(end_offsets(settings, topic))
    for record in consume_all(settings, topic, expected=expected, timeout=timeout) if expected else []:
        event = orjson.loads(record.value)
        by_id[event["id"]].append(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
    return dict(by_id)


def cloudevent_type(event: bytes) -> str:
    """The short type of a CloudEvent (``cx.notification.delivery_delayed`` -> ``delivery_delayed``)."""
    return str(orjson.loads(event)["type"]).rsplit(".", 1)[-1]


@dataclass
class OutputDiff:
    """One run's CloudEvents against a reference run's, by id (``cloudevents_by_id`` of each)."""

    got: dict[str, list[bytes]]
    want: dict[str, list[bytes]]

    @property
    def lost(self) -> set[str]:
        return set(self.want) - set(self.got)

    @property
    def extra(self) -> set[str]:
        return set(self.got) - set(self.want)

    @property
    def duplicates(self) -> int:
        """Copies beyond the first (at-least-once delivery: same id, same bytes)."""
        return sum(len(copies) - 1 for copies in self.got.values())

    def resent_differently(self) -> list[str]:
        """Ids sent more than once with different content."""
        return [i for i, copies in self.got.items() if len(set(copies)) > 1]

    def changed(self) -> list[str]:
        """Ids in both runs whose content differs."""
        return [i for i in set(self.got) & set(self.want) if self.got[i][0] != self.want[i][0]]

    def of_types(self, ids: Iterable[str], types: set[str]) -> set[str]:
        return {i for i in ids if cloudevent_type((self.want.get(i) or self.got[i])[0]) in types}

    def assert_same(self, exact_types: set[str]) -> None:
        """Notifications of ``exact_types`` exactly the reference's (none lost, extra or changed);
        every copy sent again byte for byte the same; one delay notification per order and promise."""
        assert self.want, "the reference run sent no notification: the traffic is too small"
        differ = self.of_types(self.lost | self.extra | set(self.changed()), exact_types)
        for i in sorted(differ)[:3]:
            want, got = (self.want.get(i) or [b"-"])[0].decode(), (self.got.get(i) or [b"-"])[0].decode()
            print(f"differs: {i}\n  want {want}\n  got  {got}")
        assert not differ, f"{len(differ)} notifications lost, extra or changed"
        assert not self.resent_differently()
        sent = [orjson.loads(copies[0]) for copies in self.got.values()]
        delays = Counter((e["subject"], e["data"]["promised_by"]) for e in sent if e["type"].endswith("_delayed"))
        assert all(n == 1 for n in delays.values())

    def summary(self, what: str = "notifications") -> str:
        by_type = Counter(cloudevent_type(c[0]) for c in self.want.values())
        lost = Counter(cloudevent_type(self.want[i][0]) for i in self.lost)
        extra = Counter(cloudevent_type(self.got[i][0]) for i in self.extra)
        changed = Counter(cloudevent_type(self.want[i][0]) for i in self.changed())
        return (f"{what}: {len(self.want)} expected {dict(by_type)}; lost {dict(lost)}, extra {dict(extra)}, "
                f"{self.duplicates} duplicate copies, changed {dict(changed)}")  # fmt: skip


@dataclass
class ConsumedRecord:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)
    partition: int = -1
    offset: int = -1


def consume_all(
    settings: Settings, topic: str, expected: int | None = None, timeout: float = 30.0
) -> list[ConsumedRecord]:
    """Read a topic from the start until ``expected`` records arrived or, without ``expected``,
    up to the end offsets the topic had when the read started (not until it goes quiet: a loaded
    machine can pause a reader for seconds). An empty topic is waited on for ``timeout`` seconds
    (then read until quiet for 3 s), as a record may still be on its way."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    ends: dict[int, int] = {}
    for partition in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            ends[partition] = high
    until_end = expected is None and bool(ends)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    records: list[ConsumedRecord] = []
    deadline = time.monotonic() + (max(timeout, 180.0) if until_end else timeout)
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if until_end and not ends:
                break
            msg = consumer.poll(0.5)
            if msg is None:
                if not until_end and expected is None and records and time.monotonic() - quiet_since > 3:
                    break
                continue
            if msg.error():
                continue
            quiet_since = time.monotonic()
            headers = {k: v for k, v in (msg.headers() or [])}
            records.append(ConsumedRecord(msg.key(), msg.value(), headers, msg.partition(), msg.offset()))
            if until_end and msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
            if expected is not None and len(records) >= expected:
                # Linger briefly: a record beyond the expected count is a bug to catch.
                extra_deadline = time.monotonic() + 2
                while time.monotonic() < extra_deadline:
                    extra = consumer.poll(0.3)
                    if extra is not None and not extra.error():
                        records.append(ConsumedRecord(extra.key(), extra.value(), dict(extra.headers() or [])))
                break
    finally:
        consumer.close()
    return records


def end_offsets(settings: Settings, topic: str) -> Iterator[int]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "offsets-probe"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        for partition in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            yield high
    finally:
        consumer.close()
