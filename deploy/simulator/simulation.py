"""Deterministic CX traffic simulator: clickstream sessions, support contacts, delivery tracking.

Pure generation (no Kafka here; :mod:`deploy.simulator.producer` paces and produces). Every entity
(session, contact, order) is a small generator process; a heap merges them into one stream in
event-time order. One ``random.Random(seed)`` drives everything and processes are resumed in a
deterministic order (heap ties broken by a sequence number), so a seed fixes every byte.

Shape of the traffic:

* daily seasonality (low around 03:00 UTC, peak around 15:00 UTC) and a milder weekly one; by
  default the base rate is normalised so that the *mean* density over the simulated span is
  ``events_per_sim_second`` (so a short run at night still has the requested rate);
* clickstream: sessions (about half known customers) with page views, clicks (CSS selector,
  text, coordinates), scrolls, selections, rare client errors, logins; sometimes double
  clicks, rarely a natural rage burst (3-5 fast clicks), rarely a dead click;
* contacts: opened -> resolved (first-contact resolution mostly) -> sometimes a survey;
  unresolved contacts often come back; a few frequent contacters;
* deliveries: created -> shipped -> in_transit scans -> out_for_delivery -> delivered over
  days, per carrier/region transit times, ~90-95% on time, occasional failed attempts and
  exceptions.
* contacts about an order follow what its customer can see: a few ask about a fresh order
  before it ships (address change, cancellation: ``order_query_probability``), some chase when
  the tracking page has shown no new scan for ``stale_tracking_hours``
  (``stale_contact_probability``), many chase once the promised date has passed undelivered
  (``late_contact_probability``), and spontaneous delivery contacts sometimes concern an
  already delivered order (damaged, missing item). Nobody asks "where is my order" about an
  order whose tracking looks normal and whose promise has not passed.

Warm-up: orders (``delivery_warmup_seconds``), sessions and contacts start before ``start``,
so a run begins in steady state; events before ``start`` are generated but never emitted.

Incidents (``--incident NAME[:k=v,...]``): ``complaint_spike``, ``rage_click_storm``,
``carrier_delay``, ``error_storm``; see :data:`INCIDENT_PARAMS`. Times (``at``, ``duration``)
are seconds relative to ``start`` and accept the suffixes ``s``, ``m``, ``h``, ``d``.

Ground truth (:func:`truth`) is book-kept from the very events that :func:`generate` yields.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
from bisect import bisect
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

#: Monday 2024-01-01 00:00:00 UTC: the default start of event time (reproducible runs).
DEFAULT_START = 1_704_067_200.0

STREAMS = ("clickstream", "contacts", "deliveries")
DEFAULT_TOPICS = {
    "clickstream": "cx.clickstream",
    "contacts": "cx.contacts",
    "deliveries": "cx.deliveries",
}

HOUR = 3600.0
DAY = 86400.0

#: Rage burst definition used by the ground truth (and by the generator's injected bursts):
#: a run of consecutive clicks of one session on the same page and element, with no
#: ``scroll``, ``selection`` or ``page_view`` between them, each less than
#: ``RAGE_MAX_GAP_S`` after the previous one and less than ``RAGE_MAX_DIST_PX`` from the
#: run's first click; it is a burst once 3 consecutive clicks of the run span less than
#: ``RAGE_MAX_GAP_S``. One burst per run, reported with the run's first click.
RAGE_MIN_CLICKS = 3
RAGE_MAX_GAP_S = 1.0
RAGE_MAX_DIST_PX = 30.0
#: Repeat contact: the 3rd (or later) contact_opened of a customer within this window.
REPEAT_WINDOW_S = 7 * DAY
REPEAT_MIN_CONTACTS = 3


# --------------------------------------------------------------------------------------------
# Page catalogue
# --------------------------------------------------------------------------------------------

#: (template, weight, [(css selector, element text)]). ``{id}`` is replaced by a number.
PAGES: tuple[tuple[str, float, tuple[tuple[str, str | None], ...]], ...] = (
    ("/", 14.0, (("a.hero-cta", "Shop now"), ("a.nav-search", "Search"),
                 ("a.nav-account", "Account"), ("img.banner", None))),
    ("/search", 16.0, (("input#q", None), ("button.search-submit", "Search"),
                       ("a.result-link", "View product"), ("button.filter-apply", "Apply"))),
    ("/products/{id}", 26.0, (("button#add-to-cart", "Add to cart"),
                              ("a.size-guide", "Size guide"), ("div.gallery img", None),
                              ("button.wishlist", "Save"))),
    ("/cart", 8.0, (("button#checkout", "Checkout"), ("button.qty-plus", "+"),
                    ("a.remove-item", "Remove"))),
    ("/checkout", 6.0, (("button#place-order", "Place order"), ("input#coupon", None),
                        ("button.apply-coupon", "Apply"), ("select#shipping", None))),
    ("/orders/{id}", 7.0, (("a.track-package", "Track package"),
                           ("button.return-item", "Return"),
                           ("a.contact-support", "Contact support"))),
    ("/account", 6.0, (("a.orders", "Your orders"), ("button.save-profile", "Save"),
                       ("a.logout", "Log out"))),
    ("/help", 5.0, (("input#help-search", None), ("a.faq-delivery", "Where is my order?"),
                    ("button#chat-start", "Chat with us"))),
    ("/login", 2.0, (("button#login", "Log in"), ("a.forgot-password", "Forgot password?"),
                     ("input#email", None))),
)
PAGE_TEMPLATES = tuple(p[0] for p in PAGES)
_PAGE_ELEMENTS = {p[0]: p[2] for p in PAGES}

_ERROR_MESSAGES = (
    "TypeError: Cannot read properties of undefined (reading 'price')",
    "NetworkError: GET /api/recommendations failed (503)",
    "Timeout: /api/cart did not answer within 10s",
    "ChunkLoadError: Loading chunk 7 failed",
)

_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def page_template(page: str) -> str:
    """The route template of a concrete page: ``/orders/8812`` -> ``/orders/{id}``."""
    return _ID_SEGMENT.sub("/{id}", page)


def _element_xy(index: int) -> tuple[float, float]:
    return 120.0 + 260.0 * (index % 4), 180.0 + 140.0 * index


# --------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------

_MINUTE_PREFIX: dict[int, str] = {}


def _minute_prefix(minute: int) -> str:
    if len(_MINUTE_PREFIX) > 200_000:
        _MINUTE_PREFIX.clear()
    text = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
    _MINUTE_PREFIX[minute] = text
    return text


def format_ts(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2024-01-01T00:00:01.250Z`` (fast, cached)."""
    minute, msec = divmod(int(ts * 1000.0 + 0.5), 60_000)
    prefix = _MINUTE_PREFIX.get(minute) or _minute_prefix(minute)
    return f"{prefix}{msec // 1000:02d}.{msec % 1000:03d}Z"


