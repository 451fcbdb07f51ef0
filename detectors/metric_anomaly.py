"""General online anomaly detector for one metric series (one value per time step)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

from river import stats

__all__ = ["MetricAnomalyDetector"]

_SQRT2 = math.sqrt(2.0)


class MetricAnomalyDetector:
    """Online anomaly detector for one univariate metric series.

    Each step builds a *raw* surprise in [0, 1] from three causal views of the value:

    * forecast residual: distance to an exponentially weighted level, in units of a robust
      (clipped) exponentially weighted mean absolute residual, so trend and slow drift are
      followed while one spike barely moves the scale;
    * rarity: how far in the tails of the last ``window`` values the value sits (exact rank
      in a sorted rolling window, plus a bonus for leaving the seen range);
    * seasonality (only when ``t`` is given): distance to the typical value for that hour of
      the day, kept separately for weekdays and weekends.

    The raw surprise is then turned into a likelihood, in the spirit of Numenta's "anomaly
    likelihood": the mean of the last ``short_window`` raw values is compared with the
    distribution (rolling mean and variance over ``history`` steps) of that same short mean.
    The Gaussian tail probability is log-scaled and squashed to [0, 1). After a score reaches
    ``alert_score`` the following ``suppress`` steps are damped, so one incident gives one
    early, sharp detection rather than a stream of repeated alarms. Anomalous values update the
    residual scale only through a clipped residual, so they do not poison the model; a lasting
    level shift is still learnt by the level and the rolling window.

    Parameters
    ----------
    grace_period
        Steps during which the score is 0 while the model warms up.
    alpha
        Smoothing factor of the level (exponentially weighted mean of the value).
    scale_alpha
        Smoothing factor of the mean absolute residual.
    window
        Number of recent values whose ranks are used for the rarity view.
    short_window
        Number of raw surprises averaged into the short-term mean.
    history
        Number of short-term means forming the long-term distribution.
    alert_score
        Score from which a detection is considered emitted and suppression starts.
    suppress
        Steps after a detection during which scores are damped.
    damping
        Factor applied to scores during suppression.

    Examples
    --------
    >>> import random
    >>> from detectors.metric_anomaly import MetricAnomalyDetector
    >>> rng = random.Random(42)
    >>> detector = MetricAnomalyDetector()
    >>> scores = [detector.update(10 + rng.gauss(0, 1)) for _ in range(1000)]
    >>> max(scores) < 0.7
    True
    >>> spike = detector.update(30.0)
    >>> spike > 0.7
    True
    >>> 0.0 <= spike <= 1.0
    True

    """

    def __init__(
        self,
        grace_period: int = 150,
        alpha: float = 0.3,
        scale_alpha: float = 0.02,
        window: int = 1000,
        short_window: int = 10,
        history: int = 1000,
        alert_score: float = 0.5,
        suppress: int = 200,
        damping: float = 0.2,
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

        self._n = 0
        self._level = stats.EWMean(fading_factor=alpha)
        self._mad = stats.EWMean(fading_factor=scale_alpha)
        self._recent: deque[float] = deque(maxlen=window)  # arrival order, to expire values
        self._sorted: list[float] = []  # the same values, sorted, for ranks
        self._season: dict[int, tuple[float, float, int]] = {}  # bucket -> (mean, mad, count)
        self._raw: deque[float] = deque(maxlen=short_window)
        self._raw_sum = 0.0
        self._means: deque[float] = deque(maxlen=history)
        self._sum = 0.0
        self._sum_sq = 0.0
        self._quiet_until = 0  # step index until which scores are damped

    # -- views of the value -------------------------------------------------------------------

    def _residual_surprise(self, x: float) -> float:
        if self._n == 0:
            return 0.0
        level = self._level.get()
        scale = self._mad.get() + 1e-9 * (1.0 + abs(level))
        return 1.0 - 2.0 ** (-abs(x - level) / scale / 4.0)

    def _rarity(self, x: float) -> float:
        values = self._sorted
        n = len(values)
        if n < 2:
            return 0.0
        lo, hi = values[0], values[-1]
        span = hi - lo + 1e-9 * (1.0 + abs(hi))
        if x > hi or x < lo:
            beyond = (x - hi if x > hi else lo - x) / span
            return 1.0 - 0.5 * 2.0 ** (-beyond * 4.0)  # in [0.5, 1): new territory
        rank = (bisect_left(values, x) + bisect_right(values, x)) / (2.0 * n)
        tail = min(rank, 1.0 - rank)  # in [0, 0.5]
        return 0.5 * (1.0 - 2.0 * tail) ** 8  # only the outer few percent matter

    @staticmethod
    def _bucket(t: float) -> int:
        """Hour of day, separately for weekdays (0..23) and weekends (24..47)."""
        hour = int(t // 3600.0) % 24
        weekday = (int(t // 86400.0) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        return hour + (24 if weekday >= 5 else 0)

    def _seasonal_surprise(self, x: float, t: float | None) -> float:
        if t is None:
            return 0.0
        entry = self._season.get(self._bucket(t))
        if entry is None or entry[2] < 20:
            return 0.0
        mean, mad, _ = entry
        scale = mad + 1e-9 * (1.0 + abs(mean))
        return 1.0 - 2.0 ** (-abs(x - mean) / scale / 4.0)

    # -- likelihood ---------------------------------------------------------------------------

    def _assess(self, x: float, t: float | None) -> tuple[float, float, float]:
        """Return (raw surprise, new short mean, score) without changing the state."""
        raw = max(self._residual_surprise(x), self._rarity(x), self._seasonal_surprise(x, t))
        k = len(self._raw)
        dropped = self._raw[0] if k == self.short_window else 0.0
        short = (self._raw_sum - dropped + raw) / min(k + 1, self.short_window)
        if self._n < self.grace_period or len(self._means) < 2:
            return raw, short, 0.0
        m = len(self._means)
        mean = self._sum / m
        std = math.sqrt(max(self._sum_sq / m - mean * mean, 0.0))
        z = (short - mean) / max(std, 0.01)
        tail = 0.5 * math.erfc(z / _SQRT2)
        nlog = -math.log10(max(tail, 1e-300))
        score = nlog / (nlog + 4.0)  # 0.5 at a 1e-4 tail, monotone, never saturates to 1
        if self._n < self._quiet_until:
            score *= self.damping
        return raw, short, score

    def _learn(self, x: float, t: float | None, raw: float, short: float, score: float) -> None:
        if score >= self.alert_score:
            self._quiet_until = self._n + 1 + self.suppress
        # Bounded influence: one wild value moves the residual scale at most a few scales.
        level = self._level.get()
        if self._n > 0:
            scale = self._mad.get()
            residual = abs(x - level)
            self._mad.update(min(residual, 4.0 * scale) if self._n > 20 else residual)
        self._level.update(x)
        self._learn_window(x)
        if t is not None:
            self._learn_season(x, t)
        if len(self._raw) == self.short_window:
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
        self._n += 1

    def _learn_window(self, x: float) -> None:
        if len(self._recent) == self.window:
            old = self._recent[0]
            del self._sorted[bisect_left(self._sorted, old)]
        self._recent.append(x)
        insort(self._sorted, x)

    def _learn_season(self, x: float, t: float) -> None:
        b = self._bucket(t)
        mean, mad, count = self._season.get(b, (x, 0.0, 0))
        a = max(0.05, 1.0 / (count + 1))  # plain average first, then exponential forgetting
        dev = abs(x - mean)
        if count > 20:
            dev = min(dev, 4.0 * mad)
        self._season[b] = (mean + a * (x - mean), mad + a * (dev - mad), count + 1)

    # -- public API ---------------------------------------------------------------------------

    def learn_one(self, x: float, t: float | None = None) -> None:
        """Update the model with the value ``x`` observed at event time ``t``."""
        self._learn(x, t, *self._assess(x, t))

    def score_one(self, x: float, t: float | None = None) -> float:
        """Anomaly score of ``x`` in [0, 1] (high = anomalous), without learning it."""
        return self._assess(x, t)[2]

    def update(self, x: float, t: float | None = None) -> float:
        """Score ``x`` then learn it; the production call. Returns the score."""
        raw, short, score = self._assess(x, t)
        self._learn(x, t, raw, short, score)
        return score
