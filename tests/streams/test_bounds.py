"""Cardinality and state bounds: a flood of distinct labels and keys through the handlers (no Kafka).

The series on ``/metrics`` stay within :func:`streams.bounds.series_bounds` (per family and in
total) and the state the handlers keep empties once event time passes every horizon.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.bounds import label_values, series_bound, series_bounds
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.labels import OTHER
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs, StreamHandler
from streams.settings import Settings
from streams.topics import Store, Topic

T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
DAY = 86400.0
STATUSES = ("created", "shipped", "in_transit", "out_for_delivery", "failed_attempt", "exception", "delivered")
CHANNELS = ("phone", "chat", "email", "social", "self_service")


def iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, UTC).isoformat()


@dataclass
class Worker:
    """The handlers of one worker; ``cx.signals`` goes straight to the customers handler."""

    ctx: Context
    clickstream: ClickstreamHandler
    contacts: ContactsHandler
    deliveries: DeliveriesHandler
    customers: CustomersHandler

    @classmethod
    def create(cls, settings: Settings) -> Worker:
        ctx = Context.create(settings, Metrics(CollectorRegistry()))
        ctx.progress_wall = None  # a flood in no wall time: every progress report goes out
        return cls(ctx, ClickstreamHandler(ctx), ContactsHandler(ctx), DeliveriesHandler(ctx), CustomersHandler(ctx))

    def send(self, handler: StreamHandler, key: str, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 1000):  # CXPULSE_MAX_BATCH_EVENTS
            self._route(handler.handle(orjson.dumps(events[start : start + 1000]), key.encode()))

    def _route(self, out: Outputs) -> None:
        for record in out.records:
            if record.topic == Topic.SIGNALS and record.partition is None:
                self._route(self.customers.handle(record.value, record.key, 0))
            elif record.topic == Topic.SIGNALS and record.partition == 0:
                # Every message here comes on one input partition, standing for all of them:
                # its progress is every input partition's (one cx.signals partition, 0).
                progress = orjson.loads(record.value)
                for p in range(self.ctx.settings.partitions):
                    value = orjson.dumps({**progress, "partition": p})
                    self._route(self.customers.handle(value, record.key, 0))

    def tick(self, t: float) -> None:
        """One event per stream at ``t``: the clocks move, state past its horizon goes."""
        self.send(self.clickstream, "tick", [_view("tick", f"tick-v-{t}", t, "/tick")])
        opened = _contact("tick", f"tick-k-{t}", t, "contact_opened", channel="chat", reason="tick", complaint=True)
        self.send(self.contacts, "tick", [opened])
        self.send(self.deliveries, f"tick-{t}", [_order(f"tick-{t}", "delivered", t, "tick", "tick")])


def _view(session: str, event_id: str, t: float, page: str, kind: str = "page_view", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ts": iso(t), "type": kind, "session_id": session, "page": page, **extra}


def _contact(customer: str, contact: str, t: float, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{contact}-{kind}",
        "ts": iso(t),
        "type": kind,
        "contact_id": contact,
        "customer_id": customer,
        **extra,
    }


def _order(order: str, status: str, t: float, carrier: str, region: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{order}-{status}",
        "ts": iso(t),
        "type": status,
        "order_id": order,
        "customer_id": f"c-{order}",
        "carrier": carrier,
        "region": region,
        **extra,
    }


def _page(i: int) -> str:
    return f"/p/{_word(i)}/x" if i % 2 else f"/a/b/c{_word(i)}"  # no digits: not an id, a new template


def _word(i: int) -> str:
    out = []
    for _ in range(6):
        i, d = divmod(i, 26)
        out.append(chr(97 + d))
    return "".join(out)


def _clicks(pages: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every page viewed; the first 60 pages also get a rage burst of dead clicks and an error click."""
    t = 0.0
    for first in range(0, pages, 1000):
        session, events = f"s{first}", []
        for i in range(first, min(first + 1000, pages)):
            page, t = _page(i), t + 0.001
            events.append(_view(session, f"v{i}", t, page))
            if i < 60:
                for n in range(3):
                    t += 0.2
                    events.append(
                        _view(session, f"c{i}-{n}", t, page, "click", element="button#pay", x=5, y=5, no_response=True)
                    )
                t += 0.1
                events.append(_view(session, f"e{i}", t, page, "error", message="TypeError"))
        yield session, events


def flood(settings: Settings, pages: int, labels: int) -> Worker:
    """``pages`` distinct pages, ``labels`` distinct reasons, carriers and regions, every key new."""
    w = Worker.create(settings)
    for session, events in _clicks(pages):
        w.send(w.clickstream, session, events)
    for i in range(labels):  # a complaint per customer; the first ones resolved, with a detractor survey
        customer, contact, t = f"c{i}", f"k{i}", 600.0 + i * 0.01
        opened = _contact(
            customer, contact, t, "contact_opened", channel=CHANNELS[i % 5], reason=f"r{i}", complaint=True
        )
        w.send(
            w.contacts,
            customer,
            [opened]
            if i >= 100
            else [
                opened,
                _contact(customer, contact, t + 60, "contact_resolved", first_contact_resolution=i % 2 == 0),
                _contact(customer, contact, t + 120, "survey_response", csat=1, nps=3, ces=7),
            ],
        )
    # Every lane of the capped grid with every status (one on time, one late) ...
    grid = int(settings.max_label_values * 1.3) + 1
    for n in range(grid * grid):
        carrier, region, order, t = f"k{n // grid}", f"g{n % grid}", f"o{n}", 1200.0 + n * 0.01
        promise = iso(t + (60 if n % 2 else 10 * DAY))
        w.send(
            w.deliveries,
            order,
            [
                _order(order, status, t + 1 + k * 10, carrier, region, promised_by=promise)
                for k, status in enumerate(STATUSES)
            ],
        )
    # ... then a new carrier and region per order, and open orders: they expire 21 days after
    # their last event.
    for n in range(labels):
        w.send(w.deliveries, f"d{n}", [_order(f"d{n}", "delivered", 1500.0 + n * 0.01, f"carrier{n}", f"region{n}")])
    for n in range(500):
        order, t = f"open{n}", 1800.0 + n
        w.send(w.deliveries, order, [_order(order, "shipped", t, f"k{n}", f"g{n}", promised_by=iso(t + 3600))])
    return w