def stamp(ts: float) -> tuple[float, str]:
    """``(round_ts(ts), format_ts(ts))`` in one go."""
    ms = int(ts * 1000.0 + 0.5)
    minute, msec = divmod(ms, 60_000)
    prefix = _MINUTE_PREFIX.get(minute) or _minute_prefix(minute)
    return ms / 1000.0, f"{prefix}{msec // 1000:02d}.{msec % 1000:03d}Z"


def round_ts(ts: float) -> float:
    """The float that :func:`format_ts` represents (millisecond precision)."""
    return int(ts * 1000.0 + 0.5) / 1000.0


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": HOUR, "d": DAY}


def parse_duration(text: str | float) -> float:
    """``90`` / ``"90s"`` / ``"15m"`` / ``"2h"`` / ``"1.5d"`` to seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 600, 10m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


# --------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------

#: Parameters of each incident and their meaning (all optional; defaults are drawn from the
#: seed). ``at``/``duration`` are event-time seconds relative to the start (suffix s/m/h/d ok).
INCIDENT_PARAMS: dict[str, dict[str, str]] = {
    "complaint_spike": {
        "reason": "contact reason whose complaints spike (default: random reason)",
        "factor": "complaint rate multiplier for that reason, default random 3-6",
        "channel": "channel most spike contacts use (70%), default random; 'mix' = normal mix",
        "at": "start offset, default random in 20-60% of the run",
        "duration": "default random 10-30 minutes",
    },
    "rage_click_storm": {
        "page": "page template, e.g. /checkout or /products/{id} (default random)",
        "element": "CSS selector on that page (default random element of the page)",
        "share": "probability that a session on the page rage-clicks, default 0.5",
        "boost": "extra probability that a page view goes to the page, default 0.15",
        "at": "start offset, default random in 20-60% of the run",
        "duration": "default random 10-30 minutes",
    },
    "carrier_delay": {
        "carrier": "carrier (default random)",
        "region": "region (default random)",
        "factor": "transit time multiplier for orders shipped in the window, default 1.5-3",
        "silent": "share of affected orders whose in-transit scans go silent, default 0.5",
        "at": "start offset of the shipping window, default random in 5-40% of the run",
        "duration": "shipping window, default random 2-8 hours",
    },
    "error_storm": {
        "page": "page template (default random)",
        "rate": "probability of an error burst per page view of that page, default 0.6",
        "boost": "extra probability that a page view goes to the page, default 0.1",
        "at": "start offset, default random in 20-60% of the run",
        "duration": "default random 10-30 minutes",
    },
}
INCIDENT_NAMES = tuple(INCIDENT_PARAMS)


@dataclass(frozen=True)
class Incident:
    """An incident request: a name and optional parameters (strings or numbers)."""

    name: str
    params: Mapping[str, str | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in INCIDENT_PARAMS:
            raise ValueError(
                f"unknown incident {self.name!r}; expected one of {', '.join(INCIDENT_NAMES)}"
            )
        allowed = INCIDENT_PARAMS[self.name]
        for key in self.params:
            if key not in allowed:
                raise ValueError(
                    f"incident {self.name}: unknown parameter {key!r}; "
                    f"expected some of {', '.join(allowed)}"
                )

    @classmethod
    def parse(cls, text: str) -> Incident:
        """``"complaint_spike:reason=billing,at=3600,duration=20m,factor=4"`` -> Incident."""
        name, _, rest = text.strip().partition(":")
        params: dict[str, str | float] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"incident {text!r}: expected key=value, got {part!r}")
            params[key.strip()] = value.strip()
        return cls(name.strip(), params)


@dataclass(frozen=True)
class ResolvedIncident:
    """An incident with every parameter fixed and its absolute event-time window."""

    name: str
    params: dict[str, Any]
    labels: dict[str, str]
    start: float
    end: float

    def active(self, ts: float) -> bool:
        return self.start <= ts < self.end


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulation. Same config -> same events, byte for byte."""

    seed: int = 1
    start: float = DEFAULT_START
    sim_seconds: float = 3600.0
    events_per_sim_second: float = 50.0
    incidents: tuple[Incident, ...] = ()
    #: Share of events per stream (normalised). Deliveries include warm-up orders' events.
    mix: Mapping[str, float] = field(
        default_factory=lambda: {"clickstream": 0.93, "contacts": 0.03, "deliveries": 0.04}
    )
    n_customers: int = 20_000
    carriers: tuple[str, ...] = ("dhl", "ups", "fedex", "usps", "dpd")
    regions: tuple[str, ...] = ("north", "south", "east", "west", "central")
    reasons: tuple[str, ...] = ("delivery", "billing", "product", "account", "returns")
    channels: tuple[str, ...] = ("phone", "chat", "email", "social", "self_service")
    #: Amplitude of the daily cycle (0 = flat); traffic is lowest at 03:00 UTC.
    daily_amplitude: float = 0.7
    #: Multiplier per weekday, Monday first (all 1.0 = no weekly pattern).
    weekly: tuple[float, ...] = (1.0, 1.02, 1.02, 1.0, 0.97, 0.85, 0.8)
    #: Scale the base rate so the mean density over the run is ``events_per_sim_second``.
    normalize_rate: bool = True
    complaint_probability: float = 0.25
    logged_in_share: float = 0.55
    double_click_probability: float = 0.05
    natural_rage_probability: float = 0.002
    dead_click_probability: float = 0.02
    error_probability: float = 0.01
    error_click_probability: float = 0.003
    survey_probability: float = 0.3
    #: Share of late orders whose customer contacts support 2-36 h after the promise passed.
    late_contact_probability: float = 0.4
    #: Share of orders whose customer contacts support about them before they ship.
    order_query_probability: float = 0.03
    #: Tracking without a new scan for this long prompts some customers to chase...
    stale_tracking_hours: float = 24.0
    #: ... this share of them, within the next 12 h unless a scan comes first.
    stale_contact_probability: float = 0.3
    delivery_warmup_seconds: float = 5 * DAY
    #: Sessions and contacts also start before ``start`` so the run begins in steady state
    #: (events before ``start`` are generated but not emitted).
    session_warmup_seconds: float = 900.0
    contact_warmup_seconds: float = 6 * HOUR

    def __post_init__(self) -> None:
        if self.sim_seconds <= 0:
            raise ValueError("sim_seconds must be positive")
        if self.events_per_sim_second <= 0:
            raise ValueError("events_per_sim_second must be positive")
        if len(self.weekly) != 7:
            raise ValueError("weekly needs 7 factors, Monday first")
        object.__setattr__(self, "incidents", tuple(self.incidents))

    @property
    def end(self) -> float:
        return self.start + self.sim_seconds

    @classmethod
    def from_cli(
        cls,
        *,
        rate: float,
        duration: float,
        seed: int,
        speedup: float | None = None,
        incidents: Iterable[str | Incident] = (),
        start: float | None = None,
        **knobs: Any,
    ) -> SimulationConfig:
        """``--rate R --duration D --speedup X``: D wall seconds at about R events/s with event
        time running X times faster, i.e. ``sim_seconds = D*X`` and density ``R/X``."""
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        x = 1.0 if speedup is None else float(speedup)
        if x <= 0:
            raise ValueError("speedup must be positive")
        parsed = tuple(i if isinstance(i, Incident) else Incident.parse(i) for i in incidents)
        return cls(
            seed=seed,
            start=DEFAULT_START if start is None else float(start),
            sim_seconds=float(duration) * x,
            events_per_sim_second=float(rate) / x,
            incidents=parsed,
            **knobs,
        )


