"""Online model of delivery times per carrier and region (running statistics, no training pass).

What is learnt, and from what
-----------------------------
Everything is learnt online from the tracking stream itself, per carrier-region with fallbacks
(carrier, then all carriers ``*``) while a key has fewer than ``min_samples`` values:

* **Transit** ``T`` (shipped -> delivered) of *clean* orders (no failed attempt, no exception):
  log-normal with a per carrier-region location (:class:`LogStat`) and a spread pooled over all
  carrier-regions (residuals around the carrier-region's own location). Once it has learnt
  ``regression_warmup`` orders, a River regression
  (:class:`~detectors.transit_regression.TransitRegressor`) corrects the location for the
  weekday and hour the order shipped and its carrier's weekday; the spread is then the larger
  of its residuals' and the lane's (``regression=False`` turns it off).
* **Empirical distributions** (:class:`Sample`, bounded recent samples) of the legs whose shape
  matters more than their scale: handling (created -> shipped), the last leg (last
  ``out_for_delivery`` -> delivered), the remainder after a ``failed_attempt`` and after an
  ``exception``, and the gaps between scans while in transit (for *abnormal silence*).
* **Disruptions** per carrier-region: orders that stay silent much longer than the
  carrier-region's usual longest scan gap (``silence_factor`` times its ``silence_quantile``
  gap) are marked (the last :data:`MAX_SILENT_MARKS` of each carrier-region are kept); once
  ``cluster_min`` such orders shipped within ``cluster_span_s`` of each other, every order of
  the carrier-region shipped inside that span (+/- ``cluster_pad_s``) is treated as disrupted:
  its transit is assumed ``disruption_factor`` times slower.
* **Recent slowness** per carrier-region (EWMA of ``log(observed gap / usual gap)``), kept as
  human-readable evidence.

**Bounded lanes.** Carrier and region are free text on the wire, so the model keeps its own
statistics for the first ``max_carriers`` carriers and ``max_regions`` regions it sees; later ones
are pooled under :data:`OTHER` (as the metric labels are), so its memory is at most
``(max_carriers + 1) * (max_regions + 1)`` lanes whatever the input.

Prediction (:meth:`TransitModel.predict_delivery`) is the probability of delivery after
``promised_by`` given everything known *now*, including what has *not* happened yet:

* ``created``: handling ``H`` (conditioned on ``H >`` time since creation) plus transit;
* ``shipped``/``in_transit``: ``P(T > promise - shipped | not out for delivery yet)`` where "not
  out for delivery" means ``T - L > now - shipped`` for the last leg ``L``;
* ``out_for_delivery``/``failed_attempt``/``exception``: the learnt remainder after that status,
  conditioned on the time already elapsed since it.

The model is in memory and picklable: the worker keeps one per deliveries partition and
checkpoints it (``streams/deliveries.py``), so a restarted worker resumes it.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from detectors.transit_regression import TransitRegressor

HOUR = 3600.0
_N = NormalDist()
_SQRT2 = math.sqrt(2.0)
ANY = "*"
#: The pooled lane of carriers and regions beyond the model's bounds.
OTHER = "other"
MAX_SNAPSHOTS = 16
#: Abnormally silent orders remembered per lane (the most recently marked): a disruption needs
#: ``cluster_min`` of them, and a flood of silent orders must cost neither memory nor a scan of
#: every one of them per mark.
MAX_SILENT_MARKS = 512
STATUSES_IN_TRANSIT = ("created", "shipped", "in_transit", "out_for_delivery", "failed_attempt",
                       "exception")
#: Statuses after which the order moves on by itself (silence is judged on their scan gaps).
MOVING = ("shipped", "in_transit")
#: Statuses with their own remainder distribution (time from that scan to delivery).
LEG_STATUSES = ("out_for_delivery", "failed_attempt", "exception")


class LogStat:
    """Running mean/variance of ``log(x)`` (and arithmetic mean of ``x``), JSON-able.

    Plain running averages for the first ``1/alpha`` values, then an exponentially weighted
    average with weight ``alpha`` so the statistic follows slow drift.

    Examples
    --------
    >>> s = LogStat(alpha=0.01)
    >>> for x in (1.0, 10.0, 100.0):
    ...     _ = s.update(x)
    >>> round(math.exp(s.mean), 6), s.n
    (10.0, 3)
    """

    __slots__ = ("alpha", "mean", "n", "var", "xmean")

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.xmean = 0.0

    def update(self, x: float) -> float:
        """Add ``x`` (> 0; floored at 1e-6); return ``log(x) - previous mean`` (0 for the first)."""
        lx = math.log(max(x, 1e-6))
        self.n += 1
        if self.n == 1:
            self.mean, self.xmean = lx, x
            return 0.0
        w = max(1.0 / self.n, self.alpha)
        d = lx - self.mean
        self.mean += w * d
        self.var = (1 - w) * (self.var + w * d * d)
        self.xmean += w * (x - self.xmean)
        return d

    @property
    def std(self) -> float:
        """Standard deviation of ``log(x)``."""
        return math.sqrt(max(self.var, 0.0))

    def quantile(self, q: float) -> float:
        """Log-normal quantile ``exp(mean + z_q * std)``."""
        return math.exp(self.mean + _N.inv_cdf(q) * self.std)

    def to_dict(self) -> dict[str, float]:
        """JSON-able snapshot."""
        return {"alpha": self.alpha, "n": self.n, "mean": self.mean, "var": self.var,
                "xmean": self.xmean}

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> LogStat:
        """Inverse of :meth:`to_dict`."""
        s = cls(float(d["alpha"]))
        s.n, s.mean, s.var, s.xmean = int(d["n"]), d["mean"], d["var"], d["xmean"]
        return s


class Sample:
    """The most recent ``size`` values of a quantity, kept sorted: empirical quantiles/survival.

    Examples
    --------
    >>> s = Sample(size=100)
    >>> for x in range(1, 11):
    ...     s.add(float(x))
    >>> s.quantile(0.5), s.survival(8.0), s.survival(0.0), s.survival(11.0)
    (6.0, 0.2, 1.0, 0.0)
    """

    __slots__ = ("_points", "recent", "sorted")

    def __init__(self, size: int = 500) -> None:
        self.recent: deque[float] = deque(maxlen=size)
        self.sorted: list[float] = []
        self._points: dict[int, list[float]] = {}

    def __len__(self) -> int:
        return len(self.sorted)

    def __getstate__(self) -> tuple[int | None, bytes]:
        # Pickled for the worker's checkpoints: the recent values once, as packed doubles (the
        # sorted copy and the cached points are rebuilt), which halves a model's snapshot and
        # makes pickling it several times faster than a list of float objects.
        return self.recent.maxlen, array("d", self.recent).tobytes()

    def __setstate__(self, state: tuple[int | None, bytes]) -> None:
        maxlen, packed = state
        values = array("d")
        values.frombytes(packed)
        self.recent = deque(values, maxlen=maxlen)
        self.sorted = sorted(values)
        self._points = {}

    def add(self, x: float) -> None:
        """Add one value (the oldest is forgotten once ``size`` values are held)."""
        if self.recent.maxlen is not None and len(self.recent) == self.recent.maxlen:
            old = self.recent[0]
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.recent.append(x)
        bisect.insort(self.sorted, x)
        self._points.clear()

    def survival(self, x: float) -> float:
        """Share of values strictly greater than ``x`` (1.0 when empty)."""
        n = len(self.sorted)
        return 1.0 if n == 0 else (n - bisect.bisect_right(self.sorted, x)) / n

    def quantile(self, q: float) -> float:
        """Empirical ``q`` quantile (nearest rank); nan when empty."""
        n = len(self.sorted)
        if n == 0:
            return math.nan
        return self.sorted[min(n - 1, max(0, int(q * n)))]

    def points(self, k: int) -> list[float]:
        """``k`` evenly spaced quantiles (mid-points), for averaging over the distribution."""
        pts = self._points.get(k)
        if pts is None:
            n = len(self.sorted)
            pts = [self.sorted[min(n - 1, int((i + 0.5) * n / k))] for i in range(k)] if n else []
            self._points[k] = pts
        return pts


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outcome of :meth:`TransitModel.predict_delivery`.

    ``predicted_ts`` is the (conditional) median delivery time (epoch s), ``confidence`` the
    probability (0-1) that delivery comes after ``promised_by`` (0 when no promise or no data),
    ``silence_s`` the time since the last scan and ``silence_limit_s`` the usual upper scan gap
    of this carrier-region and status (``inf`` when unknown). ``abnormal_silence`` is true when
    the silence is beyond the model's ``silence_factor`` times that limit and ``disrupted`` when
    the order is treated as part of a carrier-region disruption.
    """

    predicted_ts: float | None
    confidence: float
    evidence: tuple[str, ...]
    silence_s: float
    silence_limit_s: float
    abnormal_silence: bool = False
    disrupted: bool = False


