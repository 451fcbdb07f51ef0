"""One fleet, one answer (issue 10): the same world through real Kafka and real workers gives the
same outputs and the same quality whatever the number of workers and however far apart its
partitions are consumed.

The world (:data:`FLEET_WORLD`) is one seeded simulation of four event-time days with an
incident of every kind the simulator has (carrier delay, complaint spike, rage-click storm,
error storm) on top of ordinary clickstream, contacts and deliveries; clickstream goes in SDK
batches (up to 10 events or 30 event-time seconds per session). The simulator's ground truth
scores each run (``tests/quality.py``): delay-notification recall and lead, incidents caught
and firing episodes per incident, false alerts, repeat-contact and detractor candidates exact.

Fleet equality
    The world is produced as live traffic on four partitions. Two consumer groups read it at
    once: one worker alone, and a fleet that starts with two workers, gains a third a third of
    the way through and loses one of the first two at two thirds (a static member stopped:
    its partitions move after the broker session timeout). Every alert id and notification id
    of the fleet must be one of the single worker's and the other way round, and every quality
    figure the same.

Catch-up
    The same world on its own input topics, *all of it in Kafka before the worker starts*,
    consumed from a cold start with partition 0 of every input topic days ahead of the others,
    must give the single live worker's outputs. The skew comes from consumption alone: Faust
    hands a worker its fetched records round-robin, one message per partition in turn, and every
    message of partitions 1-3 is followed by :data:`PADDING` exact copies (a producer's retries),
    which the per-partition dedup drops, so partition 0 moves through event time
    ``PADDING + 1`` times faster and has finished when the others are a third of the way. The
    copies change nothing but the duplicate counters: every message the worker acts on is a
    message of the live run, with the same events and the same boundaries. (Packing partition 0
    into large SDK batches instead changes the outputs by itself: a message is where a handler
    advances its clocks, runs its due checks and emits series steps: in-process, packing partition 0
    into 1000-event batches left 8 of the 18 live alert ids out and added 4, in event-time order
    as well as with partition 0 ahead. A likely cause, not isolated: a session batch flushed 30 s
    after its first click loses events to the 10 s series grace live, not inside a large batch.)
    The skew is checked from the worker's per-partition lag reports sampled during the catch-up:
    the offset a partition has reached gives its position in event time.

Both tests print the quality table of both runs and the id differences by kind (for a policy
decision, the customer's other notifications). Outputs are read once every worker has settled
(``wait_everything_processed``): input drained, every input partition's last clock reported to the
customers agent, then ``cx.signals`` drained, so the end of the world is decided alike in every run.
``make soak`` (``CXPULSE_SOAK=1``) runs a world twice as long.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import requests

from deploy.local.processes import free_port
from deploy.simulator.simulation import DEFAULT_START, Incident, Simulation, SimulationConfig, batch_messages, encode
from schemas.parsing import parse_timestamp
from streams.settings import Settings
from tests.kafka_harness import (
    LiveTraffic,
    OutputDiff,
    WorkerProcess,
    cloudevents_by_id,
    consume_all,
    customer_signals,
    deliver,
    isolated_settings,
    lag_report,
    sample,
    start_worker,
)
from tests.quality import candidates, quality, quality_table
from tests.streams.scenario import wait_everything_processed

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1800 if os.environ.get("CXPULSE_SOAK") == "1" else 900)]

SOAK = os.environ.get("CXPULSE_SOAK") == "1"
#: A second single worker in a third group on the same live traffic: how far two undisturbed runs of
#: one worker differ (arrival order between partitions is not reproducible). Diagnostic only, printed.
TWIN = SOAK or os.environ.get("CXPULSE_FLEET_TWIN") == "1"
DAY = 86400.0
PARTITIONS = 4
STREAMS = ("clickstream", "contacts", "deliveries")
#: Messages per second of the live traffic: what the single worker and the fleet, sharing two
#: cores with the broker and the producer, follow with room to spare (about 2.5 min).
RATE = 250.0
#: Exact copies following each message of partitions 1-3 in the catch-up test (see the module doc).
PADDING = 2
#: A session's SDK batch: up to 10 events, sent at the latest 30 event-time seconds after its first.
BATCH_EVENTS, BATCH_DELAY_S = 10, 30.0

#: Four event-time days (eight with ``CXPULSE_SOAK=1``) with one incident of every kind: 54k
#: events in 35k messages. Complaints are more frequent than the simulator's default and the
#: storms denser, so that each incident stands out of a small world within minutes; the carrier
#: delay ships from hour 30, so its orders are past the delay scorer's first day of learning.
FLEET_WORLD = SimulationConfig(
    seed=11,
    sim_seconds=(8 if SOAK else 4) * DAY,
    events_per_sim_second=0.15,
    mix={"clickstream": 0.5, "contacts": 0.25, "deliveries": 0.25},
    n_customers=3000,
    complaint_probability=0.5,
    incidents=(
        Incident.parse("carrier_delay:carrier=dhl,region=north,at=30h,duration=8h,factor=2.5"),
        Incident.parse("complaint_spike:reason=delivery,at=58h,duration=30m,factor=8"),
        Incident.parse("rage_click_storm:page=/checkout,at=62h,duration=30m,share=1.0,boost=0.5"),
        Incident.parse("error_storm:page=/cart,at=66h,duration=30m,boost=0.3"),
    ),
)


@dataclass(frozen=True)
class WireMessage:
    stream: str
    key: bytes
    value: bytes
    ts: float  # event time at which the producer sends it

    @property
    def partition(self) -> int:
        """librdkafka's default partitioner (``consistent_random``: CRC-32 of the key), so a test
        knows before producing where a message will land (checked on delivery)."""
        return zlib.crc32(self.key) % PARTITIONS


@dataclass
class World:
    messages: list[WireMessage]
    truth: dict[str, Any]

    def records(self, settings: Settings, messages: list[WireMessage] | None = None) -> list[tuple[str, bytes, bytes]]:
        topics = {s: getattr(settings, f"topic_{s}") for s in STREAMS}
        return [(topics[m.stream], m.key, m.value) for m in (self.messages if messages is None else messages)]


@dataclass
class RunOutputs:
    """What one consumer group sent: CloudEvents by id (every copy) and the signals' candidates."""

    notifications: dict[str, list[bytes]]
    alerts: dict[str, list[bytes]]
    signals: list[dict[str, Any]]

    def quality(self, truth: dict[str, Any]) -> dict[str, Any]:
        first = lambda by_id: [orjson.loads(copies[0]) for copies in by_id.values()]  # noqa: E731
        return quality(truth, first(self.notifications), first(self.alerts), self.signals)


