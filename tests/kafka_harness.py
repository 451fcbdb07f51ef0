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
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
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
    for name in ("clickstream", "contacts", "deliveries", "signals", "alerts", "notifications", "deadletter"):
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

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def wait_signals_drained(workers: Iterable[WorkerProcess], timeout: float = 300.0) -> list[dict]:
    """After the input is processed, wait until each worker's customers agent has consumed the
    candidates on ``cx.signals``: a consumer-lag report taken after the last ones were produced
    says 0 on every partition. Returns each worker's last scrape."""
    workers = list(workers)
    time.sleep(LAG_INTERVAL_S + 1.0)
    return [
        worker.wait_for(
            lambda m, s=worker.settings: all(
                sample(m, "cxpulse_consumer_lag_messages", topic=s.topic_signals, partition=str(p)) == 0
                for p in range(s.partitions)
            ),
            timeout=timeout,
            what="cx.signals drained",
        )
        for worker in workers
    ]


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
    ``module`` is the entry point (a test may plant a bug with its own, see faulty_worker.py)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"worker-{settings.web_port}.log"
    with log_path.open("wb") as log:
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
    """Send (topic, key, value) records, wait for every answer; ``config`` adds librdkafka settings."""
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 5, **config})
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
    """Read a topic from the start until ``expected`` records arrived (or it goes quiet)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if expected is None and records and time.monotonic() - quiet_since > 3:
                    break
                continue
            if msg.error():
                continue
            quiet_since = time.monotonic()
            headers = {k: v for k, v in (msg.headers() or [])}
            records.append(ConsumedRecord(msg.key(), msg.value(), headers, msg.partition(), msg.offset()))
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
