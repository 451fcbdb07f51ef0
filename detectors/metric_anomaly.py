"""General online anomaly detector for one metric series (one value per time step)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

from river import stats

__all__ = ["MetricAnomalyDetector"]

_SQRT2 = math.sqrt(2.0)


class _RollingRank:
    """Values of a bounded rolling window kept sorted, to give exact tail probabilities."""

    __slots__ = ("_recent", "_sorted", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._recent: deque[float] = deque(maxlen=size)  # arrival order, to expire values
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

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
        if not self._highs:
            return None
        return self._lows[0][1], self._highs[0][1]

    def add(self, x: float) -> None:
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

    __slots__ = ("_means", "_raw", "_raw_sum", "_sum", "_sum_sq", "floor", "history", "short")

    def __init__(self, short: int, history: int, floor: float) -> None:
        self.short = short
        self.history = history
        self.floor = floor
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
        z = (short - mean) / max(std, self.floor)
        return short, -math.log10(max(0.5 * math.erfc(z / _SQRT2), 1e-300))

    def learn(self, raw: float, short: float) -> None:
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

    DOCSTRING
    """

    def __init__(
        self,
        grace_period: int = 150,
        alpha: float = 0.3,
        scale_alpha: float = 0.02,
        window: int = 1000,
        short_window: int | tuple[int, ...] = 10,
        history: int = 1000,
        alert_score: float = 0.5,
        suppress: int = 200,
        damping: float = 0.2,
        season_warmup: int = 20,
        mode: int = 0,
        comb: int = 0,
        floor: float = 0.01,
        gate: bool = True,
        tolerance: float = 0.05,
        range_window: int = 20000,
        spatial_mode: int = 1,
        frac: float = 0.0,
    ) -> None:
        self.frac = frac
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
        self.mode = mode
        self.comb = comb
        self.floor = floor
        self.gate = gate
        self.tolerance = tolerance
        self.range_window = range_window
        self.spatial_mode = spatial_mode
        self._range = _RollingExtremes(range_window)

        self._n = 0
        self._level = stats.EWMean(fading_factor=alpha)
        self._mad = stats.EWMean(fading_factor=scale_alpha)
        self._values = _RollingRank(window)
        self._residuals = _RollingRank(window)
        self._season: dict[int, tuple[float, float, int]] = {}  # bucket -> (mean, mad, count)
        windows = tuple(short_window) if isinstance(short_window, tuple | list) else (short_window,)
        self._likelihoods = [_Likelihood(w, history, floor) for w in windows]
        self._quiet_until = 0  # step index until which scores are damped

    # -- views of the value -------------------------------------------------------------------

    def _residual_surprise(self, x: float) -> float:
        if self._n == 0:
            return 0.0
        level = self._level.get()
        scale = self._mad.get() + 1e-9 * (1.0 + abs(level))
        return 1.0 - 2.0 ** (-abs(x - level) / scale / 4.0)

    @staticmethod
    def _buckets(t: float) -> tuple[int, int]:
        """(hour of the week, 168 + hour of the day) of epoch time ``t``."""
        hours = int(t // 3600.0)
        return (hours + 72) % 168, 168 + hours % 24  # 1970-01-01 was a Thursday: shift to Monday

    def _seasonal_surprise(self, x: float, t: float | None) -> float:
        """Surprise against the hour-of-week profile, or the hour-of-day one while it is young."""
        if t is None:
            return -1.0
        for bucket in self._buckets(t):
            entry = self._season.get(bucket)
            if entry is not None and entry[2] >= self.season_warmup:
                mean, mad, _ = entry
                scale = mad + 1e-9 * (1.0 + abs(mean))
                return 1.0 - 2.0 ** (-abs(x - mean) / scale / 4.0)
        return -1.0

    def _raw_surprise(self, x: float, t: float | None) -> float:
        if self.mode == 0:
            residual = self._residual_surprise(x)
        else:
            residual = self._residuals.surprise(x - self._level.get()) if self._n else 0.0
        seasonal = self._seasonal_surprise(x, t)
        if seasonal >= 0.0 and self.gate:  # a jump usual for this hour of the day is no surprise
            residual = min(residual, seasonal)
        rar = self._values.surprise(x)
        if self.comb == 1:
            return residual
        if self.comb == 2:
            return rar
        if self.comb == 3:
            return 0.5 * (rar + residual)
        return max(residual, rar)

    # -- likelihood ---------------------------------------------------------------------------

    def _assess(self, x: float, t: float | None) -> tuple[float, list[float], float]:
        """Return (raw surprise, new short means, score) without changing the state."""
        raw = self._raw_surprise(x, t)
        shorts = []
        nlog = 0.0
        for lik in self._likelihoods:
            short, nl = lik.assess(raw)
            shorts.append(short)
            nlog = max(nlog, nl)
        if self._n < self.grace_period:
            return raw, shorts, 0.0
        score = nlog / (nlog + 4.0)  # 0.5 at a 1e-4 tail, monotone, never saturates to 1
        if self._n < self._quiet_until and self.spatial_mode != 2:
            score *= self.damping
        if self.spatial_mode:
            score = max(score, self._spatial_score(x))
        if self._n < self._quiet_until and self.spatial_mode == 2:
            score *= self.damping
        return raw, shorts, score

    def _spatial_score(self, x: float) -> float:
        """Numenta's spatial rule: leaving the long-term range by a margin is an anomaly."""
        bounds = self._range.bounds()
        if bounds is None or bounds[1] <= bounds[0]:
            return 0.0
        lo, hi = bounds
        margin = (hi - lo) * self.tolerance
        beyond = max(x - hi - margin, lo - margin - x)
        if beyond <= 0.0:
            return 0.0
        return 1.0 - 0.5 * 2.0 ** (-10.0 * beyond / (hi - lo))

    def _learn(self, x: float, t: float | None, raw: float, shorts: list[float], score: float) -> None:
        if score >= self.alert_score:
            self._quiet_until = self._n + 1 + max(self.suppress, int(self.frac * self._n))
        # Bounded influence: one wild value moves the residual scale at most a few scales.
        level = self._level.get()
        if self._n > 0:
            scale = self._mad.get()
            residual = abs(x - level)
            self._mad.update(min(residual, 4.0 * scale) if self._n > 20 else residual)
        self._level.update(x)
        self._values.add(x)
        self._range.add(x)
        if self._n > 0:
            self._residuals.add(x - level)
        if t is not None:
            self._learn_season(x, t)
        for lik, short in zip(self._likelihoods, shorts, strict=True):
            lik.learn(raw, short)
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
        """Update the model with the value ``x`` observed at event time ``t``."""
        self._learn(x, t, *self._assess(x, t))

    def score_one(self, x: float, t: float | None = None) -> float:
        """Anomaly score of ``x`` in [0, 1] (high = anomalous), without learning it."""
        return self._assess(x, t)[2]

    def update(self, x: float, t: float | None = None) -> float:
        """Score ``x`` then learn it; the production call. Returns the score."""
        raw, shorts, score = self._assess(x, t)
        self._learn(x, t, raw, shorts, score)
        return score