def collect(settings: Settings) -> RunOutputs:
    signals = [s for r in consume_all(settings, settings.topic_signals, timeout=30) for s in customer_signals(r.value)]
    return RunOutputs(
        cloudevents_by_id(settings, settings.topic_notifications),
        cloudevents_by_id(settings, settings.topic_alerts),
        signals,
    )


@pytest.fixture(scope="module")
def world() -> World:
    sim = Simulation(FLEET_WORLD, record_truth=True)
    messages = [
        WireMessage(m.stream, m.key.encode(), encode(m), m.ts)
        for m in batch_messages(sim.events(), BATCH_EVENTS, BATCH_DELAY_S)
    ]
    return World(messages, sim.truth())


def owned(samples: dict, settings: Settings) -> int:
    """Input partitions a worker owns, by its ``cxpulse_assigned_partitions``."""
    return int(sum(sample(samples, "cxpulse_assigned_partitions", topic=getattr(settings, f"topic_{s}"))
                   for s in STREAMS))  # fmt: skip


def processed(samples: dict, stream: str) -> float:
    return sample(samples, "cxpulse_messages_total", stream=stream)


@pytest.fixture(scope="module")
def live(kafka_broker, tmp_path_factory, world) -> dict[str, Any]:
    """The world as live traffic through one worker and, at the same time, through a fleet of 2 -> 3 -> 2."""
    root = tmp_path_factory.mktemp("fleet")
    single = isolated_settings(kafka_broker.bootstrap, root / "single", partitions=PARTITIONS)
    fleet = isolated_settings(
        kafka_broker.bootstrap, root / "fleet", partitions=PARTITIONS, broker_session_timeout_seconds=10.0,
        topic_clickstream=single.topic_clickstream, topic_contacts=single.topic_contacts,
        topic_deliveries=single.topic_deliveries,
    )  # fmt: skip
    twin = isolated_settings(
        kafka_broker.bootstrap, root / "twin", create=TWIN, partitions=PARTITIONS,
        topic_clickstream=single.topic_clickstream, topic_contacts=single.topic_contacts,
        topic_deliveries=single.topic_deliveries,
    )  # fmt: skip
    logs = root / "logs"
    traffic = LiveTraffic(single, world.records(single), rate=RATE)
    alone = start_worker(single, logs)
    others = [start_worker(twin, logs)] if TWIN else []
    members = [start_worker(fleet, logs)]
    members.append(start_worker(fleet.model_copy(update={"web_port": free_port()}), logs, wait_assigned=False))
    started = time.monotonic()
    joiner: WorkerProcess | None = None
    try:
        members[0].wait_for(lambda _: all(owned(w.scrape(), fleet) > 0 for w in members), timeout=240,
                            what="two fleet workers to share the partitions")  # fmt: skip
        traffic.start()
        time.sleep(traffic.seconds / 3)
        joiner = start_worker(fleet.model_copy(update={"web_port": free_port()}), logs, wait_assigned=False)
        members.append(joiner)
        joined_at = time.monotonic()
        members[0].wait_for(lambda _: all(owned(w.scrape(), fleet) > 0 for w in members), timeout=240,
                            what="three fleet workers to share the partitions")  # fmt: skip
        join_s = time.monotonic() - joined_at
        joiner_produced = traffic.produced
        time.sleep(max(0.0, started + traffic.seconds * 2 / 3 - time.monotonic()))
        leaver = members[1]
        leaver_processed = {s: processed(leaver.scrape(), s) for s in STREAMS}
        left_at, left_produced = time.monotonic(), traffic.produced
        leaver.stop()
        staying = [members[0], joiner]
        members[0].wait_for(lambda _: sum(owned(w.scrape(), fleet) for w in staying) == 3 * PARTITIONS
                            and all(owned(w.scrape(), fleet) > 0 for w in staying), timeout=240,
                            what="the two remaining fleet workers to own every partition")  # fmt: skip
        leave_s = time.monotonic() - left_at
        traffic.finish()
        produced_s = time.monotonic() - started
        final = wait_everything_processed([alone, *staying, *others])
        joiner_processed = {s: processed(joiner.scrape(), s) for s in STREAMS}
        drained_s = time.monotonic() - started
    finally:
        for worker in (alone, *members, *others):
            worker.stop()
    print(f"\nlive traffic: {len(world.messages)} messages at {RATE:.0f}/s ({produced_s:.0f}s), drained by both groups "
          f"{drained_s:.0f}s after the start; the third fleet worker joined after {joiner_produced} messages and "
          f"shared the partitions {join_s:.1f}s after starting; a first one left after {left_produced} messages, "
          f"its partitions moved in {leave_s:.1f}s; it had processed {leaver_processed}, the joiner "
          f"{joiner_processed}")  # fmt: skip
    # Observations a worker left out of its series as late (a partition with a backlog taken for
    # idle after a stall of CXPULSE_IDLE_PARTITION_SECONDS is reported at the watermark; its
    # later events in the steps so reported are lost to the series).
    late = [{s: sample(samples, "cxpulse_series_late_events_total", stream=s) for s in STREAMS} for samples in final]
    print(f"series observations left out as late, per worker (the single one first): {late}")
    assert all(leaver_processed.values()) and all(joiner_processed.values()), "a fleet worker processed nothing"
    return {"single": collect(single), "fleet": collect(fleet)} | ({"twin": collect(twin)} if TWIN else {})


