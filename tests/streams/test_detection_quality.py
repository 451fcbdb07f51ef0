"""Detection quality of the production handlers against the simulator's ground truth (no Kafka).

The simulator's events are encoded as they go on the wire and fed to fresh ``ContactsHandler``
and ``ClickstreamHandler`` instances; the ``topic_alerts`` records they return (CloudEvents)
are matched with the injected incidents.

Complaint spikes
    Three seeds, two simulated days each (Monday and Tuesday, daily seasonality as default),
    ten spikes per seed of a random factor 3-6 lasting 10-30 minutes, one every 2.5 hours from
    09:00 UTC (jitter up to an hour) on reasons cycled in a shuffled order; no two overlap.
    Density: at the daily peak 3 (account) to 10 (delivery) complaints per minute per reason,
    about 28 per minute in all. Targets: >= 95% of spikes raise a firing
    ``cx.alert.complaint_spike`` for the spiked reason whose ``time`` is at most 300 s after the
    onset; at most 1 false alert per series per simulated day. A firing alert is false when
    its episode overlaps no injected spike that feeds its series: the spiked reason for reason
    series; any spike for channel series (70% of a spike's contacts use one channel, the other
    30% follow the normal channel mix, so every channel series rises during a spike).

    Only complaints reach the complaint series, so the contacts here are complaints
    (``complaint_probability=1``, no surveys) and only ``contact_opened`` messages are fed:
    the complaint series see the same kind of traffic as in a full mix at a quarter of the cost.

    Why spikes are in the daytime: a 3x spike of a reason at 0.5/min (night) adds ~5
    complaints in 5 minutes; no test that keeps false alerts under one per day can see that
    within 5 minutes (a Poisson CUSUM with an in-control run length of one day needs ~11
    minutes on average), so the 5-minute target is only meaningful for baselines of about
    2/min and more (1.5/min: a 3x spike is seen within 5 minutes ~60% of the time).

Rage-click storm, error storm
    Two seeds, 6 hours of clickstream (08:00-14:00 UTC) with one storm of each kind on
    different pages: a ``cx.alert.rage_click_storm`` for the storm's page (route template
    ``/products/:id``) and a ``cx.alert.metric_anomaly`` for client errors on the error storm's
    page, each within 5 minutes; at most 2 false alerts per run. A third run checks a rage
    storm on a page that never had a rage click before (``/checkout`` without natural rage
    bursts): its series is born with the storm, so the watcher must count the steps it already
    watched as zeros instead of spending the storm in warm-up.

Replay determinism
    The same input through fresh handlers twice gives the same alert CloudEvents (ids and
    bytes).

The simulations run in a process pool (one job per seed) to keep the module well under
90 s on two cores.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from deploy.simulator.simulation import DEFAULT_START, Incident, Simulation, SimulationConfig, batch_messages
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.metrics import Metrics
from streams.pipeline import Context, StreamHandler
from streams.series import SeriesOwnerHandler
from streams.settings import Settings
from streams.topics import Topic
from tests.quality import episodes
from tests.quality import first_firing as _first_firing
from tests.quality import overlaps as _overlaps
from tests.quality import route as _route

pytestmark = pytest.mark.slow

HOUR = 3600.0
DAY = 86400.0
MAX_DELAY_S = 300.0

COMPLAINT_SEEDS = (1, 2, 3)
COMPLAINT_DAYS = 2
COMPLAINT_DENSITY = 0.62  # events/s of complaint contacts: 3-10 complaints/min/reason at the peak
SPIKE_SLOTS_H = (9.0, 11.5, 14.0, 16.5, 19.0)  # + up to 1 h jitter, 10-30 min long: no overlap
CONTACTS_ONLY = {"clickstream": 0.0, "contacts": 1.0, "deliveries": 0.0}
CLICKS_ONLY = {"clickstream": 1.0, "contacts": 0.0, "deliveries": 0.0}

#: (seed, rage storm page, error storm page)
STORM_RUNS = ((1, "/products/{id}", "/checkout"), (2, "/products/{id}", "/cart"))
STORM_START = DEFAULT_START + 8 * HOUR
STORM_HOURS = 6.0
STORM_DENSITY = 3.0


def _handler(cls: type[StreamHandler]) -> StreamHandler:
    """A handler on one partition, with the series owner its series records go to."""
    ctx = Context.create(Settings(partitions=1), Metrics(CollectorRegistry()))
    handler = cls(ctx)
    handler.series_owner = SeriesOwnerHandler(ctx)  # type: ignore[attr-defined]
    return handler


def _handle(handler: StreamHandler, value: bytes, key: bytes) -> list[bytes]:
    """The alerts (CloudEvents) one message leads to, through the series owner."""
    owner: SeriesOwnerHandler = handler.series_owner  # type: ignore[attr-defined]
    alerts = []
    for record in handler.handle(value, key).records:
        if record.topic == Topic.SERIES:
            alerts += [r.value for r in owner.handle(record.value, record.key, 0).records if r.topic == Topic.ALERTS]
    return alerts


def _alerts(handler: StreamHandler, messages: list[tuple[bytes, bytes]]) -> list[bytes]:
    out = []
    for key, value in messages:
        out += _handle(handler, value, key)
    return out


def _episodes(raw_alerts: list[bytes], end: float) -> list[dict[str, Any]]:
    """One entry per alert episode: type, labels, series, start, firing time, end (tests/quality.py)."""
    return episodes([orjson.loads(raw) for raw in raw_alerts], end)


# --------------------------------------------------------------------------------------------
# Jobs (module level: they run in worker processes)
# --------------------------------------------------------------------------------------------


def spike_schedule(seed: int, days: int, reasons: tuple[str, ...]) -> tuple[Incident, ...]:
    """Five spikes per day from 09:00 UTC, reasons cycled in a shuffled order, random factor."""
    rng = random.Random(f"spikes:{seed}")
    out: list[Incident] = []
    pool: list[str] = []
    for day in range(days):
        for slot in SPIKE_SLOTS_H:
            if not pool:
                pool = list(reasons)
                rng.shuffle(pool)
            at = day * DAY + slot * HOUR + rng.uniform(0.0, HOUR)
            params = {
                "reason": pool.pop(), "at": round(at), "duration": round(rng.uniform(600.0, 1800.0)),
                "factor": round(rng.uniform(3.0, 6.0), 1),
            }  # fmt: skip
            out.append(Incident("complaint_spike", params))
    return tuple(out)


def complaint_job(seed: int) -> dict[str, Any]:
    reasons = SimulationConfig().reasons
    config = SimulationConfig(
        seed=seed, sim_seconds=COMPLAINT_DAYS * DAY, events_per_sim_second=COMPLAINT_DENSITY, mix=CONTACTS_ONLY,
        complaint_probability=1.0, survey_probability=0.0, incidents=spike_schedule(seed, COMPLAINT_DAYS, reasons),
    )  # fmt: skip
    sim = Simulation(config, record_truth=True)
    messages = []
    per_minute: dict[tuple[str, int], int] = {}
    for ev in sim.events():
        if ev.event["type"] == "contact_opened":
            messages.append((ev.key.encode(), orjson.dumps(ev.event)))
            if ev.event["complaint"]:
                minute = (ev.event["reason"], int((ev.ts - config.start) // 60))
                per_minute[minute] = per_minute.get(minute, 0) + 1
    truth = sim.truth()
    handler = _handler(ContactsHandler)
    raw = _alerts(handler, messages)
    watcher = handler.series_owner._owned[0].watchers["contacts"]  # type: ignore[attr-defined]
    series = [s for s in watcher.scores() if s.startswith("complaints")]
    return {
        "seed": seed, "incidents": truth["incidents"], "end": truth["end"], "raw": raw,
        "series": series, "peak_per_min": _peak_rates(per_minute, truth["incidents"], config),
        "messages": len(messages),
    }  # fmt: skip


def _peak_rates(
    per_minute: dict[tuple[str, int], int], incidents: list[dict[str, Any]], config: SimulationConfig
) -> dict[str, float]:
    """Baseline complaints/min per reason in its busiest hour of the day (spike minutes left out)."""
    minutes = int(config.sim_seconds // 60)
    peak = {}
    for reason in config.reasons:
        spiked = {
            m for i in incidents if i["labels"]["reason"] == reason
            for m in range(int((i["start"] - config.start) // 60), int((i["end"] - config.start) // 60) + 1)
        }  # fmt: skip
        counts, spans = [0] * 24, [0] * 24
        for m in range(minutes):
            if m not in spiked:
                hour = (m // 60) % 24
                counts[hour] += per_minute.get((reason, m), 0)
                spans[hour] += 1
        peak[reason] = max(c / n for c, n in zip(counts, spans, strict=True) if n)
    return peak


def storm_job(seed: int, rage_page: str, error_page: str | None, natural_rage: float = 0.002) -> dict[str, Any]:
    incidents = [Incident("rage_click_storm", {"page": rage_page, "at": "3h", "duration": "15m"})]
    if error_page is not None:
        incidents.append(Incident("error_storm", {"page": error_page, "at": "4.5h", "duration": "15m"}))
    config = SimulationConfig(
        seed=seed, start=STORM_START, sim_seconds=(STORM_HOURS if error_page else 3.5) * HOUR,
        events_per_sim_second=STORM_DENSITY, mix=CLICKS_ONLY, natural_rage_probability=natural_rage,
        incidents=tuple(incidents),
    )  # fmt: skip
    sim = Simulation(config, record_truth=True)
    messages = [(m.key.encode(), orjson.dumps(m.events)) for m in batch_messages(sim.events(), 5)]
    truth = sim.truth()
    raw = _alerts(_handler(ClickstreamHandler), messages)
    return {"seed": seed, "incidents": truth["incidents"], "end": truth["end"], "raw": raw}


def replay_job() -> dict[str, Any]:
    """A mixed input (clickstream and contacts, a storm and a spike) through fresh handlers twice."""
    config = SimulationConfig(
        seed=7, start=DEFAULT_START + 8 * HOUR, sim_seconds=5 * HOUR, events_per_sim_second=2.0,
        mix={"clickstream": 0.7, "contacts": 0.3, "deliveries": 0.0},
        incidents=(
            Incident.parse("complaint_spike:reason=delivery,at=3h,duration=20m,factor=6"),
            Incident.parse("rage_click_storm:page=/cart,at=4h,duration=15m"),
        ),
    )  # fmt: skip
    messages = [(m.stream, m.key.encode(), orjson.dumps(m.events if m.batch else m.events[0]))
                for m in batch_messages(Simulation(config).events(), 5)]  # fmt: skip
    runs = []
    for _ in range(2):
        handlers = {"clickstream": _handler(ClickstreamHandler), "contacts": _handler(ContactsHandler)}
        raw = []
        for stream, key, value in messages:
            raw += _handle(handlers[stream], value, key)
        runs.append(raw)
    return {"runs": runs}


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Every simulation of the module, run in parallel worker processes."""
    context = multiprocessing.get_context("fork")
    jobs = len(COMPLAINT_SEEDS) + len(STORM_RUNS) + 2
    with ProcessPoolExecutor(max_workers=min(jobs, 3), mp_context=context) as pool:
        complaints = [pool.submit(complaint_job, seed) for seed in COMPLAINT_SEEDS]
        storms = [pool.submit(storm_job, *run) for run in STORM_RUNS]
        cold = pool.submit(storm_job, 3, "/checkout", None, 0.0)
        replay = pool.submit(replay_job)
        return {
            "complaints": [f.result() for f in complaints],
            "storms": [f.result() for f in storms],
            "cold_storm": cold.result(),
            "replay": replay.result(),
        }


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_complaint_spikes_recall_delay_and_false_alerts(results):
    detected = total = false_alerts = false_strict = 0
    series_days = 0.0
    delays: list[float] = []
    lines = []
    for run in results["complaints"]:
        incidents = run["incidents"]
        assert len(incidents) == len(SPIKE_SLOTS_H) * COMPLAINT_DAYS
        spans = sorted((i["start"], i["end"]) for i in incidents)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans)), "spikes overlap"
        peak = run["peak_per_min"]
        assert all(1.0 <= rate <= 10.5 for rate in peak.values()), f"unrealistic density: {peak}"
        episodes = [ep for ep in _episodes(run["raw"], run["end"]) if ep["type"] == "cx.alert.complaint_spike"]
        for inc in incidents:
            reason = inc["labels"]["reason"]
            delay = _first_firing(episodes, inc, lambda ep, r=reason: ep["labels"].get("reason") == r)
            total += 1
            if delay is not None:
                delays.append(delay)
            if delay is not None and delay <= MAX_DELAY_S:
                detected += 1
            else:
                p = inc["params"]
                lines.append(f"  seed {run['seed']}: missed {reason} x{p['factor']} {p['duration']:.0f}s "
                             f"at {inc['start_iso']} (delay {delay})")  # fmt: skip
        for ep in episodes:
            labels = ep["labels"]
            if "reason" in labels:
                true = any(_overlaps(ep, i) and i["labels"]["reason"] == labels["reason"] for i in incidents)
                strict = true
            else:
                true = any(_overlaps(ep, i) for i in incidents)
                strict = any(_overlaps(ep, i) and i["labels"].get("channel") == labels.get("channel")
                             for i in incidents)  # fmt: skip
            false_alerts += not true
            false_strict += not strict
            if not true:
                lines.append(f"  seed {run['seed']}: false alert {ep['explanation']}")
        series_days += len(run["series"]) * COMPLAINT_DAYS
    recall = detected / total
    fa_rate = false_alerts / series_days
    quantiles = statistics.quantiles(delays, n=10) if len(delays) > 1 else [float("nan")] * 9
    print(f"\ncomplaint spikes: recall within {MAX_DELAY_S:.0f}s {recall:.1%} ({detected}/{total}); delay median "
          f"{statistics.median(delays):.0f}s p90 {quantiles[8]:.0f}s; false alerts {false_alerts} = {fa_rate:.2f} "
          f"per series per day ({false_strict} = {false_strict / series_days:.2f} counting only the spike's own "
          f"channel as true); peak complaints/min per reason "
          f"{ {r: round(v, 1) for r, v in results['complaints'][0]['peak_per_min'].items()} }")  # fmt: skip
    print("\n".join(lines))
    assert recall >= 0.95, "\n".join(lines)
    assert fa_rate <= 1.0, "\n".join(lines)


