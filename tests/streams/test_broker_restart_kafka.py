"""Broker restarts under live traffic: the worker reconnects by itself, nothing is lost, and
``KafkaUnreachable`` fires while the broker is away and resolves after it is back.

The test runs a broker of its own (the session's ``kafka_broker`` is shared and must stay up),
a real ``cxpulse worker``, a real Prometheus scraping it every second and evaluating the
project's rules, and the simulator producing one fixed world at a live pace. In the middle of
the traffic the broker is stopped (SIGTERM, as in a rolling restart), left down for a while,
and started again on the same data dir, twice. The simulator's producer buffers and retries
meanwhile (librdkafka, ``message.timeout.ms`` of ten minutes). Then:

* the worker never exits and resumes by itself; the seconds from "broker ready" to the first
  message processed again are printed for every restart;
* ``KafkaUnreachable`` fires during every outage and resolves after it. Its ``for`` is cut to
  seconds here because the outages last seconds; the production minute is covered by the
  promtool unit tests (``deploy/prometheus/tests/alerts_test.yml``);
* the alert and notification ids on the output topics equal those of the same world run
  through the handlers in-process (:func:`tests.inprocess.run_world`): nothing lost, nothing
  invented. Duplicates of one id (at-least-once) are allowed, counted and printed.

``make soak`` (``CXPULSE_SOAK=1``) runs the long campaign: a bigger world and six outages of
20-60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml
from faust.exceptions import NotReady

from deploy.local import monitoring as ops
from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from deploy.simulator.producer import run_simulation
from deploy.simulator.simulation import DEFAULT_START, Incident, SimulationConfig
from streams.app import LAG_INTERVAL_S, kafka_reachable
from streams.settings import Settings
from tests.inprocess import run_world
from tests.kafka_harness import (
    WorkerProcess,
    consume_all,
    isolated_settings,
    sample,
    start_worker,
    wait_signals_drained,
)

pytestmark = pytest.mark.kafka

SOAK = os.environ.get("CXPULSE_SOAK") == "1"
HOUR = 3600.0
STREAMS = ("clickstream", "contacts", "deliveries")
ALERT = "KafkaUnreachable"
ALERT_FOR = "3s"
PARTITIONS = 2
POLL_S = 0.25
RESUME_TIMEOUT_S = 180.0


def world(seed: int, hours: int, rate: float, carrier_delay: bool = False) -> SimulationConfig:
    """Daytime traffic of all three streams with storms and a complaint spike, so alerts and
    the common notification types occur; a carrier delay adds delay notifications (days)."""
    incidents = [
        f"rage_click_storm:page=/checkout,at={hours // 2}h,duration=30m",
        f"error_storm:page=/cart,at={hours - 2}h,duration=30m",
        f"complaint_spike:reason=billing,at={hours // 2 + 1}h,duration=30m,factor=6",
    ]
    mix = {"clickstream": 0.5, "contacts": 0.3, "deliveries": 0.2}
    if carrier_delay:
        incidents.append("carrier_delay:carrier=dhl,region=north,at=6h,duration=12h,factor=2.5")
        mix = {"clickstream": 0.4, "contacts": 0.25, "deliveries": 0.35}
    return SimulationConfig(
        seed=seed, start=DEFAULT_START + 6 * HOUR, sim_seconds=hours * HOUR, events_per_sim_second=rate,
        mix=mix, n_customers=1500, incidents=tuple(Incident.parse(i) for i in incidents),
    )  # fmt: skip


@dataclass(frozen=True)
class Campaign:
    world: SimulationConfig
    traffic_seconds: float  # wall time over which the world is produced
    lead_seconds: float  # traffic before the first outage
    downtimes: tuple[float, ...]  # seconds the broker stays stopped, per outage
    gap_seconds: float  # traffic between one recovery and the next outage


#: About 2.7k messages (19 notifications, 4 alerts) over 130 s, two outages of 20 s: ~3 minutes.
SHORT = Campaign(world(4, 6, 0.15), traffic_seconds=130, lead_seconds=15, downtimes=(20, 20), gap_seconds=10)
#: About 15.6k messages (331 notifications of every type, 3 alerts) over 15 minutes, six outages.
LONG = Campaign(
    world(4, 48, 0.1, carrier_delay=True), traffic_seconds=900, lead_seconds=30,
    downtimes=(20, 60, 35, 45, 60, 25), gap_seconds=45,
)  # fmt: skip
CAMPAIGN = LONG if SOAK else SHORT


@dataclass
class Sample:
    t: float
    messages: float | None  # input messages handled (None: the scrape failed)
    connected: float | None
    input_lag: float | None
    alerts: dict[str, str] | None  # alertname -> pending/firing, as Prometheus says (None: no answer)


@dataclass
class Timeline:
    """Samples the worker's /metrics and Prometheus' alerts every ``POLL_S`` in a thread."""

    worker: WorkerProcess
    prometheus_url: str
    samples: list[Sample] = field(default_factory=list)
    worker_exit: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        s = self.worker.settings
        inputs = (s.topic_clickstream, s.topic_contacts, s.topic_deliveries)
        while not self._stop.wait(POLL_S):
            if self.worker.process.poll() is not None:
                self.worker_exit = self.worker.process.returncode
            t = time.monotonic()
            messages = connected = lag = None
            with contextlib.suppress(requests.RequestException):
                m = self.worker.scrape()
                messages = sum(sample(m, "cxpulse_messages_total", stream=x) for x in STREAMS)
                connected = sample(m, "cxpulse_kafka_connected")
                lag = sum(
                    sample(m, "cxpulse_consumer_lag_messages", topic=topic, partition=str(p))
                    for topic in inputs
                    for p in range(s.partitions)
                )
            alerts = None
            with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                body = requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5).json()
                alerts = {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}
            self.samples.append(Sample(t, messages, connected, lag, alerts))

    def since(self, t: float) -> list[Sample]:
        return [x for x in list(self.samples) if x.t >= t]

    def wait(self, predicate: Callable[[Sample], bool], after: float, timeout: float) -> Sample | None:
        """The first sample taken after ``after`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((x for x in self.since(after) if predicate(x)), None)
            if hit is not None or time.monotonic() > deadline:
                return hit
            time.sleep(POLL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Traffic(threading.Thread):
    """The simulator producing one world at a live pace; librdkafka buffers through outages."""

    def __init__(self, campaign: Campaign, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.campaign = campaign
        self.settings = settings
        self.result: dict[str, Any] = {}
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        s = self.settings
        try:
            self.result = run_simulation(
                self.campaign.world,
                bootstrap_servers=s.bootstrap_servers,
                topics={"clickstream": s.topic_clickstream, "contacts": s.topic_contacts,
                        "deliveries": s.topic_deliveries},
                speedup=self.campaign.world.sim_seconds / self.campaign.traffic_seconds,
                progress=False,
                # Ten minutes of retries per message, and no connection-refused log lines.
                producer_config={"message.timeout.ms": 600_000, "log_level": 2},
            )  # fmt: skip
        except BaseException as exc:
            self.error = exc


@dataclass
class Restart:
    stop_s: float  # stop issued (SIGTERM) -> broker process gone
    down_s: float  # broker process gone -> start issued
    start_s: float  # start issued -> broker answers metadata requests
    producing: bool  # the simulator was still producing when the broker went down
    resume_s: float | None = None  # broker ready -> first input message processed again
    caught_up_s: float | None = None  # broker ready -> consumer lag 0 on every input partition
    fired_s: float | None = None  # broker gone -> KafkaUnreachable firing
    resolved_s: float | None = None  # broker ready -> KafkaUnreachable no longer active


def fast_alert_rules(tmp: Path) -> list[Path]:
    """The project's rule files with KafkaUnreachable's ``for`` cut to seconds."""
    recording, alerts = ops.PROMETHEUS_RULES
    doc = yaml.safe_load(alerts.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    assert len(rules) == 1, f"{ALERT} must be one rule of {alerts}"
    rules[0]["for"] = ALERT_FOR
    fast = tmp / "alerts.yml"
    fast.write_text(yaml.safe_dump(doc, sort_keys=False))
    return [recording, fast]


def restart(broker: KafkaBroker, timeline: Timeline, traffic: Traffic, down_s: float) -> Restart:
    producing = traffic.is_alive()
    stopping = time.monotonic()
    broker.stop()
    gone = time.monotonic()
    time.sleep(down_s)
    issued = time.monotonic()
    broker.start()  # returns once the broker answers a metadata request
    ready = time.monotonic()
    r = Restart(stop_s=gone - stopping, down_s=issued - gone, start_s=ready - issued, producing=producing)
    fired = next((x for x in timeline.since(gone) if x.t <= ready and (x.alerts or {}).get(ALERT) == "firing"), None)
    r.fired_s = fired.t - gone if fired else None
    before = [x.messages for x in timeline.since(gone) if x.t <= ready and x.messages is not None]
    baseline = max(before, default=0.0)
    hit = timeline.wait(lambda x: x.messages is not None and x.messages > baseline, ready, RESUME_TIMEOUT_S)
    r.resume_s = hit.t - ready if hit else None
    resolved = timeline.wait(lambda x: x.alerts is not None and ALERT not in x.alerts, ready, 60.0)
    r.resolved_s = resolved.t - ready if resolved else None
    if hit is not None:  # lag reports (every 5 s) taken after processing resumed
        caught_up = timeline.wait(lambda x: x.input_lag == 0, hit.t + LAG_INTERVAL_S, 30.0)
        r.caught_up_s = caught_up.t - ready if caught_up else None
    return r


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def output_ids(settings: Settings, topic: str) -> Counter[str]:
    return Counter(orjson.loads(r.value)["id"] for r in consume_all(settings, topic, timeout=30))


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker this test may stop: never the session's."""
    broker = KafkaBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.timeout(5400 if SOAK else 900)
def test_worker_rides_out_broker_restarts(own_broker: KafkaBroker, tmp_path: Path) -> None:
    campaign = CAMPAIGN
    t0 = time.monotonic()
    settings = isolated_settings(own_broker.bootstrap, tmp_path / "var", partitions=PARTITIONS)
    expected = run_world(campaign.world, settings=settings, partitions=PARTITIONS)
    assert expected.alert_ids and len(expected.notification_ids) >= 10
    worker = start_worker(settings, tmp_path / "logs")
    prom = ops.start_prometheus(
        port=ops.free_port(), data_dir=tmp_path / "prometheus", targets=[f"127.0.0.1:{settings.web_port}"],
        alertmanagers=[], rule_files=fast_alert_rules(tmp_path), scrape_interval="1s", evaluation_interval="1s",
    )  # fmt: skip
    timeline = Timeline(worker, prom.url)
    try:
        assert timeline.wait(lambda x: x.connected == 1, time.monotonic(), 60.0), "the probe never said connected"
        traffic = Traffic(campaign, settings)
        time.sleep(campaign.lead_seconds)
        restarts = []
        for i, down_s in enumerate(campaign.downtimes):
            if i:
                time.sleep(campaign.gap_seconds)
            restarts.append(restart(own_broker, timeline, traffic, down_s))
        traffic.join(campaign.traffic_seconds + 600)
        assert traffic.error is None, traffic.error
        produced = traffic.result
        assert produced["delivery_failures"] == 0 and produced["undelivered"] == 0, produced
        want = {s: produced["per_stream"][s]["messages"] for s in STREAMS}
        worker.wait_for(
            lambda m: all(sample(m, "cxpulse_messages_total", stream=s) >= n for s, n in want.items()),
            timeout=600, what="the worker to process every produced message",
        )  # fmt: skip
        (final,) = wait_signals_drained([worker])
        alerts = output_ids(settings, settings.topic_alerts)
        notifications = output_ids(settings, settings.topic_notifications)
    finally:
        timeline.stop()
        ops.stop(prom)
        worker.stop()

    dups = {"alerts": sum(n - 1 for n in alerts.values()), "notifications": sum(n - 1 for n in notifications.values())}
    print(f"\nbroker restarts, {'soak' if SOAK else 'short'} campaign: {sum(want.values())} messages over "
          f"{campaign.traffic_seconds:.0f} s, {PARTITIONS} partitions, {len(restarts)} outages")  # fmt: skip
    for i, r in enumerate(restarts, 1):
        print(f"  restart {i}: broker stop {r.stop_s:.1f} s, down {r.down_s:.1f} s, start {r.start_s:.1f} s; resumed "
              f"{_s(r.resume_s)} after ready, lag 0 by {_s(r.caught_up_s)}; {ALERT} firing "
              f"{_s(r.fired_s)} after the broker went, resolved {_s(r.resolved_s)} after ready")  # fmt: skip
    handled = {s: sample(final, "cxpulse_messages_total", stream=s) for s in STREAMS}
    redelivered = sum(sample(final, "cxpulse_events_duplicate_total", stream=s) for s in STREAMS)
    print(f"  messages handled {handled}, produced {want}; duplicate events dropped: {redelivered:.0f}")
    for name, got, exp in (("alerts", alerts, expected.alert_ids), ("notifications", notifications,
                                                                    expected.notification_ids)):  # fmt: skip
        print(f"  {name}: {len(got)} ids, in-process {len(exp)}; lost {len(exp - set(got))}, "
              f"extra {len(set(got) - exp)}, duplicates {dups[name]}")  # fmt: skip
    seen = sorted({(name, state) for x in timeline.samples for name, state in (x.alerts or {}).items()})
    print(f"  Prometheus alert states seen: {seen}; {time.monotonic() - t0:.0f} s in all")

    assert timeline.worker_exit is None, f"the worker exited ({timeline.worker_exit}):\n{worker.log_tail()}"
    for i, r in enumerate(restarts, 1):
        assert r.producing, f"restart {i}: the traffic had ended before the broker went down"
        assert r.resume_s is not None, f"restart {i}: nothing processed {RESUME_TIMEOUT_S:.0f} s after the broker"
        assert r.fired_s is not None, f"restart {i}: {ALERT} did not fire while the broker was down"
        assert r.resolved_s is not None, f"restart {i}: {ALERT} did not resolve after the broker was back"
    assert set(notifications) == expected.notification_ids
    assert set(alerts) == expected.alert_ids


class _Client:
    def __init__(self, answer: Callable[[], Any]) -> None:
        self.force_metadata_update = answer


class _App:
    """Just what :func:`streams.app.kafka_reachable` touches of a Faust app."""

    def __init__(self, client: _Client | Exception) -> None:
        self.producer = self
        self._client = client

    def _ensure_producer(self) -> Any:
        if isinstance(self._client, Exception):
            raise self._client
        return self

    @property
    def client(self) -> _Client:
        assert not isinstance(self._client, Exception)
        return self._client


@pytest.mark.parametrize(
    ("client", "reachable"),
    [
        (_Client(lambda: _done(True)), True),
        (_Client(lambda: _done(False)), False),  # every broker refused
        (_Client(lambda: asyncio.get_running_loop().create_future()), False),  # no answer: timeout
        (NotReady("producer not started"), False),
        (_Client(lambda: _done(RuntimeError("a bug"))), False),  # never raises into the timer
    ],
)
def test_the_kafka_probe_answers_and_never_raises(client: Any, reachable: bool) -> None:
    assert asyncio.run(kafka_reachable(_App(client), timeout=0.05)) is reachable


def _done(result: bool | Exception) -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
    return future