def samples(w: Worker) -> dict[str, list[Any]]:
    """The samples of each family on the worker's ``/metrics`` (rendered as Prometheus scrapes it)."""
    text = generate_latest(w.ctx.metrics.registry).decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


CASES = {
    "defaults, 100k pages, 10k labels": (Settings(), 100_000, 10_000),
    "small caps": (Settings(max_pages=5, max_label_values=3, partitions=2), 2_000, 500),
}


@pytest.fixture(scope="module", params=list(CASES))
def flooded(request: pytest.FixtureRequest) -> tuple[Settings, Worker]:
    settings, pages, labels = CASES[request.param]
    return settings, flood(settings, pages, labels)


def test_every_metric_family_has_a_documented_bound() -> None:
    registry = Metrics(CollectorRegistry()).registry
    assert {family.name for family in registry.collect()} == set(series_bounds(Settings()))


def test_series_stay_within_the_bound_after_a_flood_of_distinct_labels(flooded: tuple[Settings, Worker]) -> None:
    settings, w = flooded
    bounds = series_bounds(settings)
    scraped = samples(w)
    over = {name: (len(s), bounds[name]) for name, s in scraped.items() if len(s) > bounds[name]}
    assert not over
    assert sum(len(s) for s in scraped.values()) <= series_bound(settings)
    # The carrier x region families reach their bound: the formula is what a flood costs.
    assert len(scraped["cxpulse_delivery_status"]) == bounds["cxpulse_delivery_status"]
    assert len(scraped["cxpulse_page_views"]) == bounds["cxpulse_page_views"]


def test_capped_labels_take_at_most_their_cap_plus_other(flooded: tuple[Settings, Worker]) -> None:
    settings, w = flooded
    values: dict[str, set[str]] = {}
    for name, family in samples(w).items():
        if name in ("cxpulse_events_rejected", "cxpulse_notifications_suppressed"):
            continue  # their "reason" is a closed set, not the contact reason
        for sample in family:
            for label, value in sample.labels.items():
                values.setdefault(label, set()).add(value)
    pages = values["page"]
    assert len(pages) == settings.max_pages + 1 and OTHER in pages
    for label, most in label_values(settings).items():
        assert len(values[label]) <= most, label
    assert "unknown" not in set().union(*values.values())


def test_state_empties_once_event_time_passes_every_horizon(flooded: tuple[Settings, Worker]) -> None:
    _, w = flooded
    stores = w.ctx.stores
    assert w.clickstream.frustration.active_sessions > 0 and len(w.contacts.contacts) > 0
    assert len(stores[Store.ORDERS]) > 0 and len(stores[Store.CONTACTS]) > 0 and len(stores[Store.FRUSTRATION]) + len(
        stores[Store.HELD]
    ) > 0
    w.tick(22 * DAY)  # past sessions (30 min), dedup (1 h), contacts (7 d), orders (21 d)
    w.tick(22 * DAY + 3600)  # the policy store is swept once per event-time hour
    assert w.clickstream.frustration.active_sessions <= 1  # the tick's own session
    assert len(w.contacts.contacts) <= 2  # the ticks' own contacts
    assert len(stores[Store.ORDERS]) == 0 and all(not d._by_cr for d in w.deliveries.monitors.values())
    assert len(stores[Store.CONTACTS]) <= 1 and len(stores[Store.FRUSTRATION]) <= 1 and len(stores[Store.POLICY]) == 0
    assert len(stores[Store.HELD]) <= 1  # the tick's own signals, until the next progress
    for handler in (w.clickstream, w.contacts, w.deliveries):
        assert sum(len(d) for d in handler._dedup.values()) <= 2
    # Each partition's transit model learns per lane, of which there are as many as label
    # combinations: lanes x partitions in all.
    lanes = w.ctx.settings.max_label_values + 1
    assert len(w.deliveries.monitors) <= max(1, w.ctx.settings.partitions)
    for delays in w.deliveries.monitors.values():
        assert len(delays.model.transit) <= lanes * lanes + lanes + 1


def test_a_known_contact_expires_a_week_after_its_last_open_or_resolution() -> None:
    w = Worker.create(Settings())
    opened = _contact("c1", "k1", 0, "contact_opened", channel="chat", reason="billing", complaint=False)
    resolved = _contact("c1", "k1", 6 * DAY, "contact_resolved", first_contact_resolution=True)
    w.send(w.contacts, "c1", [opened])
    w.send(w.contacts, "c1", [resolved])
    w.send(w.contacts, "c2", [_contact("c2", "k2", 10 * DAY, "survey_response", csat=5)])
    assert "k1" in w.contacts.contacts  # resolved 4 days ago
    w.send(w.contacts, "c2", [_contact("c2", "k3", 13 * DAY + 1, "survey_response", csat=5)])
    assert "k1" not in w.contacts.contacts