def test_rage_click_and_error_storms(results):
    lines = []
    false_total = 0
    for run in results["storms"]:
        rage, error = run["incidents"]
        rage_page, error_page = _route(rage["params"]["page"]), _route(error["params"]["page"])
        assert rage["bursts"] > 0
        episodes = _episodes(run["raw"], run["end"])

        def is_rage(ep: dict[str, Any], page: str = rage_page) -> bool:
            return ep["type"] == "cx.alert.rage_click_storm" and ep["labels"].get("page") == page

        def is_error(ep: dict[str, Any], page: str = error_page) -> bool:
            return ep["type"] == "cx.alert.metric_anomaly" and ep["series"] == f'client_errors{{page="{page}"}}'

        def is_error_rate(ep: dict[str, Any]) -> bool:
            return ep["type"] == "cx.alert.metric_anomaly" and ep["series"] == "client_error_rate"

        rage_delay = _first_firing(episodes, rage, is_rage)
        error_delay = _first_firing(episodes, error, is_error)
        false = [
            ep for ep in episodes
            if not ((is_rage(ep) and _overlaps(ep, rage))
                    or ((is_error(ep) or is_error_rate(ep)) and _overlaps(ep, error)))
        ]  # fmt: skip
        false_total += len(false)
        print(
            f"\nstorms seed {run['seed']}: rage storm on {rage_page} ({rage['bursts']} bursts) alert after "
            f"{rage_delay}s; error storm on {error_page} alert after {error_delay}s; {len(false)} false alerts"
        )
        lines += [f"  false alert: {ep['explanation']}" for ep in false]
        assert rage_delay is not None and rage_delay <= MAX_DELAY_S, (run["seed"], rage_page, rage_delay)
        assert error_delay is not None and error_delay <= MAX_DELAY_S, (run["seed"], error_page, error_delay)
    print("\n".join(lines))
    assert false_total <= 2 * len(results["storms"]), "\n".join(lines)


def test_rage_storm_on_a_page_without_earlier_rage_clicks(results):
    run = results["cold_storm"]
    (rage,) = run["incidents"]
    page = _route(rage["params"]["page"])
    episodes = _episodes(run["raw"], run["end"])
    delay = _first_firing(
        episodes, rage, lambda ep: ep["type"] == "cx.alert.rage_click_storm" and ep["labels"].get("page") == page
    )
    print(f"\ncold rage storm on {page} ({rage['bursts']} bursts, no rage click before): alert after {delay}s")
    assert delay is not None and delay <= MAX_DELAY_S


def test_replay_gives_the_same_alert_ids(results):
    first, second = results["replay"]["runs"]
    ids = [orjson.loads(raw)["id"] for raw in first]
    types = {orjson.loads(raw)["type"] for raw in first}
    assert {"cx.alert.complaint_spike", "cx.alert.rage_click_storm"} <= types, types
    assert len(set(ids)) == len(ids)
    assert ids == [orjson.loads(raw)["id"] for raw in second]
    assert first == second
