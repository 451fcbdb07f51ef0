"""Tests of the traffic simulator (pure: no Kafka)."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from deploy.simulator.simulation import (
    DAY,
    DEFAULT_START,
    HOUR,
    Incident,
    SimEvent,
    Simulation,
    SimulationConfig,
    batch_messages,
    encode,
    format_ts,
    generate,
    iter_encoded,
    page_template,
    parse_duration,
    resolve_incidents,
    truth,
)
from schemas import Stream, parse_message
from schemas.parsing import parse_timestamp

KEY_FIELD = {"clickstream": "session_id", "contacts": "customer_id", "deliveries": "order_id"}

SHORT = SimulationConfig(
    seed=7,
    sim_seconds=3 * HOUR,
    events_per_sim_second=6.0,
    start=DEFAULT_START + 10 * HOUR,
    mix={"clickstream": 0.55, "contacts": 0.4, "deliveries": 0.05},
    incidents=(
        Incident.parse("complaint_spike:reason=billing,at=1h,duration=30m,factor=4,channel=social"),
        Incident.parse("rage_click_storm:page=/checkout,element=button#place-order,at=90m,"
                       "duration=20m"),
        Incident.parse("error_storm:page=/cart,at=2h,duration=20m"),
    ),
)

LONG = SimulationConfig(
    seed=3,
    sim_seconds=6 * DAY,
    events_per_sim_second=0.25,
    mix={"clickstream": 0.2, "contacts": 0.1, "deliveries": 0.7},
    incidents=(Incident.parse("carrier_delay:carrier=ups,region=west,at=1d,duration=24h,"
                              "factor=2.5"),),
)


def _run(config: SimulationConfig) -> tuple[list[SimEvent], dict[str, Any]]:
    sim = Simulation(config, record_truth=True)
    events = list(sim.events())
    return events, sim.truth()


@pytest.fixture(scope="module")
def short() -> tuple[list[SimEvent], dict[str, Any]]:
    return _run(SHORT)


@pytest.fixture(scope="module")
def long() -> tuple[list[SimEvent], dict[str, Any]]:
    return _run(LONG)


def _bodies(events: list[SimEvent]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.stream, e.key, e.event) for e in events]


# --- determinism ----------------------------------------------------------------------------

def test_same_seed_same_events_and_truth(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    events, recorded = short
    again = list(generate(SHORT))
    assert _bodies(again) == _bodies(events)
    assert [e.ts for e in again] == [e.ts for e in events]
    assert orjson.dumps(truth(SHORT)) == orjson.dumps(recorded)


def test_different_seed_differs() -> None:
    a = SimulationConfig(seed=1, sim_seconds=600, events_per_sim_second=5)
    b = SimulationConfig(seed=2, sim_seconds=600, events_per_sim_second=5)
    ea, eb = list(generate(a)), list(generate(b))
    assert ea and eb
    assert [e.ts for e in ea] != [e.ts for e in eb]
    assert {e.key for e in ea}.isdisjoint({e.key for e in eb if e.stream != "contacts"})


# --- wire format ----------------------------------------------------------------------------

def test_every_event_is_schema_valid_and_keyed(short: tuple[list[SimEvent], dict[str, Any]],
                                               long: tuple[list[SimEvent], dict[str, Any]]
                                               ) -> None:
    for events in (short[0], long[0][:20_000]):
        for ev in events:
            result = parse_message(Stream(ev.stream), orjson.dumps(ev.event))
            assert not result.rejections, (ev, result.rejections[0].detail)
            assert len(result.events) == 1
            assert ev.key == ev.event[KEY_FIELD[ev.stream]]
            assert result.events[0].ts == ev.ts


def test_all_event_types_present(short: tuple[list[SimEvent], dict[str, Any]],
                                 long: tuple[list[SimEvent], dict[str, Any]]) -> None:
    types = Counter((e.stream, e.event["type"]) for e in short[0] + long[0])
    expected = {
        ("clickstream", t) for t in ("page_view", "click", "scroll", "selection", "error", "login")
    } | {("contacts", t) for t in ("contact_opened", "contact_resolved", "survey_response")} | {
        ("deliveries", t) for t in ("created", "shipped", "in_transit", "out_for_delivery",
                                    "delivered", "failed_attempt", "exception")
    }
    assert expected <= set(types)
    clicks = [e.event for e in short[0] if e.event["type"] == "click"]
    assert all({"element", "x", "y"} <= set(c) for c in clicks)
    dead = sum(1 for c in clicks if c.get("no_response"))
    assert 0 < dead < 0.1 * len(clicks)
    logins = [e.event["success"] for e in short[0] if e.event["type"] == "login"]
    assert sum(logins) > 0.8 * len(logins)
    pages = {e.event["page"] for e in short[0] if e.stream == "clickstream"}
    assert any(re.fullmatch(r"/orders/\d+", p) for p in pages)
    assert any(re.fullmatch(r"/products/\d+", p) for p in pages)


def test_keys_are_ids_without_personal_data(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    pattern = re.compile(r"^(sess|cust|ord)-\d+(-\d+)?$")
    for ev in short[0]:
        assert pattern.match(ev.key), ev.key
        for value in ev.event.values():
            assert not (isinstance(value, str) and "@" in value), value


def test_event_time_order_and_bounds(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    events = short[0]
    stamps = [e.ts for e in events]
    assert stamps == sorted(stamps)
    assert SHORT.start <= stamps[0] and stamps[-1] < SHORT.end
    for ev in events[:: max(1, len(events) // 500)]:
        assert ev.event["ts"].endswith("Z")
        assert parse_timestamp(ev.event["ts"]) == ev.ts


def test_format_ts() -> None:
    assert format_ts(DEFAULT_START) == "2024-01-01T00:00:00.000Z"
    assert format_ts(DEFAULT_START + 3661.2506) == "2024-01-01T01:01:01.251Z"
    assert parse_timestamp(format_ts(1_700_000_123.456)) == 1_700_000_123.456


def test_density_matches_request() -> None:
    cfg = SimulationConfig(seed=5, sim_seconds=1800, events_per_sim_second=8)
    n = sum(1 for _ in generate(cfg))
    assert 0.8 * 8 * 1800 < n < 1.2 * 8 * 1800


def test_daily_seasonality() -> None:
    cfg = SimulationConfig(seed=11, sim_seconds=DAY, events_per_sim_second=1.0,
                           mix={"clickstream": 1.0, "contacts": 0.0, "deliveries": 0.0})
    hours = Counter(int((e.ts - cfg.start) // HOUR) for e in generate(cfg))
    night = sum(hours[h] for h in range(0, 6))
    day = sum(hours[h] for h in range(12, 18))
    assert day > 2.5 * night


# --- incidents ------------------------------------------------------------------------------

def _per_minute(stamps: list[float], lo: float, hi: float) -> float:
    return sum(1 for t in stamps if lo <= t < hi) / ((hi - lo) / 60.0)


def test_complaint_spike_visible(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    events, tr = short
    inc = next(i for i in tr["incidents"] if i["name"] == "complaint_spike")
    assert inc["labels"]["reason"] == "billing"
    assert inc["start"] == SHORT.start + HOUR and inc["end"] == SHORT.start + 90 * 60
    opened = [e.event | {"_ts": e.ts} for e in events if e.event["type"] == "contact_opened"]
    billing = [o["_ts"] for o in opened if o["reason"] == "billing" and o["complaint"]]
    baseline = _per_minute(billing, SHORT.start, inc["start"])
    spike = _per_minute(billing, inc["start"], inc["end"])
    assert baseline > 0
    assert spike >= 3 * baseline, (spike, baseline)
    other = [o["_ts"] for o in opened if o["reason"] == "product" and o["complaint"]]
    assert _per_minute(other, inc["start"], inc["end"]) < 2.5 * max(
        _per_minute(other, SHORT.start, inc["start"]), 0.05)
    in_spike = [o for o in opened if inc["start"] <= o["_ts"] < inc["end"]
                and o["reason"] == "billing" and o["complaint"]]
    social = sum(1 for o in in_spike if o["channel"] == "social")
    assert social > 0.4 * len(in_spike)


def test_rage_click_storm_visible(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    _, tr = short
    inc = next(i for i in tr["incidents"] if i["name"] == "rage_click_storm")
    on_target = [b["ts"] for b in tr["rage_bursts"]
                 if b["page"] == "/checkout" and b["element"] == "button#place-order"]
    during = sum(1 for t in on_target if inc["start"] <= t < inc["end"])
    outside = len(on_target) - during
    assert during >= 15, during
    assert inc["bursts"] <= during <= inc["bursts"] + 2  # a natural burst may land in the window
    # outside the window the target gets no more than its share of the natural bursts (a busy
    # page: about a tenth of them)
    natural = sum(1 for b in tr["rage_bursts"] if not inc["start"] <= b["ts"] < inc["end"])
    assert outside <= 0.25 * natural, (outside, natural)
    sessions = {b["session_id"] for b in tr["rage_bursts"] if inc["start"] <= b["ts"] < inc["end"]}
    assert len(sessions) >= 10


def test_error_storm_visible(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    events, tr = short
    inc = next(i for i in tr["incidents"] if i["name"] == "error_storm")
    errors = [e.ts for e in events if e.event["type"] == "error" and e.event["page"] == "/cart"]
    during = _per_minute(errors, inc["start"], inc["end"])
    before = _per_minute(errors, SHORT.start, inc["start"])
    assert during >= 5 * max(before, 0.05), (during, before)


def test_carrier_delay_makes_orders_late(long: tuple[list[SimEvent], dict[str, Any]]) -> None:
    _, tr = long
    inc = tr["incidents"][0]
    assert inc["labels"] == {"carrier": "ups", "region": "west"}
    affected = set(inc["affected_orders"])
    orders = [o for o in tr["orders"] if o["promise_seen"] and o["late"] is not None]
    hit = [o for o in orders if o["order_id"] in affected]
    rest = [o for o in orders if o["order_id"] not in affected]
    assert len(hit) >= 30
    assert all(o["carrier"] == "ups" and o["region"] == "west" for o in hit)
    assert sum(o["late"] for o in hit) / len(hit) >= 0.6
    on_time = 1 - sum(o["late"] for o in rest) / len(rest)
    assert 0.88 <= on_time <= 0.97, on_time


def test_incident_defaults_are_seeded_and_bounded() -> None:
    cfg = SimulationConfig(seed=9, sim_seconds=4 * HOUR, incidents=tuple(
        Incident(n) for n in ("complaint_spike", "rage_click_storm", "carrier_delay",
                              "error_storm")))
    a, b = resolve_incidents(cfg), resolve_incidents(cfg)
    assert a == b
    spike = a[0]
    assert 3 <= spike.params["factor"] <= 6 and 600 <= spike.end - spike.start <= 1800
    assert spike.labels["reason"] in cfg.reasons
    assert cfg.start <= spike.start and spike.end <= cfg.end
    assert a[1].params["element"] in {"button#place-order", "input#coupon", "button.apply-coupon",
                                      "select#shipping", "button#checkout", "button.qty-plus",
                                      "a.remove-item", "button#add-to-cart", "a.size-guide",
                                      "div.gallery img", "button.wishlist", "input#q",
                                      "button.search-submit", "a.result-link",
                                      "button.filter-apply", "button#login",
                                      "a.forgot-password", "input#email", "a.orders",
                                      "button.save-profile", "a.logout"}
    assert 1.5 <= a[2].params["factor"] <= 3
    other = resolve_incidents(SimulationConfig(seed=10, sim_seconds=4 * HOUR,
                                               incidents=cfg.incidents))
    assert [i.params for i in other] != [i.params for i in a]


def test_incident_syntax() -> None:
    inc = Incident.parse("complaint_spike:reason=billing,at=3600,duration=20m,factor=4")
    assert inc.name == "complaint_spike"
    assert inc.params == {"reason": "billing", "at": "3600", "duration": "20m", "factor": "4"}
    assert Incident.parse("error_storm").params == {}
    with pytest.raises(ValueError, match="unknown incident"):
        Incident.parse("meteor")
    with pytest.raises(ValueError, match="unknown parameter"):
        Incident.parse("error_storm:colour=red")
    with pytest.raises(ValueError, match="key=value"):
        Incident.parse("error_storm:page")
    assert parse_duration("2h") == 7200 and parse_duration("1.5d") == 1.5 * DAY
    assert parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError, match="unknown page"):
        resolve_incidents(SimulationConfig(incidents=(Incident.parse("error_storm:page=/x"),)))
    resolved = resolve_incidents(SimulationConfig(
        incidents=(Incident.parse("error_storm:page=/products/123"),)))
    assert resolved[0].labels == {"page": "/products/{id}"}
    assert page_template("/orders/8812") == "/orders/{id}"


# --- ground truth vs events (independent re-computation) -------------------------------------

def _naive_bursts(events: list[SimEvent]) -> list[tuple[str, str, str, float]]:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        if ev.stream == "clickstream":
            by_session[ev.key].append(ev.event | {"_ts": ev.ts})
    found = []
    for sid, evs in by_session.items():
        run: list[dict[str, Any]] = []
        for e in [*evs, {"type": "end"}]:
            extend = (
                e["type"] == "click" and run
                and e["element"] == run[0]["element"] and e["page"] == run[0]["page"]
                and e["_ts"] - run[-1]["_ts"] < 1.0
                and math.dist((e["x"], e["y"]), (run[0]["x"], run[0]["y"])) < 30
            )
            if extend:
                run.append(e)
                continue
            if e["type"] in ("click", "scroll", "selection", "page_view", "end"):
                if len(run) >= 3 and any(
                    run[i + 2]["_ts"] - run[i]["_ts"] < 1.0 for i in range(len(run) - 2)
                ):
                    found.append((sid, run[0]["page"], run[0]["element"], run[0]["_ts"]))
                run = [e] if e["type"] == "click" else []
    return sorted(found)


@pytest.mark.parametrize("which", ["short", "long"])
def test_truth_rage_bursts_exact(which: str, request: pytest.FixtureRequest) -> None:
    events, tr = request.getfixturevalue(which)
    mine = sorted((b["session_id"], b["page"], b["element"], b["ts"]) for b in tr["rage_bursts"])
    assert mine == _naive_bursts(events)
    assert all(b["source"] in ("natural", "incident") for b in tr["rage_bursts"])


def test_natural_behaviour_rates(long: tuple[list[SimEvent], dict[str, Any]]) -> None:
    events, tr = long
    sessions = {e.key for e in events if e.stream == "clickstream"}
    natural = [b for b in tr["rage_bursts"] if b["source"] == "natural"]
    assert 0 < len(natural) < 0.03 * len(sessions)
    clicks = [e for e in events if e.event["type"] == "click"]
    doubles = sum(1 for a, b in itertools.pairwise(clicks)
                  if a.key == b.key and a.event["element"] == b.event["element"]
                  and b.ts - a.ts < 0.5)
    assert doubles > 0.01 * len(clicks)


@pytest.mark.parametrize("which", ["short", "long"])
def test_truth_orders_exact(which: str, request: pytest.FixtureRequest) -> None:
    events, tr = request.getfixturevalue(which)
    end = tr["end"]
    promised: dict[str, float] = {}
    delivered: dict[str, float] = {}
    first_contact: dict[str, float] = {}
    for ev in events:
        e = ev.event
        if ev.stream == "deliveries":
            if "promised_by" in e:
                promised[e["order_id"]] = parse_timestamp(e["promised_by"])
            if e["type"] == "delivered":
                delivered[e["order_id"]] = ev.ts
        elif e["type"] == "contact_opened" and e.get("order_id"):
            first_contact.setdefault(e["order_id"], ev.ts)
    seen = {o["order_id"]: o for o in tr["orders"] if o["promise_seen"]}
    assert set(seen) == set(promised)
    for oid, p in promised.items():
        o = seen[oid]
        assert o["promised_by"] == p
        assert o["delivered_ts"] == delivered.get(oid)
        d = delivered.get(oid)
        expected = (d > p) if d is not None else (True if p < end else None)
        assert o["late"] == expected
    assert {o["order_id"]: o["first_contact_ts"] for o in tr["orders"]
            if o["first_contact_ts"] is not None} == first_contact


def test_truth_orders_shape(long: tuple[list[SimEvent], dict[str, Any]]) -> None:
    _, tr = long
    orders = [o for o in tr["orders"] if o["promise_seen"]]
    days = [(o["promised_by"] - o["created"]) / DAY for o in orders]
    assert min(days) >= 2.0
    assert max(days) <= 6.0
    late = [o for o in orders if o["late"]]
    contacted = [o for o in late if o["first_contact_ts"] is not None]
    assert contacted and len(contacted) < len(late)
    after_due = sum(1 for o in contacted if o["first_contact_ts"] > o["promised_by"])
    assert 0.08 * len(late) <= after_due <= 0.6 * len(late), (after_due, len(late))


@pytest.mark.parametrize("which", ["short", "long"])
def test_truth_repeat_contacts_and_detractors_exact(
    which: str, request: pytest.FixtureRequest
) -> None:
    events, tr = request.getfixturevalue(which)
    opened: dict[str, list[tuple[float, str]]] = defaultdict(list)
    repeats = []
    detractors = []
    for ev in events:
        e = ev.event
        if e["type"] == "contact_opened":
            hist = opened[e["customer_id"]]
            hist.append((ev.ts, e["contact_id"]))
            window = [c for t, c in hist if ev.ts - t <= 7 * DAY]
            if len(window) >= 3:
                repeats.append((e["customer_id"], tuple(window), ev.ts))
        elif e["type"] == "survey_response" and (
            e.get("csat", 5) <= 2 or e.get("nps", 10) <= 6 or e.get("ces", 1) >= 6
        ):
            detractors.append((e["customer_id"], e["contact_id"], ev.ts))
    assert [(r["customer_id"], tuple(r["contact_ids"]), r["ts"])
            for r in tr["repeat_contacts"]] == repeats
    assert [(d["customer_id"], d["contact_id"], d["ts"]) for d in tr["detractors"]] == detractors
    if which == "long":
        assert repeats and detractors
        surveys = sum(1 for e in events if e.event["type"] == "survey_response")
        assert 0.05 * surveys < len(detractors) < 0.5 * surveys


def test_truth_is_json_and_labelled(short: tuple[list[SimEvent], dict[str, Any]]) -> None:
    _, tr = short
    doc = orjson.loads(orjson.dumps(tr))
    assert doc["start_iso"] == format_ts(SHORT.start)
    for inc in doc["incidents"]:
        assert {"name", "params", "labels", "start", "end", "start_iso", "end_iso"} <= set(inc)
        assert parse_timestamp(inc["start_iso"]) == inc["start"]
    assert doc["counts"]["events"] == sum(doc["counts"]["per_stream"].values())


# --- batching and encoding ------------------------------------------------------------------

def test_batches_share_key_and_cover_every_event(short: tuple[list[SimEvent],
                                                              dict[str, Any]]) -> None:
    events = short[0][:5000]
    seen: list[str] = []
    for msg in batch_messages(events, batch_size=4):
        raw = encode(msg)
        result = parse_message(Stream(msg.stream), raw)
        assert not result.rejections
        if msg.stream == "clickstream":
            assert raw.startswith(b"[") and 1 <= len(msg.events) <= 4
            assert {e["session_id"] for e in msg.events} == {msg.key}
        else:
            assert raw.startswith(b"{")
        seen.extend(e["event_id"] for e in msg.events)
    assert sorted(seen) == sorted(e.event["event_id"] for e in events)
    singles = list(batch_messages(events, batch_size=1))
    assert len(singles) == len(events) and all(encode(m).startswith(b"{") for m in singles)


def test_iter_encoded_and_cli_config() -> None:
    cfg = SimulationConfig.from_cli(rate=200, duration=10, speedup=60, seed=4,
                                    incidents=["error_storm:page=/cart"])
    assert cfg.sim_seconds == 600 and cfg.events_per_sim_second == pytest.approx(200 / 60)
    assert cfg.incidents[0].name == "error_storm"
    live = SimulationConfig.from_cli(rate=50, duration=10, seed=4)
    assert live.sim_seconds == 10 and live.events_per_sim_second == 50
    items = list(iter_encoded(cfg, batch_size=3))
    assert items
    for stream, key, value in items:
        result = parse_message(Stream(stream), value)
        assert not result.rejections
        assert all(getattr(e, KEY_FIELD[stream]).encode() == key for e in result.events)


def test_first_contact_about_an_order_follows_what_the_customer_sees(
    long: tuple[list[SimEvent], dict[str, Any]],
) -> None:
    """Customers ask about an order before it ships, after its tracking stalled for a day, after
    its promise passed, or after delivery; never while it looks normal."""
    events, tr = long
    stale = LONG.stale_tracking_hours * HOUR
    scans: dict[str, list[tuple[float, str]]] = {}
    first: dict[str, float] = {}
    for ev in events:
        e = ev.event
        if ev.stream == "deliveries":
            scans.setdefault(e["order_id"], []).append((ev.ts, e["type"]))
        elif e["type"] == "contact_opened" and e.get("order_id"):
            first.setdefault(e["order_id"], ev.ts)
    promise = {o["order_id"]: o["promised_by"] for o in tr["orders"]}
    why: dict[str, int] = {"before shipping": 0, "stalled": 0, "promise passed": 0, "delivered": 0}
    for order_id, ts in first.items():
        seen = [(t, s) for t, s in scans.get(order_id, []) if t <= ts]
        statuses = {s for _, s in seen}
        if "delivered" in statuses:
            why["delivered"] += 1
        elif order_id in promise and ts > promise[order_id]:
            why["promise passed"] += 1
        elif "shipped" not in statuses:
            why["before shipping"] += 1
        else:
            assert seen and ts - seen[-1][0] >= stale, (order_id, ts, seen)
            why["stalled"] += 1
    assert all(why.values()), why