def resolve_incidents(config: SimulationConfig) -> list[ResolvedIncident]:
    """Fill in every incident parameter (random defaults drawn from the seed)."""
    out = []
    span = config.sim_seconds
    for index, inc in enumerate(config.incidents):
        rng = random.Random(f"{config.seed}:{index}:{inc.name}")
        p = dict(inc.params)

        def window(lo: float, hi: float, dmin: float, dmax: float, p: dict[str, Any] = p,
                   rng: random.Random = rng, name: str = inc.name) -> tuple[float, float]:
            at = parse_duration(p["at"]) if "at" in p else round(rng.uniform(lo, hi) * span)
            if "duration" in p:
                dur = parse_duration(p["duration"])
            else:
                dur = round(min(rng.uniform(dmin, dmax), max(60.0, span - at)))
            if dur <= 0:
                raise ValueError(f"incident {name}: duration must be positive")
            return float(at), float(dur)

        if inc.name == "complaint_spike":
            reason = str(p.get("reason") or rng.choice(config.reasons))
            factor = float(p["factor"]) if "factor" in p else round(rng.uniform(3.0, 6.0), 1)
            channel = str(p.get("channel") or rng.choice(config.channels))
            if channel != "mix" and channel not in config.channels:
                raise ValueError(f"complaint_spike: unknown channel {channel!r}")
            at, dur = window(0.2, 0.6, 600, 1800)
            params: dict[str, Any] = {"reason": reason, "factor": factor, "channel": channel}
            labels = {"reason": reason} | ({} if channel == "mix" else {"channel": channel})
        elif inc.name in ("rage_click_storm", "error_storm"):
            choices = ("/checkout", "/cart", "/products/{id}", "/search", "/login", "/account")
            page = page_template(str(p["page"])) if "page" in p else rng.choice(choices)
            if page not in _PAGE_ELEMENTS:
                raise ValueError(
                    f"{inc.name}: unknown page {page!r}; "
                    f"expected one of {', '.join(PAGE_TEMPLATES)}"
                )
            at, dur = window(0.2, 0.6, 600, 1800)
            if inc.name == "rage_click_storm":
                selectors = [sel for sel, _ in _PAGE_ELEMENTS[page]]
                # A storm's default target is something people rage at: a button or link,
                # not a text field or a stepper (rage detectors rightly ignore those).
                targets = [
                    sel for sel, text in _PAGE_ELEMENTS[page]
                    if not sel.startswith(("input", "select")) and text not in ("+", "-")
                ]
                element = str(p.get("element") or rng.choice(targets))
                if element not in selectors:
                    raise ValueError(
                        f"rage_click_storm: element {element!r} is not on {page}; "
                        f"expected one of {', '.join(selectors)}"
                    )
                params = {
                    "page": page,
                    "element": element,
                    "share": float(p.get("share", 0.5)),
                    "boost": float(p.get("boost", 0.15)),
                }
                labels = {"page": page, "element": element}
            else:
                params = {
                    "page": page,
                    "rate": float(p.get("rate", 0.6)),
                    "boost": float(p.get("boost", 0.1)),
                }
                labels = {"page": page}
        else:  # carrier_delay
            carrier = str(p.get("carrier") or rng.choice(config.carriers))
            region = str(p.get("region") or rng.choice(config.regions))
            if carrier not in config.carriers or region not in config.regions:
                raise ValueError(f"carrier_delay: unknown carrier/region {carrier}/{region}")
            factor = float(p["factor"]) if "factor" in p else round(rng.uniform(1.5, 3.0), 2)
            at, dur = window(0.05, 0.4, 2 * HOUR, 8 * HOUR)
            params = {
                "carrier": carrier,
                "region": region,
                "factor": factor,
                "silent": float(p.get("silent", 0.5)),
            }
            labels = {"carrier": carrier, "region": region}
        params |= {"at": at, "duration": dur}
        start = config.start + at
        out.append(ResolvedIncident(inc.name, params, labels, start, start + dur))
    return out


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------

class SimEvent(NamedTuple):
    """One generated event: its stream, message key, wire object (JSON-ready) and event time."""

    stream: str
    key: str
    event: dict[str, Any]
    ts: float


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


#: Rough mean events per entity, used to turn event shares into arrival rates.
_EVENTS_PER_SESSION = 12.8
_EVENTS_PER_CONTACT = 2.3
_EVENTS_PER_ORDER = 8.4
_CONTACT_BASE_SHARE = 0.9  # share of contacts that arrive spontaneously (rest: follow-ups etc.)

_Step = tuple[float, "SimEvent | None"]
_Process = Iterator[_Step]