def status_key(status: str, n_scans: int) -> str:
    """Status plus position in the scan sequence (``in_transit@3``): separates the legs."""
    return f"{status}@{min(int(n_scans), 9)}"


def _fmt_hours(h: float) -> str:
    return f"{h / 24:.1f} days" if abs(h) >= 48 else f"{h:.0f} h"


class TransitModel:
    """Online delivery-time model per carrier and region.

    Parameters
    ----------
    stat_alpha : float
        Weight of the per carrier-region transit location once warm (default 0.02).
    recent_alpha : float
        Weight of the recent-slowness EWMA per completed leg (evidence only).
    min_samples : int
        Values a carrier-region statistic needs before it is used (fallback: carrier, then all).
    silence_quantile : float
        Quantile of the in-transit scan gaps that defines the usual longest silence (0.95).
    silence_factor : float
        A silence beyond this many times that gap is abnormal (default 1.5).
    disruption_factor : float
        Assumed slow-down of the transit of a disrupted order (default 2.0).
    cluster_min, cluster_span_s, cluster_pad_s
        A disruption needs ``cluster_min`` abnormally silent orders shipped within
        ``cluster_span_s`` of each other; it covers their ship times +/- ``cluster_pad_s``.
    sample_size : int
        Values kept per empirical distribution.
    min_sigma : float
        Floor of the pooled log-spread of transit times.
    slowness_z : float
        Recent slowness counts as evidence beyond this many noise standard deviations.
    regression : bool
        Learn transit times with the River regression and use it once warm (default True).
    regression_warmup : int
        Delivered orders the regression learns before it is used (per-lane statistics until
        then).
    max_carriers, max_regions : int
        Carriers and regions with statistics of their own (the first seen); later ones share the
        :data:`OTHER` lane (default 100 each).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> m = TransitModel()
    >>> for i in range(300):
    ...     t0 = i * 3600.0
    ...     m.observe_delivery("dhl", "north", [("shipped", t0), ("out_for_delivery", t0 + 45 * 3600)],
    ...                        t0 + rng.lognormvariate(math.log(48 * 3600), 0.1), t0)
    >>> order = {"carrier": "dhl", "region": "north", "shipped": 0.0, "last_ts": 7200.0,
    ...          "last_status": "in_transit", "n_scans": 2, "promised_by": 72 * 3600.0}
    >>> p = m.predict_delivery(order, now=8000.0)
    >>> 40 < (p.predicted_ts / 3600) < 56, p.confidence < 0.01
    (True, True)
    """

    def __init__(
        self,
        *,
        stat_alpha: float = 0.02,
        recent_alpha: float = 0.1,
        min_samples: int = 10,
        silence_quantile: float = 0.95,
        silence_factor: float = 1.5,
        disruption_factor: float = 2.5,
        cluster_min: int = 2,
        cluster_span_s: float = 12 * HOUR,
        cluster_pad_s: float = 1 * HOUR,
        sample_size: int = 400,
        min_sigma: float = 0.05,
        slowness_z: float = 2.0,
        regression: bool = True,
        regression_warmup: int = 200,
        max_carriers: int = 100,
        max_regions: int = 100,
    ) -> None:
        self.stat_alpha = stat_alpha
        self.recent_alpha = recent_alpha
        self.min_samples = min_samples
        self.silence_quantile = silence_quantile
        self.silence_factor = silence_factor
        self.disruption_factor = disruption_factor
        self.cluster_min = cluster_min
        self.cluster_span_s = cluster_span_s
        self.cluster_pad_s = cluster_pad_s
        self.sample_size = sample_size
        self.min_sigma = min_sigma
        self.slowness_z = slowness_z
        self.regression = regression
        self.regression_warmup = regression_warmup
        self.regressor = (TransitRegressor(warmup=regression_warmup, min_sigma=min_sigma)
                          if regression else None)
        self.transit: dict[str, LogStat] = {}  # "carrier/region", "carrier", "*"
        self.spread = LogStat(stat_alpha)  # pooled |residual| of log transit (xmean)
        self.samples: dict[str, Sample] = {}  # "<what>/<key>": handling, last leg, gaps ...
        self.slowness: dict[str, float] = {}
        self.slowness_sq: dict[str, float] = {}
        self.silent: dict[str, dict[str, float]] = {}  # cr -> order id -> shipped ts
        self.disruptions: dict[str, list[tuple[float, float]]] = {}  # cr -> ship-time spans
        self.n_learnt = 0
        self.max_carriers = max_carriers
        self.max_regions = max_regions
        self._carriers: set[str] = set()
        self._regions: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def _sample(self, key: str) -> Sample:
        s = self.samples.get(key)
        if s is None:
            s = self.samples[key] = Sample(self.sample_size)
        return s

    def lane(self, carrier: str, region: str) -> tuple[str, str]:
        """The carrier and region whose statistics stand for this pair (bounded, see above).

        >>> m = TransitModel(max_carriers=1, max_regions=1)
        >>> m.lane("dhl", "north"), m.lane("ups", "north"), m.lane("dhl", "south")
        (('dhl', 'north'), ('other', 'north'), ('dhl', 'other'))
        """
        carriers, regions = self._carriers, self._regions
        if carrier not in carriers and carrier != OTHER:
            if len(carriers) < self.max_carriers:
                carriers.add(carrier)
            else:
                carrier = OTHER
        if region not in regions and region != OTHER:
            if len(regions) < self.max_regions:
                regions.add(region)
            else:
                region = OTHER
        return carrier, region

    def _cr(self, carrier: str, region: str) -> str:
        carrier, region = self.lane(carrier, region)
        return f"{carrier}/{region}"

    def _keys(self, carrier: str, region: str) -> tuple[str, str, str]:
        carrier, region = self.lane(carrier, region)
        return f"{carrier}/{region}", carrier, ANY

    def _find_sample(self, what: str, carrier: str, region: str,
                     need: int | None = None) -> Sample | None:
        need = self.min_samples if need is None else need
        for k in self._keys(carrier, region):
            s = self.samples.get(f"{what}/{k}")
            if s is not None and len(s) >= need:
                return s
        return None

    def _add(self, what: str, carrier: str, region: str, x: float) -> None:
        for k in self._keys(carrier, region):
            self._sample(f"{what}/{k}").add(x)

    def _transit_params(self, carrier: str, region: str,
                        shipped: float | None = None) -> tuple[float, float] | None:
        """(mu, sigma) of log transit hours of an order shipped at ``shipped`` (None: unknown)."""
        lane = self._lane_params(carrier, region)
        if lane is None or self.regressor is None or shipped is None:
            return lane
        learnt = self.regressor.predict_one(self.lane(carrier, region)[0], shipped)
        if learnt is None:
            return lane
        # the regression's residuals come from orders delivered so far, which under-represent
        # the slow ones still in transit (right-censoring): never narrower than the lane spread
        return lane[0] + learnt[0], max(learnt[1], lane[1])

    def _lane_params(self, carrier: str, region: str) -> tuple[float, float] | None:
        """(mu, sigma) of log transit hours from the lane statistics alone."""
        for k in self._keys(carrier, region):
            s = self.transit.get(k)
            if s is not None and s.n >= self.min_samples:
                # mean |error| of a normal = sigma * sqrt(2/pi)
                pooled = self.spread.xmean * 1.2533 if self.spread.n >= self.min_samples else 0.0
                sigma = max(pooled if k != ANY else s.std, s.std if k == ANY else 0.0,
                            self.min_sigma)
                return s.mean, sigma
        return None

    # ------------------------------------------------------------------ learning
    def observe_scan(self, carrier: str, region: str, prev_status: str, prev_ts: float,
                     ts: float, prev_n_scans: int = 1) -> None:
        """Learn one completed leg: the gap after ``prev_status`` until the next scan at ``ts``."""
        gap_h = max(ts - prev_ts, 1.0) / HOUR
        if prev_status == "created":
            self._add("handling", carrier, region, gap_h)
            return
        if prev_status not in MOVING:
            return
        cr = self._cr(carrier, region)
        usual = self._find_sample("gap", carrier, region)
        if usual is not None:
            d = math.log(max(gap_h, 1e-6) / max(usual.quantile(0.5), 1e-6))
            d = max(-2.0, min(2.0, d))
            a = self.recent_alpha
            self.slowness[cr] = self.slowness.get(cr, 0.0) + a * (d - self.slowness.get(cr, 0.0))
            sq = self.slowness_sq.get(cr, d * d)
            self.slowness_sq[cr] = sq + 0.01 * (d * d - sq)
        self._add("gap", carrier, region, gap_h)

    def observe_delivery(self, carrier: str, region: str,
                         snapshots: list[tuple[str, float]] | list[list[Any]],
                         delivered_ts: float, shipped: float | None = None) -> None:
        """Learn from a delivered order.

        Parameters
        ----------
        snapshots : list of (status, ts)
            The order's scans before delivery, oldest first (``shipped`` among them if known).
        delivered_ts : float
            Event time of the ``delivered`` scan.
        shipped : float, optional
            Ship time; defaults to the ts of the ``shipped`` snapshot, if any.
        """
        carrier, region = self.lane(carrier, region)  # bounded lanes, the regression's carrier too
        snaps = [(str(s), float(t)) for s, t in snapshots][-MAX_SNAPSHOTS:]
        if shipped is None:
            shipped = next((t for s, t in snaps if s == "shipped"), None)
        statuses = {s for s, _ in snaps}
        clean = not statuses & {"failed_attempt", "exception"}
        if shipped is not None and delivered_ts > shipped and clean:
            h = (delivered_ts - shipped) / HOUR
            own = self.transit.get(f"{carrier}/{region}")
            if own is not None and own.n >= self.min_samples:
                self.spread.update(abs(math.log(h) - own.mean) + 1e-6)
            lane = self._lane_params(carrier, region)
            if self.regressor is not None and lane is not None:
                self.regressor.learn_one(carrier, shipped, math.log(h) - lane[0])
            for k in self._keys(carrier, region):
                stat = self.transit.get(k)
                if stat is None:
                    stat = self.transit[k] = LogStat(self.stat_alpha)
                stat.update(h)
            self.n_learnt += 1
        # remainder after the last scan of each leg status
        last: dict[str, float] = {}
        for status, t in snaps:
            if status in LEG_STATUSES and t <= delivered_ts:
                last[status] = t if status != "exception" else last.get(status, t)
        for status, t in last.items():
            self._add(f"rem:{status}", carrier, region, max(delivered_ts - t, 1.0) / HOUR)

    # ------------------------------------------------------------------ disruptions
    def mark_silent(self, carrier: str, region: str, order_id: str, shipped: float) -> bool:
        """Record an abnormally silent order; True when this creates or widens a disruption."""
        cr = self._cr(carrier, region)
        marks = self.silent.setdefault(cr, {})
        if order_id in marks:
            return False
        marks[order_id] = shipped
        # forget marks far older than this one, and the earliest beyond the bound
        for oid in [o for o, t in marks.items() if t < shipped - 10 * self.cluster_span_s]:
            del marks[oid]
        while len(marks) > MAX_SILENT_MARKS:
            del marks[next(iter(marks))]
        near = sorted(t for t in marks.values() if abs(t - shipped) <= self.cluster_span_s)
        if len(near) < self.cluster_min:
            return False
        lo, hi = near[0] - self.cluster_pad_s, near[-1] + self.cluster_pad_s
        spans = self.disruptions.setdefault(cr, [])
        merged = [(a, b) for a, b in spans if b < lo or a > hi]
        for a, b in spans:
            if not (b < lo or a > hi):
                lo, hi = min(lo, a), max(hi, b)
        changed = (lo, hi) not in spans
        spans[:] = sorted([*merged, (lo, hi)])[-16:]
        return changed

    def is_disrupted(self, carrier: str, region: str, shipped: float | None) -> bool:
        """Whether an order shipped at ``shipped`` falls in a known disruption of its region."""
        if shipped is None:
            return False
        return any(a <= shipped <= b for a, b in self.disruptions.get(self._cr(carrier, region), ()))

    # ------------------------------------------------------------------ statistics for evidence
    def usual_transit_hours(self, carrier: str, region: str) -> float | None:
        """Typical (median) shipped -> delivered hours of the carrier-region, if known."""
        p = self._transit_params(carrier, region)
        return math.exp(p[0]) if p is not None else None

    def silence_limit_s(self, carrier: str, region: str, status: str, n_scans: int = 1) -> float:
        """Usual upper scan gap (seconds) while in transit; inf if unknown or not moving."""
        if status not in MOVING:
            return math.inf
        s = self._find_sample("gap", carrier, region)
        if s is None:
            return math.inf
        return s.quantile(self.silence_quantile) * HOUR

    def recent_shift(self, carrier: str, region: str) -> float:
        """Significant recent slowdown of scan gaps in log units (0 when within noise)."""
        cr = self._cr(carrier, region)
        if cr not in self.slowness:
            return 0.0
        a = self.recent_alpha
        noise = math.sqrt(self.slowness_sq.get(cr, 0.0) * a / (2 - a))
        return max(self.slowness[cr] - self.slowness_z * noise, 0.0)

    def slowness_factor(self, carrier: str, region: str) -> float:
        """Recent scan gaps over usual ones (1.0 = normal, 1.8 = 80 % slower)."""
        return math.exp(self.slowness.get(self._cr(carrier, region), 0.0))

    # ------------------------------------------------------------------ prediction
    @staticmethod
    def _surv_t(mu: float, sigma: float, x_h: float) -> float:
        if x_h <= 0:
            return 1.0
        return 0.5 * math.erfc((math.log(x_h) - mu) / (sigma * _SQRT2))

    def _quant_t(self, mu: float, sigma: float, q: float) -> float:
        return math.exp(mu + sigma * _N.inv_cdf(min(max(q, 1e-9), 1 - 1e-9)))

    def predict_delivery(self, order_state: Mapping[str, Any], now: float,
                         explain: bool = True) -> Prediction:
        """Predict the delivery of an undelivered order at event time ``now``.

        Parameters
        ----------
        order_state : Mapping
            Needs ``carrier``, ``region``, ``last_status``, ``last_ts``; uses ``created``,
            ``shipped``, ``n_scans``, ``promised_by``, ``legs`` (status -> ts of the latest
            ``out_for_delivery``/``failed_attempt``/``exception``), ``order_id`` when present.
        now : float
            Current event time of the delivery stream.
        explain : bool
            Build the human-readable ``evidence`` (skip it for a cheap check).

        Returns
        -------
        Prediction
            ``predicted_ts`` None when nothing is known about the order's situation.
        """
        carrier, region = str(order_state["carrier"]), str(order_state["region"])
        status = str(order_state["last_status"])
        last_ts = float(order_state["last_ts"])
        shipped = order_state.get("shipped")
        created = order_state.get("created")
        promise = order_state.get("promised_by")
        n_scans = int(order_state.get("n_scans", 1))
        legs: Mapping[str, float] = order_state.get("legs") or {}
        silence = max(now - last_ts, 0.0)
        limit = self.silence_limit_s(carrier, region, status, n_scans)
        abnormal = math.isfinite(limit) and silence > self.silence_factor * limit
        disrupted = abnormal or self.is_disrupted(
            carrier, region, float(shipped) if shipped is not None else None)
        f = self.disruption_factor if disrupted else 1.0
        p_h = (float(promise) - now) / HOUR if promise is not None else None
        result: tuple[float, float] | None = None  # (probability, predicted remaining h)
        leg = self._leg_status(status, legs)
        if leg is not None:
            ts_leg = float(legs.get(leg, last_ts)) if leg == "exception" else last_ts
            s = self._find_sample(f"rem:{leg}", carrier, region, need=5)
            if s is not None:  # a disruption slows the line haul, not the last leg
                result = self._remainder(s, (now - ts_leg) / HOUR, p_h, 1.0)
        if result is None:
            if shipped is None and status in MOVING:
                shipped = last_ts  # ship time unseen: at least this long in transit
            # not shipped yet: the regression's features of an order shipping now
            ship_ts = float(shipped) if shipped is not None else now
            tp = self._transit_params(carrier, region, ship_ts)
            if tp is not None:
                mu, sigma = tp[0] + math.log(f), tp[1]
                if shipped is not None:
                    result = self._in_transit(carrier, region, mu, sigma,
                                              (now - float(shipped)) / HOUR, p_h)
                elif created is not None:
                    result = self._before_shipping(carrier, region, mu, sigma,
                                                   (now - float(created)) / HOUR, p_h)
        if result is None:
            return Prediction(None, 0.0, (), silence, limit, abnormal, disrupted)
        prob, rem_h = result
        predicted = now + rem_h * HOUR
        confidence = min(max(prob, 0.0), 1.0) if promise is not None else 0.0
        evidence = (self._evidence(order_state, now, silence, limit, abnormal, disrupted)
                    if explain else ())
        return Prediction(predicted, confidence, evidence, silence, limit, abnormal, disrupted)

    @staticmethod
    def _leg_status(status: str, legs: Mapping[str, float]) -> str | None:
        if status in ("out_for_delivery", "failed_attempt"):
            return status
        if "exception" in legs:
            return "exception"
        return None

    @staticmethod
    def _remainder(s: Sample, elapsed_h: float, p_h: float | None,
                   f: float) -> tuple[float, float] | None:
        """Remainder distribution after a leg status (scaled by ``f``), given ``elapsed_h``."""
        e = max(elapsed_h, 0.0) / f
        base = s.survival(e)
        if base <= 0.0:  # longer than ever seen: no basis for a probability
            return None
        prob = 0.0 if p_h is None else s.survival(e + max(p_h, 0.0) / f) / base
        # conditional median of the remainder
        q = 1.0 - 0.5 * base
        rem = max(s.quantile(q) * f - max(elapsed_h, 0.0), 0.0)
        return prob, rem

    def _in_transit(self, carrier: str, region: str, mu: float, sigma: float,
                    elapsed_h: float, p_h: float | None) -> tuple[float, float]:
        """Shipped, not out for delivery yet: ``T - L > elapsed`` for the last leg ``L``."""
        last = self._find_sample("rem:out_for_delivery", carrier, region, need=5)
        ls = last.points(8) if last is not None else [0.0]
        den = 0.0
        num = 0.0
        for x in ls:
            lo = elapsed_h + x
            sd = self._surv_t(mu, sigma, lo)
            den += sd
            if p_h is not None:
                num += self._surv_t(mu, sigma, max(lo, elapsed_h + p_h))
        if den <= 1e-12:  # far beyond every plausible transit: certainly late if not yet due
            return (1.0 if p_h is not None and p_h > 0 else 0.0), max(ls)
        lo = elapsed_h + (last.quantile(0.5) if last is not None else 0.0)
        q = 1.0 - 0.5 * self._surv_t(mu, sigma, lo)
        rem = max(self._quant_t(mu, sigma, q) - elapsed_h, 0.0)
        return num / den, rem

    def _before_shipping(self, carrier: str, region: str, mu: float, sigma: float,
                         elapsed_h: float, p_h: float | None) -> tuple[float, float]:
        """Not shipped yet: handling (longer than ``elapsed_h``) plus transit."""
        hs = self._find_sample("handling", carrier, region)
        pts = [x for x in (hs.points(20) if hs is not None else []) if x > elapsed_h]
        if not pts:
            pts = [elapsed_h]
        waits = [h - elapsed_h for h in pts]
        prob = 0.0
        if p_h is not None:
            prob = sum(self._surv_t(mu, sigma, p_h - w) for w in waits) / len(waits)
        rem = sorted(waits)[len(waits) // 2] + math.exp(mu)
        return prob, rem

    def _evidence(self, st: Mapping[str, Any], now: float, silence: float, limit: float,
                  abnormal: bool, disrupted: bool) -> tuple[str, ...]:
        carrier, region = str(st["carrier"]), str(st["region"])
        cr = f"{carrier}/{region}"
        status = str(st["last_status"])
        out: list[str] = []
        if abnormal:
            out.append(f"no scan for {_fmt_hours(silence / HOUR)} after {status} "
                       f"({cr} usually scans within {_fmt_hours(limit / HOUR)})")
        elif disrupted:
            out.append(f"{cr}: other orders shipped at the same time went silent "
                       f"(carrier disruption)")
        slow = self.recent_shift(carrier, region)
        if slow > 0.0:
            out.append(f"{cr} scans running {self.slowness_factor(carrier, region):.1f}x "
                       f"slower than usual")
        usual = self.usual_transit_hours(carrier, region)
        shipped = st.get("shipped")
        if shipped is not None and usual is not None and now - float(shipped) > usual * HOUR:
            out.append(f"in transit {_fmt_hours((now - float(shipped)) / HOUR)}, "
                       f"usual {_fmt_hours(usual)}")
        legs = st.get("legs") or {}
        if "exception" in legs:
            out.append("the carrier reported an exception")
        if status == "failed_attempt":
            out.append("a delivery attempt failed")
        eta, promise = st.get("eta"), st.get("promised_by")
        if eta is not None and promise is not None and float(eta) > float(promise):
            out.append("carrier ETA is after the promised time")
        return tuple(out)
