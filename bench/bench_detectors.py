"""Cost of the detectors and of the pure handler path, on simulated traffic (no Kafka).

Prints figures, asserts nothing. Everything is generated and encoded (or parsed) before the
clock starts, so only the measured step is timed; each figure is the median of several runs
on fresh state (fresh handlers: the de-duplicator would otherwise drop a second pass).

(a) ``FrustrationSignals.process`` over the simulator's clickstream (parsed events, an
    ``expire`` call every 1,000 events as the clickstream handler does per message batch):
    events/s, median of 5.
(b) ``MetricAnomalyDetector.update`` of one series (per-minute complaint counts with daily
    seasonality and Poisson noise, event time given): updates/s, median of 5.
(c) ``SeriesWatcher`` as the contacts handler drives it (observe every complaint on its reason
    and channel series, ``advance`` once per closed step): microseconds per event, and per
    closed series-step, median of 5.
(d) The full pure path ``StreamHandler.handle`` (parse, validate, dedup, event time, metrics,
    detectors, alert records) per stream: events/s, median of 3; clickstream as single-event
    messages, as SDK batches (up to 5 events of a session, flushed after 5 s: about 1.3 events
    per message at this traffic) and as full batches of 5.

Usage: ``.venv/bin/python -m bench.bench_detectors [--scale 1.0]`` (``--scale`` multiplies the
event counts; the default run takes about a minute on two busy cores).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from deploy.simulator.simulation import Incident, SimEvent, Simulation, SimulationConfig, batch_messages
from detectors.metric_anomaly import MetricAnomalyDetector
from detectors.series_watch import SeriesWatcher
from schemas import ClickstreamEvent, Stream, parse_message
from streams.clickstream import ClickstreamHandler, frustration_signals
from streams.contacts import ContactsHandler
from streams.deliveries import DeliveriesHandler
from streams.metrics import Metrics
from streams.pipeline import Context, StreamHandler
from streams.settings import Settings

ONLY = {
    "clickstream": {"clickstream": 1.0, "contacts": 0.0, "deliveries": 0.0},
    "contacts": {"clickstream": 0.0, "contacts": 1.0, "deliveries": 0.0},
    "deliveries": {"clickstream": 0.0, "contacts": 0.0, "deliveries": 1.0},
}


def simulate(stream: str, sim_seconds: float, density: float, **knobs: Any) -> list[SimEvent]:
    """One stream of the simulator at ``density`` events per simulated second (default seed 11)."""
    config = SimulationConfig(
        seed=11, sim_seconds=sim_seconds, events_per_sim_second=density, mix=ONLY[stream], **knobs
    )
    return list(Simulation(config).events())


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


def spread(values: list[float]) -> str:
    return f"(min {min(values):,.0f}, max {max(values):,.0f})"


def fresh_context() -> Context:
    return Context.create(Settings(), Metrics(CollectorRegistry()))


# -- (a) frustration signals -------------------------------------------------------------------


def bench_frustration(clicks: list[ClickstreamEvent]) -> None:
    ctx = fresh_context()

    def run() -> float:
        signals = frustration_signals(ctx)  # production thresholds and ignore lists
        process, expire = signals.process, signals.expire
        found = 0
        t0 = time.perf_counter()
        for i, ev in enumerate(clicks):
            found += len(process(ev))
            if i % 1000 == 999:
                expire(ev.ts)
        dt = time.perf_counter() - t0
        run.found = found  # type: ignore[attr-defined]
        return len(clicks) / dt

    rate, values = median_of(5, run)
    kinds: dict[str, int] = {}
    for ev in clicks:
        kinds[ev.type] = kinds.get(ev.type, 0) + 1
    mix = ", ".join(f"{k} {v / len(clicks):.0%}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    print(f"(a) FrustrationSignals.process: {rate:,.0f} events/s median of 5 {spread(values)}")
    print(f"    {len(clicks):,} simulated clickstream events ({mix}); {run.found:,} signals per pass")  # type: ignore[attr-defined]


# -- (b) metric anomaly detector -----------------------------------------------------------------


def complaint_counts(steps: int, seed: int = 3) -> list[tuple[float, float]]:
    """(value, t) per minute: Poisson counts around 1-5/min following a daily cycle."""
    rng = random.Random(seed)
    t0 = 1_704_067_200.0
    out = []
    for k in range(steps):
        hour = (k / 60.0) % 24.0
        lam = 3.0 * (1.0 + 0.7 * math.cos((hour - 15.0) * math.pi / 12.0))
        # Poisson by inversion (small lambda)
        x, p, u = 0, math.exp(-lam), rng.random()
        cdf = p
        while u > cdf:
            x += 1
            p *= lam / x
            cdf += p
        out.append((float(x), t0 + 60.0 * k))
    return out


def bench_metric_anomaly(steps: int) -> None:
    series = complaint_counts(steps)

    def run() -> float:
        det = MetricAnomalyDetector()
        update = det.update
        t0 = time.perf_counter()
        for x, t in series:
            update(x, t)
        return len(series) / (time.perf_counter() - t0)

    rate, values = median_of(5, run)
    print(
        f"(b) MetricAnomalyDetector.update: {rate:,.0f} updates/s per series median of 5 {spread(values)}; "
        f"{1e6 / rate:.0f} us per step; {steps:,} one-minute steps ({steps / 1440:.1f} days)"
    )


# -- (c) series watcher --------------------------------------------------------------------------


def bench_series_watcher(contacts: list[SimEvent]) -> None:
    complaints = [
        (ev.ts, ev.event["reason"], ev.event["channel"])
        for ev in contacts
        if ev.event["type"] == "contact_opened" and ev.event["complaint"]
    ]
    span_days = (complaints[-1][0] - complaints[0][0]) / 86400.0

    def drive(watcher: SeriesWatcher) -> tuple[float, int, float]:
        observe, advance = watcher.observe, watcher.advance
        step, grace = watcher.step_s, watcher.grace_s
        next_end = float("-inf")
        closes = 0
        t_advance = 0.0
        t0 = time.perf_counter()
        for ts, reason, channel in complaints:
            observe(f'complaints{{reason="{reason}"}}', {"reason": reason}, ts)
            observe(f'complaints_by_channel{{channel="{channel}"}}', {"channel": channel}, ts)
            if ts >= next_end:  # what SeriesMonitor.advance does: work only once a step has closed
                next_end = (ts - grace) // step * step + step + grace
                a0 = time.perf_counter()
                advance(ts)
                t_advance += time.perf_counter() - a0
                closes += len(watcher)
        return time.perf_counter() - t0, closes, t_advance

    per_event: list[float] = []
    per_close: list[float] = []
    per_observe: list[float] = []
    closes = 0
    for _ in range(5):
        total, closes, t_advance = drive(SeriesWatcher())
        per_event.append(total / len(complaints) * 1e6)
        per_close.append(t_advance / closes * 1e6)
        per_observe.append((total - t_advance) / (2 * len(complaints)) * 1e6)
    print(
        f"(c) SeriesWatcher observe+advance: {statistics.median(per_event):.1f} us per event median of 5 "
        f"(observe {statistics.median(per_observe):.2f} us per call, 2 calls per event; advance "
        f"{statistics.median(per_close):.0f} us per closed series-step incl. the detector)"
    )
    print(
        f"    {len(complaints):,} complaints over {span_days:.1f} days on 10 series "
        f"({len(complaints) / span_days / 1440:.0f}/min), {closes:,} series-steps closed per pass"
    )


# -- (d) full handler path -----------------------------------------------------------------------


def bench_handler(label: str, cls: type[StreamHandler], messages: list[tuple[bytes, bytes]], events: int) -> None:
    def run() -> float:
        handler = cls(fresh_context())
        handle = handler.handle
        t0 = time.perf_counter()
        for key, value in messages:
            handle(value, key)
        return events / (time.perf_counter() - t0)

    rate, values = median_of(3, run)
    print(
        f"    {label:<27} {rate:>9,.0f} events/s median of 3 {spread(values)}; "
        f"{events:,} events in {len(messages):,} messages"
    )


def encode(events: list[SimEvent], batch_size: int, max_delay: float = 5.0) -> list[tuple[bytes, bytes]]:
    messages = batch_messages(events, batch_size, max_delay)
    return [(m.key.encode(), orjson.dumps(m.events if m.batch else m.events[0])) for m in messages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count")
    scale = parser.parse_args().scale
    started = time.perf_counter()

    storm = (
        Incident.parse("rage_click_storm:page=/checkout,at=20m,duration=20m"),
        Incident.parse("error_storm:page=/cart,at=40m,duration=15m"),
    )
    # 20 events/s is ~90 sessions a minute; contacts at 1.5/s, 3-10 complaints/min per reason
    # at the daily peak; deliveries over two days so the five days of warm-up orders stay cheap.
    clickstream = simulate("clickstream", 2400 * scale, 20.0, incidents=storm)
    contacts = simulate("contacts", 14_000 * scale, 1.5)
    deliveries = simulate("deliveries", 2 * 86_400 * scale, 0.09)
    # Complaint-only contacts for the watcher: one day of the complaint series, cheaply.
    complaints = simulate("contacts", 86_400 * scale, 0.62, complaint_probability=1.0, survey_probability=0.0)
    clicks = [
        ev
        for raw in (orjson.dumps(e.event) for e in clickstream)
        for ev in parse_message(Stream.CLICKSTREAM, raw).events
    ]
    print(f"prepared in {time.perf_counter() - started:.1f}s\n")

    bench_frustration(clicks)  # type: ignore[arg-type]
    bench_metric_anomaly(int(10_000 * scale))
    bench_series_watcher(complaints)

    print("(d) full pure handler path (parse+validate+dedup+metrics+detectors+alerts):")
    n_click = len(clickstream)
    bench_handler("clickstream, single events", ClickstreamHandler, encode(clickstream, 1), n_click)
    bench_handler("clickstream, SDK batches", ClickstreamHandler, encode(clickstream, 5), n_click)
    bench_handler("clickstream, full batches", ClickstreamHandler, encode(clickstream, 5, 3600.0), n_click)
    bench_handler("contacts", ContactsHandler, encode(contacts, 1), len(contacts))
    bench_handler("deliveries", DeliveriesHandler, encode(deliveries, 1), len(deliveries))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