class Simulation:
    """One run of the generator. Iterate :meth:`events`; afterwards :meth:`truth` is complete
    (when ``record_truth``)."""

    def __init__(self, config: SimulationConfig, *, record_truth: bool = False) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.incidents = resolve_incidents(config)
        self.record_truth = record_truth
        self._heap: list[tuple[float, int, _Process, SimEvent | None]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self._contacts = itertools.count(1)
        self._orders = itertools.count(1)
        self._id_prefix = f"e{config.seed}-"
        self.start = config.start
        self.end = config.end
        self._recorder = _TruthRecorder(self) if record_truth else None
        # Book-keeping used for truth only.
        self.planned_bursts: list[dict[str, Any]] = []
        self.order_info: dict[str, dict[str, Any]] = {}
        self.affected_orders: dict[int, list[str]] = {}
        self._delivered_orders: list[tuple[str, str]] = []
        self._setup_rates()
        self._started = False

    # -- rates ---------------------------------------------------------------------------
    def season(self, ts: float) -> float:
        cfg = self.config
        hour = (ts % DAY) / HOUR
        value = 1.0 + cfg.daily_amplitude * math.cos((hour - 15.0) * (math.pi / 12.0))
        return value * cfg.weekly[int((ts // DAY + 3) % 7)]

    def _setup_rates(self) -> None:
        cfg = self.config
        if cfg.normalize_rate:
            n = int(min(20_000, max(50, cfg.sim_seconds / 60)))
            step = cfg.sim_seconds / n
            mean = sum(self.season(cfg.start + (i + 0.5) * step) for i in range(n)) / n
        else:
            mean = 1.0
        total = sum(max(0.0, cfg.mix.get(s, 0.0)) for s in STREAMS) or 1.0
        base = cfg.events_per_sim_second / max(mean, 1e-6)
        share = {s: max(0.0, cfg.mix.get(s, 0.0)) / total for s in STREAMS}
        self.session_rate = base * share["clickstream"] / _EVENTS_PER_SESSION
        self.contact_rate = base * share["contacts"] / _EVENTS_PER_CONTACT * _CONTACT_BASE_SHARE
        self.order_rate = base * share["deliveries"] / _EVENTS_PER_ORDER
        self._reason_cum = _cumulative([4.0, 2.5, 2.0, 1.2, 1.5][: len(cfg.reasons)]
                                       + [1.0] * max(0, len(cfg.reasons) - 5))
        self._reason_total = sum(
            [4.0, 2.5, 2.0, 1.2, 1.5][: len(cfg.reasons)] + [1.0] * max(0, len(cfg.reasons) - 5)
        )
        ch_w = [3.0, 3.0, 2.0, 0.7, 1.3][: len(cfg.channels)] + [1.0] * max(
            0, len(cfg.channels) - 5
        )
        self._channel_cum = _cumulative(ch_w)
        self._page_cum = _cumulative([p[1] for p in PAGES])
        self._carrier_cum = _cumulative([3, 3, 2, 2, 1.5][: len(cfg.carriers)]
                                        + [1.0] * max(0, len(cfg.carriers) - 5))
        self._transit: dict[tuple[str, str], float] = {}
        carrier_h = [40.0, 44.0, 38.0, 56.0, 48.0]
        region_f = [1.0, 1.15, 0.95, 1.1, 0.9]
        for i, c in enumerate(cfg.carriers):
            for j, r in enumerate(cfg.regions):
                wiggle = 1.0 + 0.08 * math.sin(i * 7.3 + j * 3.1)
                self._transit[(c, r)] = (
                    carrier_h[i % 5] * region_f[j % 5] * wiggle * HOUR
                )

    def _pick(self, cum: list[float], items: Sequence[Any]) -> Any:
        return items[bisect(cum, self.rng.random() * cum[-1])]

    def _customer(self) -> str:
        rng = self.rng
        n = self.config.n_customers
        if rng.random() < 0.1:  # frequent contacters: 3% of the customers, 10% of picks
            return f"cust-{rng.randrange(max(1, n * 3 // 100)):06d}"
        return f"cust-{rng.randrange(n):06d}"

    # -- engine --------------------------------------------------------------------------
    def _spawn(self, proc: _Process) -> None:
        try:
            ts, ev = next(proc)
        except StopIteration:
            return
        heapq.heappush(self._heap, (ts, next(self._seq), proc, ev))

    def events(self) -> Iterator[SimEvent]:
        """The events of the run, in event-time order (ties in a fixed order)."""
        if self._started:
            raise RuntimeError("a Simulation can be iterated once")
        self._started = True
        cfg = self.config
        self._spawn(self._arrivals(
            self.session_rate, cfg.start - cfg.session_warmup_seconds, self._new_session))
        self._spawn(self._arrivals(
            self.contact_rate, cfg.start - cfg.contact_warmup_seconds, self._new_contact))
        self._spawn(self._arrivals(
            self.order_rate, cfg.start - cfg.delivery_warmup_seconds, self._new_order))
        for inc in self.incidents:
            if inc.name == "complaint_spike":
                self._spawn(self._complaint_spike(inc))
        heap = self._heap
        end = self.end
        start = self.start
        seq = self._seq
        replace = heapq.heapreplace
        pop = heapq.heappop
        observe = self._recorder.observe if self._recorder is not None else None
        while heap:
            top = heap[0]
            if top[0] >= end:
                break
            ev = top[3]
            if ev is not None and top[0] >= start:
                if observe is not None:
                    observe(ev)
                yield ev
            proc = top[2]
            try:
                ts, nxt = next(proc)
            except StopIteration:
                pop(heap)
                continue
            replace(heap, (ts, next(seq), proc, nxt))

    def truth(self) -> dict[str, Any]:
        if self._recorder is None:
            raise RuntimeError("Simulation(record_truth=True) is needed for truth()")
        return self._recorder.result()

    def _arrivals(
        self, rate: float, t0: float, spawn: Callable[[float], None]
    ) -> _Process:
        if rate <= 0:
            return
        expo = self.rng.expovariate
        season = self.season
        end = self.end
        t = t0
        while True:
            t += expo(rate * season(t))
            if t >= end:
                return
            yield t, None
            spawn(t)

    def _eid(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    # -- clickstream -----------------------------------------------------------------------
    def _new_session(self, t: float) -> None:
        self._spawn(self._session(t))

    def _session(self, t: float) -> _Process:
        cfg = self.config
        rng = self.rng
        rnd = rng.random
        uni = rng.uniform
        seed = cfg.seed
        sid = f"sess-{seed}-{next(self._sessions)}"
        customer = self._customer() if rnd() < cfg.logged_in_share else None
        storms = [i for i in self.incidents if i.name == "rage_click_storm"]
        errors = [i for i in self.incidents if i.name == "error_storm"]
        eid = self._eid

        def ev(t: float, etype: str, page: str) -> tuple[float, SimEvent]:
            ts, text = stamp(t)
            body: dict[str, Any] = {
                "event_id": eid(), "ts": text, "type": etype,
                "session_id": sid, "page": page,
            }
            if customer is not None:
                body["customer_id"] = customer
            return ts, SimEvent("clickstream", sid, body, ts)

        def click(t: float, page: str, sel: str, text: str | None, x: float, y: float,
                  dead: bool) -> tuple[float, SimEvent]:
            out = ev(t, "click", page)
            body = out[1].event
            body["element"] = sel
            if text is not None:
                body["element_text"] = text
            body["x"] = x
            body["y"] = y
            if dead:
                body["no_response"] = True
            return out

        n_pages = 1
        while n_pages < 25 and rnd() < 0.72:
            n_pages += 1
        if customer is not None and rnd() < 0.2:
            yield ev(t, "page_view", "/login")
            t += uni(4.0, 20.0)
            ok = rnd() < 0.95
            out = ev(t, "login", "/login")
            out[1].event["success"] = ok
            yield out
            if not ok:
                t += uni(5.0, 15.0)
                out = ev(t, "login", "/login")
                out[1].event["success"] = rnd() < 0.8
                yield out
            t += uni(1.0, 4.0)
        last_click_t = -1e18
        for _ in range(n_pages):
            template = self._pick(self._page_cum, PAGE_TEMPLATES)
            storm = None
            for inc in storms:
                if inc.start <= t < inc.end and rnd() < inc.params["boost"]:
                    template = inc.params["page"]
            for inc in errors:
                if inc.start <= t < inc.end and rnd() < inc.params["boost"]:
                    template = inc.params["page"]
            for inc in storms:
                if inc.start <= t < inc.end and template == inc.params["page"]:
                    storm = inc
            if "{id}" in template:
                number = rng.randrange(100, 10_000) if template[1] == "p" else rng.randrange(
                    1000, 100_000)
                page = template.replace("{id}", str(number))
            else:
                page = template
            elements = _PAGE_ELEMENTS[template]
            yield ev(t, "page_view", page)
            t += uni(0.5, 4.0)
            if rnd() < cfg.error_probability:
                out = ev(t, "error", page)
                out[1].event["message"] = _ERROR_MESSAGES[rng.randrange(len(_ERROR_MESSAGES))]
                yield out
                t += uni(0.5, 3.0)
            for inc in errors:
                if (inc.start <= t < inc.end and template == inc.params["page"]
                        and rnd() < inc.params["rate"]):
                    for _k in range(1 + int(rnd() * 3)):
                        out = ev(t, "error", page)
                        out[1].event["message"] = "HTTP 500: POST /api/v2/session failed"
                        yield out
                        t += uni(0.3, 4.0)
            if rnd() < 0.5:
                t += uni(1.0, 8.0)
                yield ev(t, "scroll", page)
            n_clicks = (0, 1, 1, 2, 2, 3, 4)[int(rnd() * 7)]
            for _c in range(n_clicks):
                t = max(t + uni(1.5, 14.0), last_click_t + 1.6)
                k = int(rnd() * len(elements))
                sel, text = elements[k]
                bx, by = _element_xy(k)
                x = round(bx + uni(-40.0, 40.0), 1)
                y = round(by + uni(-12.0, 12.0), 1)
                r = rnd()
                if r < cfg.natural_rage_probability:
                    t = yield from self._burst(t, sid, customer, page, sel, x, y,
                                               3 + int(rnd() * 3), click, "natural")
                elif r < cfg.natural_rage_probability + cfg.double_click_probability:
                    yield click(t, page, sel, text, x, y, False)
                    t += uni(0.1, 0.3)
                    yield click(t, page, sel, text, round(x + uni(-3, 3), 1),
                                round(y + uni(-3, 3), 1), False)
                else:
                    yield click(t, page, sel, text, x, y, rnd() < cfg.dead_click_probability)
                    # The click's action fails in front of the user: an error click.
                    failing = any(inc.start <= t < inc.end and template == inc.params["page"]
                                  for inc in errors)
                    if rnd() < (0.3 if failing else cfg.error_click_probability):
                        t += uni(0.1, 0.8)
                        out = ev(t, "error", page)
                        out[1].event["message"] = "HTTP 500: the action could not be completed"
                        yield out
                last_click_t = t
            if storm is not None and rnd() < storm.params["share"]:
                t = max(t + uni(1.5, 6.0), last_click_t + 1.6)
                sel = storm.params["element"]
                k = next(i for i, e in enumerate(elements) if e[0] == sel)
                bx, by = _element_xy(k)
                x = round(bx + uni(-30.0, 30.0), 1)
                y = round(by + uni(-8.0, 8.0), 1)
                t = yield from self._burst(t, sid, customer, page, sel, x, y,
                                           3 + int(rnd() * 6), click, "incident")
                last_click_t = t
            if rnd() < 0.05:
                t += uni(1.0, 6.0)
                yield ev(t, "selection", page)
            t += uni(3.0, 40.0)

    def _burst(self, t: float, sid: str, customer: str | None, page: str, sel: str,
               x: float, y: float, n: int, click: Callable[..., tuple[float, SimEvent]],
               source: str) -> Generator[_Step, None, float]:
        """``n`` (>=3) fast clicks on one element; returns the time of the last one."""
        rng = self.rng
        uni = rng.uniform
        text = None
        for s, tx in _PAGE_ELEMENTS[page_template(page)]:
            if s == sel:
                text = tx
        start = self.start
        kept: list[float] = []  # clicks inside the run (earlier ones are not emitted)
        for i in range(n):
            if i:
                t += uni(0.08, 0.25)
            yield click(t, page, sel, text, round(x + uni(-6, 6), 1), round(y + uni(-6, 6), 1),
                        source == "incident" or rng.random() < 0.5)
            if t >= start:
                kept.append(t)
                if len(kept) == RAGE_MIN_CLICKS and self.record_truth:
                    self.planned_bursts.append({
                        "session_id": sid, "customer_id": customer, "page": page,
                        "element": sel, "ts": round_ts(kept[0]), "source": source,
                    })
        return t

    # -- contacts ------------------------------------------------------------------------
    def _new_contact(self, t: float) -> None:
        self._spawn(self._contact(t))

    def _contact(
        self,
        t: float,
        customer: str | None = None,
        reason: str | None = None,
        complaint: bool | None = None,
        order_id: str | None = None,
        channel: str | None = None,
        depth: int = 0,
    ) -> _Process:
        cfg = self.config
        rng = self.rng
        rnd = rng.random
        if reason is None:
            reason = cfg.reasons[bisect(self._reason_cum, rnd() * self._reason_total)]
        if (reason == "delivery" and order_id is None and customer is None
                and self._delivered_orders and rnd() < 0.5):
            order_id, customer = self._delivered_orders[rng.randrange(len(self._delivered_orders))]
        if customer is None:
            customer = self._customer()
        if channel is None:
            channel = self._pick(self._channel_cum, cfg.channels)
        if complaint is None:
            complaint = rnd() < cfg.complaint_probability
        contact_id = f"ct-{cfg.seed}-{next(self._contacts)}"
        ts = round_ts(t)
        body: dict[str, Any] = {
            "event_id": self._eid(), "ts": format_ts(t), "type": "contact_opened",
            "contact_id": contact_id, "customer_id": customer, "channel": channel,
            "reason": reason, "complaint": complaint,
        }
        if reason == "delivery":
            body["order_id"] = order_id
        yield ts, SimEvent("contacts", customer, body, ts)
        handle = {
            "phone": (240.0, 1200.0), "chat": (300.0, 1800.0), "email": (120.0, 900.0),
            "social": (120.0, 900.0), "self_service": (30.0, 300.0),
        }.get(channel, (120.0, 900.0))
        handle_s = round(rng.uniform(*handle), 1)
        wait = {"email": rng.uniform(2 * HOUR, 30 * HOUR), "social": rng.uniform(HOUR, 12 * HOUR)
                }.get(channel, rng.uniform(30.0, 900.0))
        t += wait + handle_s
        fcr = rnd() < (0.65 if complaint else 0.82)
        ts = round_ts(t)
        body = {
            "event_id": self._eid(), "ts": format_ts(t), "type": "contact_resolved",
            "contact_id": contact_id, "customer_id": customer,
            "first_contact_resolution": fcr, "handle_seconds": handle_s,
        }
        yield ts, SimEvent("contacts", customer, body, ts)
        if not fcr and depth < 4 and rnd() < 0.6:
            self._spawn(self._contact(
                t + rng.uniform(HOUR, 72 * HOUR), customer, reason,
                rnd() < 0.5 or complaint, order_id, None, depth + 1,
            ))
        if rnd() < cfg.survey_probability:
            t += rng.uniform(300.0, DAY)
            bad = 0.15 + (0.15 if complaint else 0.0) + (0.15 if not fcr else 0.0)
            r = rnd()
            body = {"event_id": self._eid(), "ts": format_ts(t), "type": "survey_response",
                    "customer_id": customer, "contact_id": contact_id}
            if r < bad:
                body["csat"] = rng.randint(1, 2)
                nps, ces = rng.randint(0, 6), rng.randint(5, 7)
            elif r < bad + 0.12:
                body["csat"] = 3
                nps, ces = rng.randint(7, 8), rng.randint(3, 5)
            else:
                body["csat"] = rng.randint(4, 5)
                nps, ces = rng.randint(8, 10), rng.randint(1, 3)
            if rnd() < 0.6:
                body["nps"] = nps
            if rnd() < 0.4:
                body["ces"] = ces
            ts = round_ts(t)
            yield ts, SimEvent("contacts", customer, body, ts)

    def _complaint_spike(self, inc: ResolvedIncident) -> _Process:
        """Extra complaints of one reason: (factor-1) x the baseline complaint rate."""
        cfg = self.config
        rng = self.rng
        reason = inc.params["reason"]
        weights = [4.0, 2.5, 2.0, 1.2, 1.5][: len(cfg.reasons)] + [1.0] * max(
            0, len(cfg.reasons) - 5)
        share = weights[cfg.reasons.index(reason)] / sum(weights) if reason in cfg.reasons \
            else 0.2
        base = (self.contact_rate / _CONTACT_BASE_SHARE) * share * cfg.complaint_probability
        extra = max(0.0, inc.params["factor"] - 1.0) * base * 1.1
        if extra <= 0:
            return
        channel = inc.params["channel"]
        t = max(inc.start, self.start)
        while True:
            t += rng.expovariate(extra * self.season(t))
            if t >= inc.end or t >= self.end:
                return
            yield t, None
            ch = channel if channel != "mix" and rng.random() < 0.7 else None
            self._spawn(self._contact(t, None, reason, True, None, ch))

    # -- deliveries ----------------------------------------------------------------------
    def _new_order(self, t: float) -> None:
        self._spawn(self._order(t))

    def _order(self, created: float) -> _Process:
        cfg = self.config
        rng = self.rng
        rnd = rng.random
        uni = rng.uniform
        order_id = f"ord-{cfg.seed}-{next(self._orders)}"
        customer = self._customer()
        carrier = self._pick(self._carrier_cum, cfg.carriers)
        region = cfg.regions[int(rnd() * len(cfg.regions))]
        base = self._transit[(carrier, region)]
        handling = HOUR * min(30.0, max(1.0, rng.lognormvariate(math.log(8.0), 0.5)))
        shipped = created + handling
        transit = base * rng.lognormvariate(0.0, 0.22)
        promise = created + 10 * HOUR + 1.25 * base
        promise = (promise // DAY + 1) * DAY - 1.0  # end of that (UTC) day
        scan_gap = (4 * HOUR, 10 * HOUR)
        for idx, inc in enumerate(self.incidents):
            if (inc.name == "carrier_delay" and inc.start <= shipped < inc.end
                    and carrier == inc.params["carrier"] and region == inc.params["region"]):
                transit *= inc.params["factor"]
                if rnd() < inc.params["silent"]:
                    scan_gap = (20 * HOUR, 40 * HOUR)
                if self.record_truth:
                    self.affected_orders.setdefault(idx, []).append(order_id)
        arrive = shipped + transit
        exception_at = shipped + transit * uni(0.3, 0.7) if rnd() < 0.015 else None
        if exception_at is not None:
            arrive += uni(24 * HOUR, 72 * HOUR)
        ofd = arrive - uni(HOUR, 6 * HOUR)
        failed = rnd() < 0.03
        if failed:
            first_ofd, first_arrive = ofd, arrive
            ofd = arrive + uni(18 * HOUR, 24 * HOUR)
            arrive = ofd + uni(HOUR, 6 * HOUR)
        start = self.start
        if self.record_truth:
            self.order_info[order_id] = {
                "order_id": order_id, "customer_id": customer, "carrier": carrier,
                "region": region, "created": round_ts(created),
                "promised_by": round_ts(promise),
            }
        if arrive > promise and rnd() < cfg.late_contact_probability:
            when = promise + uni(2 * HOUR, 36 * HOUR)
            if when >= start:
                self._spawn(self._order_contact(when, customer, order_id))
        if rnd() < cfg.order_query_probability:
            when = uni(created, shipped)
            if when >= start:
                self._spawn(self._order_contact(when, customer, order_id, complaint=False))
        if arrive < start:  # a warm-up order that was over before the run: nothing to emit
            return
        steps: list[tuple[float, str]] = [(created, "created"), (shipped, "shipped")]
        last_ofd = first_ofd if failed else ofd
        scan = shipped + uni(*scan_gap)
        while scan < last_ofd - HOUR:
            if exception_at is not None and scan > exception_at:
                steps.append((exception_at, "exception"))
                exception_at = None
            steps.append((scan, "in_transit"))
            scan += uni(*scan_gap)
        if exception_at is not None and exception_at < last_ofd:
            steps.append((exception_at, "exception"))
        if failed:
            steps.append((first_ofd, "out_for_delivery"))
            steps.append((first_arrive, "failed_attempt"))
        steps.append((ofd, "out_for_delivery"))
        steps.append((arrive, "delivered"))
        self._chase_stale_tracking(steps, customer, order_id)
        eid = self._eid
        promised_text = ""
        for when, status in steps:
            if when < start:
                continue
            ts, text = stamp(when)
            body: dict[str, Any] = {
                "event_id": eid(), "ts": text, "type": status,
                "order_id": order_id, "customer_id": customer, "carrier": carrier,
                "region": region,
            }
            if status == "created" or status == "shipped":
                promised_text = promised_text or format_ts(promise)
                body["promised_by"] = promised_text
            yield ts, SimEvent("deliveries", order_id, body, ts)
        # delivered: from now on spontaneous delivery contacts may ask about it
        if created >= start:
            self._delivered_orders.append((order_id, customer))
            if len(self._delivered_orders) > 2000:
                del self._delivered_orders[:1000]

    def _chase_stale_tracking(self, steps: list[tuple[float, str]], customer: str,
                              order_id: str) -> None:
        """Some customers chase when the tracking page shows no new scan for a long time."""
        cfg = self.config
        stale = cfg.stale_tracking_hours * HOUR
        for (prev, _), (nxt, _) in itertools.pairwise(steps[1:]):  # from shipped on
            if nxt - prev > stale:
                if self.rng.random() < cfg.stale_contact_probability:
                    when = prev + stale + self.rng.uniform(0.0, min(nxt - prev - stale, 12 * HOUR))
                    if when >= self.start:
                        self._spawn(self._order_contact(when, customer, order_id))
                return

    def _order_contact(self, t: float, customer: str, order_id: str,
                       complaint: bool | None = None) -> _Process:
        yield t, None
        if complaint is None:
            complaint = self.rng.random() < 0.6
        self._spawn(self._contact(t, customer, "delivery", complaint, order_id))


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------

class _TruthRecorder:
    """Derives the ground truth from the events exactly as they are emitted."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        # session -> [page, element, first_ts, x0, y0, count, prev_ts, prev2_ts, recorded]
        self.runs: dict[str, list[Any]] = {}
        self.bursts: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.first_contact: dict[str, float] = {}
        self.contacts_by_customer: dict[str, list[tuple[float, str]]] = {}
        self.repeats: list[dict[str, Any]] = []
        self.detractors: list[dict[str, Any]] = []
        self.counts: dict[str, int] = dict.fromkeys(STREAMS, 0)

    def observe(self, ev: SimEvent) -> None:
        self.counts[ev.stream] += 1
        body = ev.event
        etype = body["type"]
        if ev.stream == "clickstream":
            sid = ev.key
            if etype == "click":
                self._click(sid, body, ev.ts)
            elif etype in ("scroll", "selection", "page_view"):
                self.runs.pop(sid, None)
        elif ev.stream == "deliveries":
            oid = body["order_id"]
            order = self.orders.get(oid)
            if order is None:
                order = self._order_entry(oid)
            if etype in ("created", "shipped"):
                order["promise_seen"] = True
            elif etype == "delivered":
                order["delivered_ts"] = ev.ts
        elif etype == "contact_opened":
            oid = body.get("order_id")
            if oid is not None and oid not in self.first_contact:
                self.first_contact[oid] = ev.ts
                if oid not in self.orders:
                    self._order_entry(oid)
            customer = body["customer_id"]
            hist = self.contacts_by_customer.setdefault(customer, [])
            hist.append((ev.ts, body["contact_id"]))
            recent = [(t, c) for t, c in hist if ev.ts - t <= REPEAT_WINDOW_S]
            self.contacts_by_customer[customer] = recent
            if len(recent) >= REPEAT_MIN_CONTACTS:
                self.repeats.append({
                    "customer_id": customer,
                    "contact_ids": [c for _, c in recent],
                    "ts": ev.ts,
                    "count_in_window": len(recent),
                })
        elif etype == "survey_response":
            csat, nps, ces = body.get("csat"), body.get("nps"), body.get("ces")
            if ((csat is not None and csat <= 2) or (nps is not None and nps <= 6)
                    or (ces is not None and ces >= 6)):
                self.detractors.append({
                    "customer_id": body["customer_id"], "contact_id": body.get("contact_id"),
                    "csat": csat, "nps": nps, "ces": ces, "ts": ev.ts,
                })

    def _order_entry(self, oid: str) -> dict[str, Any]:
        info = self.sim.order_info[oid]
        entry = dict(info) | {"promise_seen": False, "delivered_ts": None}
        self.orders[oid] = entry
        return entry

    def _click(self, sid: str, body: dict[str, Any], ts: float) -> None:
        run = self.runs.get(sid)
        x = body.get("x") or 0.0
        y = body.get("y") or 0.0
        if (run is not None and run[1] == body["element"] and run[0] == body["page"]
                and ts - run[6] < RAGE_MAX_GAP_S
                and math.hypot(x - run[3], y - run[4]) < RAGE_MAX_DIST_PX):
            run[5] += 1
            if (not run[8] and run[5] >= RAGE_MIN_CLICKS and run[7] is not None
                    and ts - run[7] < RAGE_MAX_GAP_S):
                run[8] = True
                self.bursts.append({
                    "session_id": sid, "customer_id": body.get("customer_id"),
                    "page": body["page"], "element": body["element"], "ts": run[2],
                })
            run[7] = run[6]
            run[6] = ts
        else:
            self.runs[sid] = [body["page"], body["element"], ts, x, y, 1, ts, None, False]

    def result(self) -> dict[str, Any]:
        sim = self.sim
        cfg = sim.config
        end = sim.end
        sources = {(b["session_id"], b["ts"]): b["source"] for b in sim.planned_bursts}
        bursts = [b | {"source": sources.get((b["session_id"], b["ts"]), "unplanned"),
                       "page_template": page_template(b["page"])} for b in self.bursts]
        orders = []
        for oid, o in self.orders.items():
            delivered = o["delivered_ts"]
            if delivered is not None:
                late: bool | None = delivered > o["promised_by"]
            elif o["promised_by"] < end:
                late = True
            else:
                late = None
            orders.append(o | {"late": late, "first_contact_ts": self.first_contact.get(oid)})
        incidents = []
        for idx, inc in enumerate(sim.incidents):
            item: dict[str, Any] = {
                "name": inc.name, "params": inc.params, "labels": inc.labels,
                "start": inc.start, "end": inc.end,
                "start_iso": format_ts(inc.start), "end_iso": format_ts(inc.end),
            }
            if inc.name == "carrier_delay":
                affected = sim.affected_orders.get(idx, [])
                item["affected_orders"] = affected
                item["affected_late"] = sum(
                    1 for oid in affected
                    if oid in self.orders and orders_late(self.orders[oid], end)
                )
            if inc.name == "rage_click_storm":
                item["bursts"] = sum(
                    1 for b in bursts if b["source"] == "incident"
                    and inc.start <= b["ts"] < inc.end
                )
            incidents.append(item)
        config = asdict(cfg)
        config["incidents"] = [{"name": i.name, "params": dict(i.params)} for i in cfg.incidents]
        config["mix"] = dict(cfg.mix)
        return {
            "version": 1,
            "seed": cfg.seed,
            "start": cfg.start,
            "end": end,
            "start_iso": format_ts(cfg.start),
            "end_iso": format_ts(end),
            "config": config,
            "definitions": {
                "rage_burst": (
                    f">= {RAGE_MIN_CLICKS} consecutive clicks of a session on one page and "
                    f"element, no scroll/selection/page_view between, each < {RAGE_MAX_GAP_S}s "
                    f"after the previous and < {RAGE_MAX_DIST_PX}px from the first, "
                    f"{RAGE_MIN_CLICKS} consecutive clicks spanning < {RAGE_MAX_GAP_S}s; "
                    "ts = first click"
                ),
                "late": "delivered after promised_by; undelivered and promised_by before the end"
                        " of the run = late; undelivered and not yet due = null",
                "repeat_contact": f"a contact_opened that is at least the "
                                  f"{REPEAT_MIN_CONTACTS}rd of its customer within "
                                  f"{REPEAT_WINDOW_S:.0f}s (inclusive)",
                "detractor": "survey with csat<=2 or nps<=6 or ces>=6",
            },
            "incidents": incidents,
            "rage_bursts": bursts,
            "orders": orders,
            "repeat_contacts": self.repeats,
            "detractors": self.detractors,
            "counts": {
                "events": sum(self.counts.values()),
                "per_stream": dict(self.counts),
                "rage_bursts": len(bursts),
                "orders": len(orders),
                "late_orders": sum(1 for o in orders if o["late"]),
                "repeat_contacts": len(self.repeats),
                "detractors": len(self.detractors),
            },
        }


def orders_late(order: Mapping[str, Any], end: float) -> bool:
    delivered = order.get("delivered_ts")
    if delivered is not None:
        return bool(delivered > order["promised_by"])
    return bool(order["promised_by"] < end)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def generate(config: SimulationConfig) -> Iterator[SimEvent]:
    """All events of the simulation, in event-time order; deterministic for the config."""
    return Simulation(config).events()


def truth(config: SimulationConfig) -> dict[str, Any]:
    """The ground truth of the simulation (JSON-serialisable); runs the generator once."""
    sim = Simulation(config, record_truth=True)
    for _ in sim.events():
        pass
    return sim.truth()


def write_truth(data: Mapping[str, Any], path: Any) -> None:
    """Write a truth dict as pretty JSON."""
    with open(path, "wb") as fh:
        fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


class Message(NamedTuple):
    """One Kafka message: stream, key, the events it carries and the event time to send it."""

    stream: str
    key: str
    events: list[dict[str, Any]]
    ts: float
    batch: bool


def batch_messages(
    events: Iterable[SimEvent], batch_size: int = 5, max_delay: float = 5.0
) -> Iterator[Message]:
    """Group clickstream events of one session into batches (JSON arrays) of up to
    ``batch_size``; a batch is also sent once its first event is ``max_delay`` event-time
    seconds old (like a browser SDK's flush timer). Other streams: one event per message.
    ``batch_size`` 1 sends every event as a plain object."""
    if batch_size <= 1:
        for ev in events:
            yield Message(ev.stream, ev.key, [ev.event], ev.ts, False)
        return
    buffers: dict[str, list[dict[str, Any]]] = {}
    opened: dict[str, float] = {}  # insertion order = order of first event ts
    for ev in events:
        now = ev.ts
        while opened:
            sid = next(iter(opened))
            if opened[sid] > now - max_delay:
                break
            del opened[sid]
            yield Message("clickstream", sid, buffers.pop(sid), now, True)
        if ev.stream != "clickstream":
            yield Message(ev.stream, ev.key, [ev.event], now, False)
            continue
        buf = buffers.get(ev.key)
        if buf is None:
            buffers[ev.key] = buf = []
            opened[ev.key] = now
        buf.append(ev.event)
        if len(buf) >= batch_size:
            del opened[ev.key]
            yield Message("clickstream", ev.key, buffers.pop(ev.key), now, True)
    for sid in list(opened):
        yield Message("clickstream", sid, buffers.pop(sid), opened[sid] + max_delay, True)


def encode(message: Message) -> bytes:
    """The wire bytes of a message: a JSON object, or an array for a batch."""
    return orjson.dumps(message.events if message.batch else message.events[0])


def iter_encoded(
    config: SimulationConfig, batch_size: int = 5, max_delay: float = 5.0
) -> Iterator[tuple[str, bytes, bytes]]:
    """``(stream, key_bytes, value_bytes)`` ready to produce, for benchmarks and preloading."""
    dumps = orjson.dumps
    for msg in batch_messages(generate(config), batch_size, max_delay):
        value = dumps(msg.events if msg.batch else msg.events[0])
        yield msg.stream, msg.key.encode(), value
