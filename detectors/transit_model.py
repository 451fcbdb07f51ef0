"""Online model of delivery transit times per carrier and region (River + running statistics).

What is learnt, and from what
-----------------------------
* **Remaining time to delivery** from each tracking scan. When an order is delivered, every
  snapshot of its progress (status, time of the scan, time since shipped, number of scans) becomes
  one training example with target ``log(hours from that scan to delivery)``. A River linear
  regression (one-hot carrier, region, carrier/region, status, day-of-week shipped; scaled
  hour-of-day shipped as sin/cos, hours since shipped, number of scans) learns the residual of
  that log target around the running per-(carrier, region, status) mean, so the model starts at
  "typical" and learns the departures from it. The log target makes errors multiplicative and
  keeps a few very late deliveries from dominating.
* **Running statistics** (JSON-able :class:`LogStat`: EWMA of log mean and variance after a
  Welford warm-up) per (carrier, region): transit time shipped -> delivered, gap between scans
  after each status (for silence detection), remaining time from each status, and the model's
  residuals (for the prediction spread).
* **Recent slowness** per (carrier, region): a fast EWMA of ``log(observed gap / usual gap)``
  over every completed leg (scan to scan), so a carrier-region slowdown shows after a handful of
  scans, long before the first slow orders are delivered.

Prediction (:meth:`TransitModel.predict_delivery`): remaining time ``R`` from the last scan is
log-normal with ``mu = mean(carrier, region, status) + residual model + recent slowness`` and
``sigma`` = residual spread. Conditioning on the order's own silence so far (``R > now - last
scan``) gives the predicted delivery (conditional median) and the probability of being late
(``P(R > promise - last scan | R > silence)``), returned as ``confidence``. Unknown
carrier-regions fall back to statistics over all carriers and regions (key ``*``).

The River model lives in memory (picklable); after a worker restart it relearns from deliveries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from river import compose, linear_model, optim, preprocessing

HOUR = 3600.0
_N = NormalDist()
ANY = "*"
MAX_SNAPSHOTS = 16
STATUSES_IN_TRANSIT = ("created", "shipped", "in_transit", "out_for_delivery", "failed_attempt",
                       "exception")


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


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outcome of :meth:`TransitModel.predict_delivery`.

    ``predicted_ts`` is the conditional median delivery time (epoch s), ``confidence`` the
    probability (0-1) that delivery comes after ``promised_by`` (0 when no promise or no data),
    ``silence_s`` the time since the last scan and ``silence_limit_s`` what counts as unusually
    silent for this carrier-region and status (``inf`` when unknown).
    """

    predicted_ts: float | None
    confidence: float
    evidence: tuple[str, ...]
    silence_s: float
    silence_limit_s: float


def status_key(status: str, n_scans: int) -> str:
    """Status plus position in the scan sequence (``in_transit@3``): separates the legs."""
    return f"{status}@{min(int(n_scans), 9)}"


def _fmt_hours(h: float) -> str:
    return f"{h / 24:.1f} days" if abs(h) >= 48 else f"{h:.0f} h"