def id_differences(got: RunOutputs, want: RunOutputs) -> tuple[OutputDiff, OutputDiff]:
    """Notifications and alerts of ``got`` against ``want``, printed by kind."""
    notifications, alerts = OutputDiff(got.notifications, want.notifications), OutputDiff(got.alerts, want.alerts)
    print(notifications.summary("notifications"))
    print(alerts.summary("alerts"))
    # A notification whose candidate both runs proposed was decided by the customers' policy
    # (cooldown, daily cap, priority): show what else the customer got around it in each run.
    proposed = set.intersection(*(set().union(*candidate_ids(run).values()) for run in (got, want)))
    sent = {"want": by_customer(want), "got": by_customer(got)}
    for name, diff in (("notification", notifications), ("alert", alerts)):
        for what, ids, source in (("missing", diff.lost, diff.want), ("extra", diff.extra, diff.got)):
            for i in sorted(ids, key=lambda i: source[i][0]):
                event = orjson.loads(source[i][0])
                data = event["data"]
                about = data.get("series") or event.get("subject")
                print(f"  {what} {name} {event['type'].rsplit('.', 1)[-1]} {about} at {event['time']} "
                      f"{data.get('status', '')}")  # fmt: skip
                customer = data.get("customer_id")
                if name == "notification" and i in proposed and customer:
                    t = parse_timestamp(event["time"])
                    around = {run: nearby(sent[run].get(customer, []), t) for run in sent}
                    print(f"    candidate in both runs (a policy decision); the customer's other notifications "
                          f"within a day, reference: {around['want']}, this run: {around['got']}")  # fmt: skip
    for name, diff in (("notification", notifications), ("alert", alerts)):
        for (kind, fields), n in sorted(changed_fields(diff).items()):
            print(f"  {n} {name}s {kind} with the same id and other content: {', '.join(fields)}")
    # Candidates (cx.signals, before the policy) tell a rule's difference from the policy's.
    mine, theirs = candidate_ids(got), candidate_ids(want)
    kinds = sorted(set(mine) | set(theirs))
    counts = [(k, len(theirs.get(k, set()) - mine.get(k, set())), len(mine.get(k, set()) - theirs.get(k, set())))
              for k in kinds]  # fmt: skip
    print("candidates (before the policy) missing/extra by kind: " + ", ".join(f"{k} -{a}/+{b}" for k, a, b in counts))
    return notifications, alerts


