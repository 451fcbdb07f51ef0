"""General online anomaly detector for one metric series (one value per time step).

Design notes (why it looks like this) are in ``docs/nab.md``; the NAB runner and scorer that
measure it live in :mod:`detectors.nab`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

from river import stats

from detectors.exceptions import DetectorError

__all__ = ["MetricAnomalyDetector"]

_SQRT2 = math.sqrt(2.0)
_MIN_STD = 0.01  # floor of the short-mean spread in the likelihood
_LIKELIHOOD_SCALE = 4.0  # -log10 tail at which the likelihood score is 0.5 (a 1e-4 tail)


class _RollingRank:
    """Values of a bounded rolling window kept sorted, to give exact tail probabilities."""

    __slots__ = ("_recent", "_sorted", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._recent: deque[float] = deque(maxlen=size)  # arrival order, to expire values
        self._sorted: list[float] = []

    def surprise(self, x: float) -> float:
        """0 in the middle of the window, 0.8 at its edges, up to 1 far outside its range."""
        values = self._sorted
        n = len(values)
        if n < 10:
            return 0.0
        lo, hi = values[0], values[-1]
        if x > hi or x < lo:
            span = hi - lo + 1e-9 * (1.0 + abs(hi))
            beyond = (x - hi if x > hi else lo - x) / span
            return 1.0 - 0.2 * 2.0 ** (-beyond * 4.0)
        below, upto = bisect_left(values, x), bisect_right(values, x)
        tail = min(upto, n - below) / (n + 1.0)  # one-sided tail mass, ties included
        return 0.8 * math.log(max(0.5 / tail, 1.0)) / math.log(0.5 * (n + 1.0))

    def add(self, x: float) -> None:
        """Add ``x``, expiring the oldest value once the window is full."""
        if len(self._recent) == self.size:
            del self._sorted[bisect_left(self._sorted, self._recent[0])]
        self._recent.append(x)
        insort(self._sorted, x)


class _RollingExtremes:
    """Minimum and maximum of the last ``size`` values (monotonic deques, amortised O(1))."""

    __slots__ = ("_highs", "_lows", "_n", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._n = 0
        self._highs: deque[tuple[int, float]] = deque()  # decreasing values
        self._lows: deque[tuple[int, float]] = deque()  # increasing values

    def bounds(self) -> tuple[float, float] | None:
        """(min, max) of the window, or None while it is empty."""
        if not self._highs:
            return None
        return self._lows[0][1], self._highs[0][1]

    def add(self, x: float) -> None:
        """Add ``x``; values older than ``size`` steps expire."""
        while self._highs and self._highs[-1][1] <= x:
            self._highs.pop()
        while self._lows and self._lows[-1][1] >= x:
            self._lows.pop()
        self._highs.append((self._n, x))
        self._lows.append((self._n, x))
        self._n += 1
        expired = self._n - self.size
        if self._highs[0][0] < expired:
            self._highs.popleft()
        if self._lows[0][0] < expired:
            self._lows.popleft()


class _Likelihood:
    """Numenta-style anomaly likelihood of a raw surprise stream.

    The mean of the last ``short`` raw surprises is compared with the distribution (rolling mean
    and variance over ``history`` steps) of that same short mean; the result is
    ``-log10`` of the Gaussian upper-tail probability.
    """

    __slots__ = ("_means", "_raw", "_raw_sum", "_sum", "_sum_sq", "history", "min_std", "short")

    def __init__(self, short: int, history: int, min_std: float) -> None:
        self.short = short
        self.history = history
        self.min_std = min_std  # a flat history must not turn noise into certainty
        self._raw: deque[float] = deque(maxlen=short)
        self._raw_sum = 0.0
        self._means: deque[float] = deque(maxlen=history)
        self._sum = 0.0
        self._sum_sq = 0.0

    def assess(self, raw: float) -> tuple[float, float]:
        """(short mean including ``raw``, -log10 tail probability); no state change."""
        k = len(self._raw)
        dropped = self._raw[0] if k == self.short else 0.0
        short = (self._raw_sum - dropped + raw) / min(k + 1, self.short)
        m = len(self._means)
        if m < 2:
            return short, 0.0
        mean = self._sum / m
        std = math.sqrt(max(self._sum_sq / m - mean * mean, 0.0))
        z = (short - mean) / max(std, self.min_std)
        return short, -math.log10(max(0.5 * math.erfc(z / _SQRT2), 1e-300))

    def learn(self, raw: float, short: float) -> None:
        """Record ``raw`` and the short mean returned for it by :meth:`assess`."""
        if len(self._raw) == self.short:
            self._raw_sum -= self._raw[0]
        self._raw.append(raw)
        self._raw_sum += raw
        if len(self._means) == self.history:
            old = self._means[0]
            self._sum -= old
            self._sum_sq -= old * old
        self._means.append(short)
        self._sum += short
        self._sum_sq += short * short


class MetricAnomalyDetector:
    """Online anomaly detector for one univariate metric series.

    Each step turns the value into a *raw surprise* in [0, 1] from causal views of the past:

    * **forecast residual**: distance to an exponentially weighted level (River's
      ``stats.EWMean``) in units of a robust, clipped mean absolute residual, so trends and
      slow drift are followed while a single spike barely moves the scale;
    * **seasonality** (only when the event time ``t`` is given): the same distance to the
      typical value of this hour of the week, or of the day while the weekly profile is young.
      The residual counts only as far as the seasonal view agrees, so a daily ramp that
      happens every day stops looking like a jump once it has been seen a few times;
    * **rarity**: the exact two-sided tail mass of the value within the last ``window``
      values (a sorted rolling window), with a bonus for leaving their range.

    The raw surprise becomes a likelihood, like Numenta's "anomaly likelihood": the mean of
    the last ``short_window`` raw surprises is compared with the rolling distribution (mean and
    variance over ``history`` steps) of that same short mean; ``-log10`` of the Gaussian tail
    is squashed to [0, 1), with 0.5 at a 1e-4 tail. A *spatial* rule (also from Numenta's NAB
    detector) scores at least 0.5 whenever the value leaves the range of the last
    ``range_window`` values by more than ``tolerance`` times that range with a jump away from
    the level (not by following a trend).

    Once a score reaches ``alert_score``, likelihood scores of the next ``suppress`` steps are
    multiplied by ``damping``: one incident gives one early, sharp detection instead of a
    stream of repeated alarms. Anomalies are kept from poisoning the model by clipping their
    residuals (bounded influence) in the scale and seasonal profiles; a lasting level shift is
    still learnt by the level and the rolling windows. All state is bounded by the window sizes.

    Parameters
    ----------
    grace_period
        Steps during which the score is 0 while the model warms up.
    alpha
        Smoothing factor of the level (exponentially weighted mean of the value).
    scale_alpha
        Smoothing factor of the mean absolute residual.
    window
        Number of recent values used for the rarity view.
    short_window
        Number of raw surprises averaged into the short-term mean.
    history
        Number of short-term means forming the long-term distribution.
    alert_score
        Score from which a detection counts as emitted and suppression starts.
    suppress
        Steps after a detection during which likelihood scores are damped.
    damping
        Factor applied to likelihood scores during suppression.
    season_warmup
        Observations a seasonal bucket needs before it is trusted.
    tolerance
        Margin, as a fraction of the recent range, beyond which a value is a spatial anomaly.
    range_window
        Number of recent values defining that range.
    spatial_gate
        The spatial rule applies only when the residual view is at least this surprised
        (0.5 = four residual scales from the level), so a steady trend does not keep firing.

    Raises
    ------
    DetectorError
        When a value is not finite (NaN or infinite); the caller decides how to fill gaps.

    Examples
    --------
    >>> import math
    >>> import random
    >>> from detectors.metric_anomaly import MetricAnomalyDetector
    >>> rng = random.Random(42)
    >>> detector = MetricAnomalyDetector()
    >>> scores = [
    ...     detector.update(10 + 3 * math.sin(i / 20) + rng.gauss(0, 0.5), t=600.0 * i)
    ...     for i in range(2000)
    ... ]
    >>> max(scores[1000:]) < 0.5  # a quiet, seasonal series raises no alarm
    True
    >>> detector.score_one(30.0, t=600.0 * 2000) > 0.5  # a spike does
    True
    >>> detector.score_one(10.0, t=600.0 * 2000) < 0.5
    True

    """

    def __init__(
        self,
        grace_period: int = 150,
        alpha: float = 0.1,
        scale_alpha: float = 0.02,
        window: int = 2000,
        short_window: int = 10,
        history: int = 1000,
        alert_score: float = 0.5,
        suppress: int = 200,
        damping: float = 0.2,
        season_warmup: int = 40,
        tolerance: float = 0.03,
        range_window: int = 5000,
        spatial_gate: float = 0.5,
    ) -> None:
        self.grace_period = grace_period
        self.alpha = alpha
        self.scale_alpha = scale_alpha
        self.window = window
        self.short_window = short_window
        self.history = history
        self.alert_score = alert_score
        self.suppress = suppress
        self.damping = damping
        self.season_warmup = season_warmup
        self.tolerance = tolerance
        self.range_window = range_window
        self.spatial_gate = spatial_gate

        self._n = 0
        self._level = stats.EWMean(fading_factor=alpha)
        self._mad = stats.EWMean(fading_factor=scale_alpha)
        self._values = _RollingRank(window)
        self._range = _RollingExtremes(range_window)
        self._season: dict[int, tuple[float, float, int]] = {}  # bucket -> (mean, mad, count)
        self._likelihood = _Likelihood(short_window, history, _MIN_STD)
        self._quiet_until = 0  # step index until which likelihood scores are damped

    # -- views of the value -------------------------------------------------------------------

    @staticmethod
    def _distance(x: float, centre: float, scale: float) -> float:
        """Distance in scales squashed to [0, 1): 0.5 at four scales."""
        scale += 1e-9 * (1.0 + abs(centre))  # a flat series must not divide by zero
        return 1.0 - 2.0 ** (-abs(x - centre) / scale / 4.0)

    @staticmethod
    def _buckets(t: float) -> tuple[int, int]:
        """(hour of the week, 168 + hour of the day) of epoch seconds ``t``."""
        hours = int(t // 3600.0)
        return (hours + 72) % 168, 168 + hours % 24  # 1970-01-01 was a Thursday; Monday = 0

    def _seasonal_surprise(self, x: float, t: float) -> float | None:
        """Surprise against the hour-of-week profile, else the hour-of-day one, else None."""
        for bucket in self._buckets(t):
            entry = self._season.get(bucket)
            if entry is not None and entry[2] >= self.season_warmup:
                return self._distance(x, entry[0], entry[1])
        return None

    def _raw_surprise(self, x: float, t: float | None) -> float:
        residual = 0.0
        if self._n:
            residual = self._distance(x, self._level.get(), self._mad.get())
        seasonal = None if t is None else self._seasonal_surprise(x, t)
        if seasonal is not None:  # a jump that is usual at this hour is no surprise
            residual = min(residual, seasonal)
        return max(residual, self._values.surprise(x))

    def _spatial_score(self, x: float) -> float:
        """Leaving the recent range by a margin scores in [0.5, 1), growing with the distance."""
        bounds = self._range.bounds()
        if bounds is None or bounds[1] <= bounds[0]:
            return 0.0
        # A trend sets new extremes all the time, but close to the level: only a jump counts.
        if self._distance(x, self._level.get(), self._mad.get()) < self.spatial_gate:
            return 0.0
        lo, hi = bounds
        margin = (hi - lo) * self.tolerance
        beyond = max(x - hi - margin, lo - margin - x)
        if beyond <= 0.0:
            return 0.0
        return 1.0 - 0.5 * 2.0 ** (-10.0 * beyond / (hi - lo))

    # -- scoring and learning -----------------------------------------------------------------

    def _assess(self, x: float, t: float | None) -> tuple[float, float, float]:
        """(raw surprise, short mean, score) of ``x``; changes no state."""
        if not math.isfinite(x):  # one NaN would corrupt the sorted windows for good
            raise DetectorError(f"MetricAnomalyDetector needs finite values, got {x!r}")
        raw = self._raw_surprise(x, t)
        short, nlog = self._likelihood.assess(raw)
        if self._n < self.grace_period:
            return raw, short, 0.0
        score = nlog / (nlog + _LIKELIHOOD_SCALE)  # monotone; never saturates, so ties are rare
        if self._n < self._quiet_until:
            score *= self.damping
        return raw, short, max(score, self._spatial_score(x))

    def _learn(self, x: float, t: float | None, raw: float, short: float, score: float) -> None:
        if score >= self.alert_score:
            self._quiet_until = self._n + 1 + self.suppress
        if self._n:
            # Bounded influence: one wild value moves the residual scale by a few scales at most.
            residual = abs(x - self._level.get())
            scale = self._mad.get()
            self._mad.update(min(residual, 4.0 * scale) if self._n > 20 else residual)
        self._level.update(x)
        self._values.add(x)
        self._range.add(x)
        if t is not None:
            self._learn_season(x, t)
        self._likelihood.learn(raw, short)
        self._n += 1

    def _learn_season(self, x: float, t: float) -> None:
        for bucket in self._buckets(t):
            mean, mad, count = self._season.get(bucket, (x, 0.0, 0))
            a = max(0.05, 1.0 / (count + 1))  # plain average first, then exponential forgetting
            dev = abs(x - mean)
            if count > self.season_warmup:
                dev = min(dev, 4.0 * mad)  # bounded influence of anomalies on the profile
            self._season[bucket] = (mean + a * (x - mean), mad + a * (dev - mad), count + 1)

    # -- public API ---------------------------------------------------------------------------

    def learn_one(self, x: float, t: float | None = None) -> None:
        """Update the model with value ``x`` observed at event time ``t`` (epoch seconds)."""
        self._learn(x, t, *self._assess(x, t))

    def score_one(self, x: float, t: float | None = None) -> float:
        """Anomaly score of ``x`` in [0, 1] (high = anomalous), without learning it."""
        return self._assess(x, t)[2]

    def update(self, x: float, t: float | None = None) -> float:
        """Score ``x``, then learn it; the production call. Returns the score."""
        raw, short, score = self._assess(x, t)
        self._learn(x, t, raw, short, score)
        return score