class TransitModel:
    """Online transit-time model per carrier and region.

    Parameters
    ----------
    stat_alpha : float
        Weight of the long-run running statistics once warm (default 0.01 ~ last 100 values).
    recent_alpha : float
        Weight of the recent-slowness EWMA per completed leg (default 0.1 ~ last 10 legs).
    min_samples : int
        Values a (carrier, region, status) statistic needs before it is used; below it the
        statistic over all carriers and regions (``*``) is used.
    silence_quantile : float
        Quantile of the scan-gap distribution that defines the usual silence (default 0.95).
    min_sigma : float
        Floor of the log-spread of the predicted remaining time.
    learning_rate : float
        SGD learning rate of the River residual regression.
    use_regression : bool
        Apply the River residual regression (only while its error beats the running mean's).
        Default False: on synthetic data it hurt precision badly (it is still trained).
    slowness_z : float
        The recent-slowness EWMA counts only beyond this many standard errors of its own noise
        (so ordinary leg-to-leg variation never shifts predictions).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> m = TransitModel()
    >>> for i in range(300):
    ...     t0 = i * 3600.0
    ...     m.observe_delivery("dhl", "north", [("shipped", t0), ("in_transit", t0 + 7200)],
    ...                        t0 + rng.lognormvariate(math.log(48 * 3600), 0.1))
    >>> order = {"carrier": "dhl", "region": "north", "shipped": 0.0, "last_ts": 7200.0,
    ...          "last_status": "in_transit", "n_scans": 2, "promised_by": 72 * 3600.0}
    >>> p = m.predict_delivery(order, now=8000.0)
    >>> 40 < (p.predicted_ts / 3600) < 56, p.confidence < 0.01
    (True, True)
    """

    def __init__(
        self,
        *,
        stat_alpha: float = 0.01,
        recent_alpha: float = 0.1,
        min_samples: int = 20,
        silence_quantile: float = 0.95,
        min_sigma: float = 0.05,
        learning_rate: float = 0.01,
        slowness_z: float = 2.0,
        use_regression: bool = False,
    ) -> None:
        self.use_regression = use_regression
        self.stat_alpha = stat_alpha
        self.recent_alpha = recent_alpha
        self.min_samples = min_samples
        self.silence_z = _N.inv_cdf(silence_quantile)
        self.min_sigma = min_sigma
        self.transit: dict[str, LogStat] = {}  # key "carrier/region"
        self.gap: dict[str, LogStat] = {}  # key "carrier/region/status"
        self.remaining: dict[str, LogStat] = {}  # key "carrier/region/status"
        self.residual: dict[str, LogStat] = {}  # key "carrier/region": |model error| stats
        self.baseline: dict[str, LogStat] = {}  # key "carrier/region": |error| without model
        self.slowness: dict[str, float] = {}  # key "carrier/region": EWMA log(gap/usual)
        self.slowness_sq: dict[str, float] = {}  # slow EWMA of its square (noise level)
        self.slowness_z = slowness_z
        self.n_learnt = 0
        num = compose.Select("elapsed_h", "n_scans", "hsin", "hcos") | (
            preprocessing.StandardScaler()
        )
        cat = compose.Select("carrier", "region", "cr", "status", "dow") | (
            preprocessing.OneHotEncoder()
        )
        self.regressor = (num + cat) | linear_model.LinearRegression(
            optimizer=optim.SGD(learning_rate), intercept_lr=learning_rate, l2=0.0
        )

    # ------------------------------------------------------------------ statistics helpers
    def _stat(self, table: dict[str, LogStat], key: str) -> LogStat:
        s = table.get(key)
        if s is None:
            s = table[key] = LogStat(self.stat_alpha)
        return s

    def _lookup(self, table: dict[str, LogStat], cr: str, status: str | None) -> LogStat | None:
        """The (carrier/region[/status]) statistic if warm, else the ``*`` one if warm."""
        for c in (cr, ANY):
            key = c if status is None else f"{c}/{status}"
            s = table.get(key)
            if s is not None and s.n >= self.min_samples:
                return s
        return None

    @staticmethod
    def _features(carrier: str, region: str, status: str, shipped: float | None,
                  ts: float, n_scans: int) -> dict[str, Any]:
        base = shipped if shipped is not None and shipped <= ts else ts
        dt = datetime.fromtimestamp(base, tz=UTC)
        hour = dt.hour + dt.minute / 60
        return {
            "carrier": carrier,
            "region": region,
            "cr": f"{carrier}/{region}",
            "status": status,
            "dow": str(dt.weekday()),
            "hsin": math.sin(2 * math.pi * hour / 24),
            "hcos": math.cos(2 * math.pi * hour / 24),
            "elapsed_h": (ts - base) / HOUR,
            "n_scans": n_scans,
        }

    # ------------------------------------------------------------------ learning
    def observe_scan(self, carrier: str, region: str, prev_status: str, prev_ts: float,
                     ts: float, prev_n_scans: int = 1) -> None:
        """Learn one completed leg: the gap after ``prev_status`` until the next scan at ``ts``.

        Updates the gap statistics and the recent-slowness EWMA of the carrier-region.
        """
        gap_h = max(ts - prev_ts, 1.0) / HOUR
        cr = f"{carrier}/{region}"
        prev_status = status_key(prev_status, prev_n_scans)
        usual = self._lookup(self.gap, cr, prev_status)
        if usual is not None:
            d = math.log(max(gap_h, 1e-6)) - usual.mean
            d = max(-2.0, min(2.0, d))
            a = self.recent_alpha
            self.slowness[cr] = self.slowness.get(cr, 0.0) + a * (d - self.slowness.get(cr, 0.0))
            sq = self.slowness_sq.get(cr, d * d)
            self.slowness_sq[cr] = sq + self.stat_alpha * (d * d - sq)
        self._stat(self.gap, f"{cr}/{prev_status}").update(gap_h)
        self._stat(self.gap, f"{ANY}/{prev_status}").update(gap_h)

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
        cr = f"{carrier}/{region}"
        snaps = [(str(s), float(t)) for s, t in snapshots][-MAX_SNAPSHOTS:]
        if shipped is None:
            shipped = next((t for s, t in snaps if s == "shipped"), None)
        if shipped is not None and delivered_ts > shipped:
            h = (delivered_ts - shipped) / HOUR
            self._stat(self.transit, cr).update(h)
            self._stat(self.transit, ANY).update(h)
        for i, (status, ts) in enumerate(snaps):
            if ts > delivered_ts or (shipped is not None and ts < shipped and status != "created"):
                continue
            rem_h = max(delivered_ts - ts, 60.0) / HOUR
            x = self._features(carrier, region, status, shipped, ts, i + 1)
            skey = status_key(status, i + 1)
            base = self._lookup(self.remaining, cr, skey)
            if base is not None:
                target = math.log(rem_h) - base.mean
                pred = self.regressor.predict_one(x)
                for key in (cr, ANY):
                    self._stat(self.residual, key).update(abs(target - pred) + 1e-3)
                    self._stat(self.baseline, key).update(abs(target) + 1e-3)
                self.regressor.learn_one(x, target)
                self.n_learnt += 1
            self._stat(self.remaining, f"{cr}/{skey}").update(rem_h)
            self._stat(self.remaining, f"{ANY}/{skey}").update(rem_h)

    # ------------------------------------------------------------------ statistics for evidence
    def usual_transit_hours(self, carrier: str, region: str) -> float | None:
        """Typical (median) shipped -> delivered hours of the carrier-region, if known."""
        s = self._lookup(self.transit, f"{carrier}/{region}", None)
        return math.exp(s.mean) if s is not None else None

    def silence_limit_s(self, carrier: str, region: str, status: str, n_scans: int = 1) -> float:
        """Usual upper gap (seconds) after ``status`` (``silence_quantile``); inf if unknown."""
        s = self._lookup(self.gap, f"{carrier}/{region}", status_key(status, n_scans))
        if s is None:
            return math.inf
        return math.exp(s.mean + self.silence_z * s.std) * HOUR

    def recent_shift(self, carrier: str, region: str) -> float:
        """Significant recent slowdown in log units (0 when within noise or faster)."""
        cr = f"{carrier}/{region}"
        if cr not in self.slowness:
            return 0.0
        a = self.recent_alpha
        noise = math.sqrt(self.slowness_sq.get(cr, 0.0) * a / (2 - a))
        return max(self.slowness[cr] - self.slowness_z * noise, 0.0)

    def slowness_factor(self, carrier: str, region: str) -> float:
        """Recent leg durations over usual ones (1.0 = normal, 1.8 = 80 % slower)."""
        return math.exp(self.slowness.get(f"{carrier}/{region}", 0.0))

    # ------------------------------------------------------------------ prediction
    def predict_delivery(self, order_state: Mapping[str, Any], now: float) -> Prediction:
        """Predict the delivery time of an undelivered order at event time ``now``.

        Parameters
        ----------
        order_state : Mapping
            Needs ``carrier``, ``region``, ``last_status``, ``last_ts``; uses ``shipped``,
            ``n_scans``, ``promised_by``, ``eta`` when present.
        now : float
            Current event time of the delivery stream.

        Returns
        -------
        Prediction
            ``predicted_ts`` None when nothing is known about the carrier-region and status.
        """
        carrier, region = str(order_state["carrier"]), str(order_state["region"])
        cr = f"{carrier}/{region}"
        status = str(order_state["last_status"])
        last_ts = float(order_state["last_ts"])
        shipped = order_state.get("shipped")
        promise = order_state.get("promised_by")
        n_scans = int(order_state.get("n_scans", 1))
        silence = max(now - last_ts, 0.0)
        limit = self.silence_limit_s(carrier, region, status, n_scans)
        evidence: list[str] = []
        base = self._lookup(self.remaining, cr, status_key(status, n_scans))
        if base is None:
            return Prediction(None, 0.0, (), silence, limit)
        x = self._features(carrier, region, status, shipped, last_ts, n_scans)
        rs = self._lookup(self.residual, cr, None)
        bs = self._lookup(self.baseline, cr, None)
        # the regression is used only while it beats the plain running mean
        use_model = (self.use_regression and rs is not None and bs is not None
                     and rs.xmean < 0.9 * bs.xmean)
        resid = self.regressor.predict_one(x) if use_model else 0.0
        resid = max(-0.5, min(0.5, resid))
        slow = self.recent_shift(carrier, region)
        mu = base.mean + resid + slow
        err = (rs if use_model else bs) if rs is not None else None
        # mean |error| of a normal = sigma * sqrt(2/pi)
        sigma = max(err.xmean * 1.2533 if err is not None else base.std, self.min_sigma)
        # condition on R > silence (hours)
        u = silence / HOUR
        z_u = (math.log(u) - mu) / sigma if u > 0 else -math.inf
        surv_u = 1.0 - _N.cdf(z_u) if u > 0 else 1.0
        surv_u = max(surv_u, 1e-12)
        q = 1.0 - 0.5 * surv_u
        med_h = math.exp(mu + sigma * _N.inv_cdf(min(max(q, 1e-12), 1 - 1e-12)))
        predicted = last_ts + med_h * HOUR
        eta = order_state.get("eta")
        confidence = 0.0
        if promise is not None:
            p_h = (float(promise) - last_ts) / HOUR
            late = 1.0 - _N.cdf((math.log(p_h) - mu) / sigma) if p_h > u else surv_u
            confidence = late / surv_u
            confidence = min(max(confidence, 0.0), 1.0)
        # evidence, human-readable
        if math.isfinite(limit) and silence > limit:
            evidence.append(f"no scan for {_fmt_hours(u)} after {status} "
                            f"({cr} usually scans within {_fmt_hours(limit / HOUR)})")
        usual = self.usual_transit_hours(carrier, region)
        if slow > 0.0:
            raw = self.slowness[cr]
            extra = (f", ~{_fmt_hours(usual * (math.exp(raw) - 1))} slow per order"
                     if usual is not None else "")
            evidence.append(f"{cr} scans running {math.exp(raw):.1f}x slower than usual{extra}")
        if shipped is not None and usual is not None and now - float(shipped) > usual * HOUR:
            evidence.append(f"in transit {_fmt_hours((now - float(shipped)) / HOUR)}, "
                            f"usual {_fmt_hours(usual)}")
        if eta is not None and promise is not None and float(eta) > float(promise):
            evidence.append("carrier ETA is after the promised time")
        return Prediction(predicted, confidence, tuple(evidence), silence, limit)