def by_customer(run: RunOutputs) -> dict[str, list[tuple[float, str]]]:
    """customer -> (event time, short type) of every notification ``run`` sent them."""
    out: dict[str, list[tuple[float, str]]] = {}
    for copies in run.notifications.values():
        event = orjson.loads(copies[0])
        customer = event["data"].get("customer_id")
        if customer:
            out.setdefault(customer, []).append((parse_timestamp(event["time"]), event["type"].rsplit(".", 1)[-1]))
    return out


def nearby(sent: list[tuple[float, str]], t: float) -> list[str]:
    """The notifications of ``sent`` within a day of ``t`` (itself excluded), as type@offset."""
    return [f"{kind}@{(at - t) / 3600:+.1f}h" for at, kind in sorted(sent) if 0 < abs(at - t) <= DAY]


def candidate_ids(run: RunOutputs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in candidates(run.signals):
        out.setdefault(c["type"].rsplit(".", 1)[-1], set()).add(c["id"])
    return out


def changed_fields(diff: OutputDiff) -> Counter:
    """(type, fields that differ) -> how many ids of both runs carry other content."""
    out: Counter = Counter()
    for i in diff.changed():
        a, b = orjson.loads(diff.want[i][0]), orjson.loads(diff.got[i][0])
        fields = {k for k in a.keys() | b.keys() if k != "data" and a.get(k) != b.get(k)}
        fields |= {f"data.{k}" for k in a["data"].keys() | b["data"].keys() if a["data"].get(k) != b["data"].get(k)}
        out[a["type"].rsplit(".", 1)[-1], tuple(sorted(fields))] += 1
    return out


def assert_one_answer(got: RunOutputs, want: RunOutputs, names: tuple[str, str], truth: dict[str, Any]) -> None:
    figures = {names[0]: want.quality(truth), names[1]: got.quality(truth)}
    print(f"\nquality against the simulator's truth (* = differs):\n{quality_table(figures)}")
    notifications, alerts = id_differences(got, want)
    by_kind = Counter(
        f"{kind}:{orjson.loads((diff.want.get(i) or diff.got[i])[0])['type'].rsplit('.', 1)[-1]}"
        for kind, diff in (("notification", notifications), ("alert", alerts))
        for i in diff.lost | diff.extra
    )  # fmt: skip
    assert want.notifications and want.alerts, "the reference run sent no notification or no alert"
    assert not notifications.resent_differently() and not alerts.resent_differently()
    assert set(got.notifications) == set(want.notifications), f"notification ids differ: {dict(by_kind)}"
    assert set(got.alerts) == set(want.alerts), f"alert ids differ: {dict(by_kind)}"
    assert figures[names[1]] == figures[names[0]]


def test_one_worker_and_a_changing_fleet_give_one_answer(live, world):
    if "twin" in live:
        print("\nnoise floor: two single workers on the same live traffic")
        try:
            assert_one_answer(live["twin"], live["single"], ("1 worker", "1 worker again"), world.truth)
        except AssertionError as exc:
            print(f"the single worker's own runs differ: {str(exc).splitlines()[0]}")
    assert_one_answer(live["fleet"], live["single"], ("1 worker", "3 workers"), world.truth)


def positions(samples: dict, settings: Settings, times: dict[tuple[str, int], list[float]]) -> dict[str, dict]:
    """stream -> partition -> event time of the last message the worker processed there (by the
    worker's lag report: end offset minus lag), for partitions it has started on."""
    out: dict[str, dict] = {}
    for s in STREAMS:
        for p in range(PARTITIONS):
            lag = lag_report(samples, getattr(settings, f"topic_{s}"), p)
            ts = times.get((s, p), [])
            if lag is None or lag >= len(ts):
                continue
            out.setdefault(s, {})[p] = ts[len(ts) - int(lag) - 1]
    return out


class SkewProbe(threading.Thread):
    """Samples a worker's ``/metrics`` during a catch-up and keeps, per stream, the widest gap in
    event time between the partition furthest ahead and one furthest behind that still has a
    backlog, with the positions of every partition at that moment; and, per stream, how far the
    worker's watermark (``cxpulse_event_time_seconds``) was seen past a partition with a backlog:
    the sign that the watermark left that partition out as idle (lag reports are up to 5 s
    older than the watermark, so a few minutes of event time past is noise)."""

    def __init__(self, worker: WorkerProcess, times: dict[tuple[str, int], list[float]]) -> None:
        super().__init__(daemon=True)
        self.worker, self.times = worker, times
        self.widest: dict[str, tuple[float, dict]] = {s: (0.0, {}) for s in STREAMS}
        self.past: dict[str, float] = dict.fromkeys(STREAMS, float("-inf"))
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        settings = self.worker.settings
        while not self.done.wait(1.0):
            try:
                samples = self.worker.scrape()
            except requests.RequestException:
                continue
            self.samples += 1
            for s, at in positions(samples, settings, self.times).items():
                topic = getattr(settings, f"topic_{s}")
                behind = [at[p] for p in at if (lag_report(samples, topic, p) or 0) > 0]
                if behind and max(at.values()) - min(behind) > self.widest[s][0]:
                    self.widest[s] = (max(at.values()) - min(behind), dict(at))
                watermark = sample(samples, "cxpulse_event_time_seconds", stream=s)
                if behind and watermark > 0:
                    self.past[s] = max(self.past[s], watermark - min(behind))


def test_catch_up_with_one_partition_days_ahead_gives_the_live_answer(kafka_broker, tmp_path, world, live):
    settings = isolated_settings(kafka_broker.bootstrap, tmp_path / "var", partitions=PARTITIONS)
    wire = [copy for m in world.messages for copy in [m] * (1 if m.partition == 0 else 1 + PADDING)]
    started = time.monotonic()
    placed = deliver(settings, world.records(settings, wire))
    assert not any(d.error for d in placed)
    # Per input partition, the event time of each offset: where a lag report puts the worker.
    at_offset: dict[tuple[str, int], dict[int, float]] = {}
    for d, m in zip(placed, wire, strict=True):
        assert d.partition == m.partition, "the test's partitioner is not librdkafka's"
        at_offset.setdefault((m.stream, d.partition), {})[d.offset] = m.ts
    times = {key: [ts[o] for o in range(len(ts))] for key, ts in at_offset.items()}
    produced_s = time.monotonic() - started
    worker = start_worker(settings, tmp_path / "logs")
    probe = SkewProbe(worker, times)
    probe.start()
    try:
        final = wait_everything_processed([worker], timeout=900)[0]
        total_s = time.monotonic() - started
    finally:
        probe.done.set()
        probe.join(10)
        worker.stop()
    days_in = lambda t: round((t - DEFAULT_START) / DAY, 2)  # noqa: E731
    # A partition left out as idle while it had a backlog shows as series partials arriving for
    # steps already closed (its later events), and as the watermark past its position.
    late_partials = {s: sample(final, "cxpulse_series_late_partials_total", stream=s) for s in STREAMS}
    late_events = {s: sample(final, "cxpulse_series_late_events_total", stream=s) for s in STREAMS}
    past_h = {s: round(h / 3600, 1) if h > float("-inf") else None for s, h in probe.past.items()}
    skew_days = {s: round(gap / DAY, 2) for s, (gap, _) in probe.widest.items()}
    print(f"\ncatch-up: {len(wire)} messages ({len(world.messages)} + {len(wire) - len(world.messages)} copies on "
          f"partitions 1-3) produced in {produced_s:.0f}s before the worker started, all processed {total_s:.0f}s "
          f"after the start. Widest skew between partitions ({probe.samples} samples): {skew_days} days; "
          f"positions then (days into the world): "
          f"{ {s: {p: days_in(t) for p, t in at.items()} for s, (_, at) in probe.widest.items()} }; "
          f"late series partials: {late_partials}, late series observations: {late_events}; "
          f"the watermark furthest past a partition with a "
          f"backlog (hours): {past_h}")  # fmt: skip
    # The skew happened: at some point a partition was days ahead of one with a backlog.
    assert all(days >= 1.0 for days in skew_days.values()), skew_days
    # Every event of the world was processed (at least once; the copies count as duplicates):
    # a message skipped by the consumer shows here before it shows as a missing output.
    accepted = {s: sum(v for (name, labels), v in final.items()
                       if name == "cxpulse_events_total" and ("stream", s) in labels) for s in STREAMS}  # fmt: skip
    duplicates = {s: sample(final, "cxpulse_events_duplicate_total", stream=s) for s in STREAMS}
    want_events = world.truth["counts"]["per_stream"]
    print(f"events processed: {accepted} (duplicates dropped: {duplicates}); the world's: {want_events}")
    assert all(accepted[s] >= want_events[s] for s in STREAMS), "events of the world were never processed"
    assert_one_answer(collect(settings), live["single"], ("1 worker live", "catch-up skewed"), world.truth)
