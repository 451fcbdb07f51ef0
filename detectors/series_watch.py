"""Watch many named count/mean series in event time and raise alert episodes.

:class:`SeriesWatcher` buckets observations per series into event-time steps (default one
minute). :meth:`SeriesWatcher.advance` closes every step that ended more than ``grace_s``
before ``now``, in order, feeding each closed step's value to the series' anomaly detector and
turning scores into episodes with :class:`~detectors.episodes.EpisodeTracker`.

Scoring
-------
*Count* series (complaints per reason, rage clicks per page) are Poisson-like at low rates, so a
generic detector alone either misses small spikes or raises false alarms. For them the score
is a Poisson scan test against a robust baseline:

* expected per step: the detector's forecast when it exposes one (an ``expected`` attribute or
  method, read *before* the step is learnt), else the watcher's own baseline: an exponentially
  weighted mean (half-life ``baseline_halflife_steps``) that is not updated while an episode is
  open or a step is itself anomalous, and whose input is clipped, so spikes do not leak into it;
* for each window of the last ``w`` steps (``windows``, default 1 to 5) the Poisson tail
  probability of the window's total given its expected total (upper tail for ``up``, lower tail
  for ``down``), times the number of windows tested (Bonferroni): the smallest gives ``p``;
* a window only counts when its total is at least ``min_count`` and at least ``min_ratio`` times
  the expected total (``down``: at most expected / ``min_ratio``, with at least ``min_count``
  expected): large, statistically significant but small relative changes are not incidents;
* Poisson score ``1 - p ** 0.25`` (``p = 1e-4`` gives 0.9, ``1e-8`` gives 0.99);
* the detector's own score can raise the step score only when the Poisson test already
  supports it (``p <= detector_support_p``), so a detector's noise cannot fire on its own.

*Mean* series (CSAT per minute, a ratio fed as 0/1 values) use the detector score; steps with
fewer than ``min_samples`` values are skipped. Missing steps of a *count* series are zeros and
are fed too, in order, at most ``max_catchup_steps`` of them (a longer silence skips ahead).
No score is produced during the first ``warmup_steps`` steps of a series.

Observations older than the last closed step of their series are *late*: counted in
:attr:`SeriesWatcher.late_events` and dropped. New series beyond ``max_series`` are dropped
and counted in :attr:`SeriesWatcher.dropped_series`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from detectors.episodes import AlertEvent, Direction, EpisodeTracker

Kind = Literal["count", "mean"]

#: Default grace of a step: it closes once the clock is this far past its end.
DEFAULT_GRACE_S = 10.0


class SeriesDetector(Protocol):
    """What the watcher needs from a per-series detector (``MetricAnomalyDetector`` fits).

    ``update(x, t)`` learns the step value ``x`` at event time ``t`` and returns a score in
    [0, 1]. Optionally, an ``expected`` attribute or zero-argument method gives the forecast
    for the next step (read before ``update``).
    """

    def update(self, x: float, t: float | None = None) -> float: ...


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """How a family of series (the name before ``{``) alerts.

    ``title`` is a template formatted with the series labels (missing labels print as "?").
    """

    alert_type: str = "metric_anomaly"
    direction: Direction = "up"
    title: str | None = None


#: Families known out of the box; others get ``SeriesSpec()`` (metric_anomaly, up).
DEFAULT_FAMILIES: dict[str, SeriesSpec] = {
    "complaints": SeriesSpec("complaint_spike", "up", "Complaints about {reason}"),
    "rage_clicks": SeriesSpec("rage_click_storm", "up", "Rage clicks on {page}"),
    "csat": SeriesSpec("metric_anomaly", "down", "CSAT"),
}


class _Labels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def poisson_sf(k: float, lam: float) -> float:
    """``P(X >= k)`` for ``X ~ Poisson(lam)`` (regularized lower incomplete gamma).

    Examples
    --------
    >>> round(poisson_sf(3, 1.0), 4), poisson_sf(0, 2.0), round(poisson_sf(10, 10.0), 4)
    (0.0803, 1.0, 0.5421)
    """
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    return _gammp(math.ceil(k), lam)


def poisson_cdf(k: float, lam: float) -> float:
    """``P(X <= k)`` for ``X ~ Poisson(lam)``.

    Examples
    --------
    >>> round(poisson_cdf(0, 1.0), 4), round(poisson_cdf(2, 10.0), 6)
    (0.3679, 0.002769)
    """
    if k < 0:
        return 0.0
    if lam <= 0:
        return 1.0
    return (
        1.0 - _gammp(math.floor(k) + 1, lam)
        if lam < math.floor(k) + 2
        else _gammq(math.floor(k) + 1, lam)
    )


def _gammp(a: float, x: float) -> float:
    if x < a + 1.0:
        ap = a
        d = s = 1.0 / a
        for _ in range(10_000):
            ap += 1.0
            d *= x / ap
            s += d
            if abs(d) < abs(s) * 1e-13:
                break
        return min(1.0, s * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    return 1.0 - _gammq(a, x)


def _gammq(a: float, x: float) -> float:
    # Continued fraction (modified Lentz), valid for x >= a + 1.
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-13:
            break
    return max(0.0, min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h))


class _Series:
    __slots__ = (
        "base_n",
        "baseline",
        "buckets",
        "detector",
        "hist_exp",
        "hist_obs",
        "kind",
        "labels",
        "last_expected",
        "last_observed",
        "last_score",
        "name",
        "next_step",
        "spec",
        "steps",
        "tracker",
        "var",
    )

    def __init__(
        self,
        name: str,
        labels: dict[str, str],
        kind: Kind,
        first_step: int,
        detector: SeriesDetector,
        tracker: EpisodeTracker,
        spec: SeriesSpec,
        max_window: int,
    ) -> None:
        self.name = name
        self.labels = labels
        self.kind = kind
        self.next_step = first_step
        self.buckets: dict[int, list[float]] = {}
        self.detector = detector
        self.tracker = tracker
        self.spec = spec
        self.steps = 0
        self.base_n = 0
        self.baseline = 0.0
        self.var = 0.0
        self.hist_obs: deque[float] = deque(maxlen=max_window)
        self.hist_exp: deque[float] = deque(maxlen=max_window)
        self.last_score = 0.0
        self.last_observed = 0.0
        self.last_expected = 0.0


def _default_detector_factory() -> Callable[[], SeriesDetector]:
    from detectors.metric_anomaly import MetricAnomalyDetector

    return MetricAnomalyDetector


class SeriesWatcher:
    """Event-time bucketing, per-series anomaly scoring and alert episodes for many series.

    Parameters
    ----------
    detector_factory : callable, optional
        Builds one detector per series (:class:`SeriesDetector` protocol). Default:
        ``detectors.metric_anomaly.MetricAnomalyDetector``.
    step_s : float, default 60
        Bucket width (event-time seconds).
    grace_s : float, default 10
        A step closes once ``now`` is ``grace_s`` past its end (room for out-of-order events).
    threshold : float, default 0.9
        Step score that opens an episode (Poisson ``p <= 1e-4`` for count series).
    clear_steps : int, default 5
        Consecutive normal steps that close an episode.
    windows : tuple of int, default (1, 2, 3, 4, 5)
        Step windows of the Poisson scan for count series.
    min_count : float, default 5
        Least window total that may alert (count series).
    min_ratio : float, default 1.5
        Least observed/expected ratio of a window that may alert (count series).
    min_expected : float, default 0.1
        Floor of the expected count per step (a never-seen series is not infinitely surprising).
    min_samples : int, default 3
        Least values in a step of a mean series for the step to be scored.
    warmup_steps : int, default 60
        Steps of a series before it may alert.
    baseline_halflife_steps : float, default 20
        Half-life of the watcher's own baseline (fallback ``expected``).
    detector_support_p : float, default 1e-3
        Poisson ``p`` under which the detector's score may raise a count series' score.
    max_catchup_steps : int, default 180
        Most missing steps fed on one advance for a silent count series.
    max_series : int, default 10_000
        Bound on series; new ones beyond it are dropped and counted.
    families : mapping of str to SeriesSpec, default :data:`DEFAULT_FAMILIES`
        Alert type, direction and title per series family.
    critical_score, critical_ratio : float, default 0.99, 3.0
        Severity rule of :class:`~detectors.episodes.EpisodeTracker`.

    Examples
    --------
    >>> import random
    >>> class Flat:  # a stand-in detector: scores nothing, so the Poisson test decides
    ...     def update(self, x, t=None):
    ...         return 0.0
    >>> w = SeriesWatcher(detector_factory=Flat)
    >>> rng, t0, out = random.Random(1), 1_700_000_000.0, []
    >>> for minute in range(240):
    ...     rate = 20 if 180 <= minute < 200 else 5
    ...     for _ in range(rng.randint(rate - 2, rate + 2)):
    ...         _ = w.observe('complaints{reason="billing"}', {"reason": "billing"},
    ...                   t0 + 60 * minute + rng.uniform(0, 60))
    ...     out += w.advance(t0 + 60 * minute + 70)
    >>> [(a.kind, a.alert_type, a.severity) for a in out]
    [('firing', 'complaint_spike', 'critical'), ('resolved', 'complaint_spike', 'critical')]
    >>> out[0].explanation.startswith("Complaints about billing: ")
    True
    """

    def __init__(
        self,
        detector_factory: Callable[[], SeriesDetector] | None = None,
        step_s: float = 60.0,
        grace_s: float = DEFAULT_GRACE_S,
        threshold: float = 0.9,
        clear_steps: int = 5,
        windows: tuple[int, ...] = (1, 2, 3, 4, 5),
        min_count: float = 5.0,
        min_ratio: float = 1.5,
        min_expected: float = 0.1,
        min_samples: int = 3,
        warmup_steps: int = 60,
        baseline_halflife_steps: float = 20.0,
        detector_support_p: float = 1e-3,
        max_catchup_steps: int = 180,
        max_series: int = 10_000,
        families: Mapping[str, SeriesSpec] | None = None,
        critical_score: float = 0.99,
        critical_ratio: float = 3.0,
    ) -> None:
        self.detector_factory = detector_factory or _default_detector_factory()
        self.step_s = step_s
        self.grace_s = grace_s
        self.threshold = threshold
        self.clear_steps = clear_steps
        self.windows = tuple(sorted(set(windows)))
        self.min_count = min_count
        self.min_ratio = min_ratio
        self.min_expected = min_expected
        self.min_samples = min_samples
        self.warmup_steps = warmup_steps
        self.alpha = 1.0 - 0.5 ** (1.0 / baseline_halflife_steps)
        self.detector_support_p = detector_support_p
        self.max_catchup_steps = max_catchup_steps
        self.max_series = max_series
        self.families = dict(DEFAULT_FAMILIES if families is None else families)
        self.critical_score = critical_score
        self.critical_ratio = critical_ratio
        self.late_events = 0
        self.dropped_series = 0
        self._series: dict[str, _Series] = {}
        self._first_step: int | None = None  # the first step this watcher saw: it watches from then on
        self._unit = "/min" if step_s == 60 else f"/{step_s:g}s"

    # -- input -----------------------------------------------------------------------------

    def observe(
        self,
        series: str,
        labels: Mapping[str, str],
        ts: float,
        value: float = 1.0,
        kind: Kind = "count",
    ) -> bool:
        """Add ``value`` at event time ``ts`` to ``series``; return False if dropped.

        ``kind`` (fixed by the first observation of a series): ``"count"`` sums values per
        step (pass 1.0 per event, or a pre-aggregated count); ``"mean"`` averages them.
        """
        s = self._series.get(series)
        k = int(ts // self.step_s)
        if self._first_step is None:
            self._first_step = k
        if s is None:
            if len(self._series) >= self.max_series:
                self.dropped_series += 1
                return False
            s = self._new_series(series, dict(labels), kind, k)
        elif k < s.next_step:
            self.late_events += 1
            return False
        b = s.buckets.get(k)
        if b is None:
            s.buckets[k] = [value, 1.0]
        else:
            b[0] += value
            b[1] += 1.0
        return True

    def observe_step(
        self,
        series: str,
        labels: Mapping[str, str],
        step: int,
        total: float,
        count: float,
        kind: Kind = "count",
    ) -> bool:
        """Add a pre-aggregated step (``total`` of ``count`` values) to ``series``; False if dropped.

        For a caller that buckets upstream (the fleet's series owners sum the partials of every
        partition): the same as ``count`` calls of :meth:`observe` in step ``step`` whose values
        sum to ``total``. Close steps with :meth:`advance_steps`.
        """
        s = self._series.get(series)
        if self._first_step is None:
            self._first_step = step
        if s is None:
            if len(self._series) >= self.max_series:
                self.dropped_series += 1
                return False
            s = self._new_series(series, dict(labels), kind, step)
        elif step < s.next_step:
            self.late_events += 1
            return False
        b = s.buckets.get(step)
        if b is None:
            s.buckets[step] = [total, count]
        else:
            b[0] += total
            b[1] += count
        return True

    def watch_from(self, step: int) -> None:
        """The watched data starts at ``step`` (the earliest step of any upstream source).

        A count series first seen later starts warm on the zeros since then (see
        :meth:`_new_series`); by default that start is the step of the first observation.
        """
        if self._first_step is None or step < self._first_step:
            self._first_step = step

    def _new_series(self, name: str, labels: dict[str, str], kind: Kind, k: int) -> _Series:
        spec = self.families.get(name.split("{", 1)[0], SeriesSpec())
        title = spec.title.format_map(_Labels(labels)) if spec.title else name
        tracker = EpisodeTracker(
            name,
            labels,
            alert_type=spec.alert_type,
            direction=spec.direction,
            threshold=self.threshold,
            clear_steps=self.clear_steps,
            critical_score=self.critical_score,
            critical_ratio=self.critical_ratio,
            title=title,
            unit=self._unit if kind == "count" else "",
        )
        s = _Series(name, labels, kind, k, self.detector_factory(), tracker, spec, self.windows[-1])
        if kind == "count" and self._first_step is not None and k > self._first_step:
            # Watched since _first_step without an event: those steps were zeros. Start warm on
            # that history instead of spending the first warmup_steps (often the very incident
            # that created the series) blind, learning the incident as the baseline.
            s.steps = s.base_n = min(k - self._first_step, self.warmup_steps)
            s.baseline = 0.0
        self._series[name] = s
        return s

    # -- clock -----------------------------------------------------------------------------

    def advance(self, now: float) -> list[AlertEvent]:
        """Close every step that ended at least ``grace_s`` before ``now``; return alerts."""
        return self.advance_steps(int((now - self.grace_s) // self.step_s))

    def advance_steps(self, upto: int) -> list[AlertEvent]:
        """Close every step ``k < upto`` (a caller that decides itself when steps are complete)."""
        out: list[AlertEvent] = []
        for s in self._series.values():
            if s.next_step >= upto:
                continue
            if s.kind == "count":
                if upto - s.next_step > self.max_catchup_steps:
                    start = upto - self.max_catchup_steps
                    for k in [k for k in s.buckets if k < start]:
                        del s.buckets[k]
                    s.next_step = start
                for k in range(s.next_step, upto):
                    b = s.buckets.pop(k, None)
                    ev = self._close(s, k, b[0] if b is not None else 0.0)
                    if ev is not None:
                        out.append(ev)
            else:
                for k in sorted(k for k in s.buckets if k < upto):
                    b = s.buckets.pop(k)
                    if b[1] >= self.min_samples:
                        ev = self._close(s, k, b[0] / b[1])
                        if ev is not None:
                            out.append(ev)
            s.next_step = upto
        return out

    # -- scoring ---------------------------------------------------------------------------

    def _expected(self, s: _Series) -> float | None:
        e: Any = getattr(s.detector, "expected", None)
        if callable(e):
            e = e()
        return float(e) if isinstance(e, (int, float)) and math.isfinite(e) else None

    def _close(self, s: _Series, k: int, x: float) -> AlertEvent | None:
        t = k * self.step_s
        exp = self._expected(s)
        det_score = float(s.detector.update(x, t))
        if exp is None:
            exp = s.baseline if s.base_n else x
        s.steps += 1
        tr = s.tracker
        if s.kind == "count":
            exp = max(exp, self.min_expected)
            s.hist_obs.append(x)
            s.hist_exp.append(exp)
            p, w, obs_w, exp_w = self._scan(s, tr.direction)
            score = 1.0 - p**0.25
            if p <= self.detector_support_p and det_score > score:
                score = det_score
            observed, expected = obs_w / w, exp_w / w
        else:
            score, w, observed, expected = det_score, 1, x, exp
        if s.steps <= self.warmup_steps:
            score = 0.0
        s.last_score, s.last_observed, s.last_expected = score, x, exp
        anomalous = tr.is_open or score >= self.threshold
        self._learn_baseline(s, x, anomalous)
        onset = (k - w + 1) * self.step_s
        return tr.step(t, t + self.step_s, observed, expected, score, onset)

    def _scan(self, s: _Series, direction: str) -> tuple[float, int, float, float]:
        """Best (smallest Bonferroni-adjusted p) Poisson window over the last steps."""
        best = (1.0, 1, s.hist_obs[-1], s.hist_exp[-1])
        n = len(s.hist_obs)
        m = len(self.windows) * (2 if direction == "both" else 1)
        obs_w = exp_w = 0.0
        wi = 0
        for i in range(1, n + 1):
            obs_w += s.hist_obs[-i]
            exp_w += s.hist_exp[-i]
            if i != self.windows[wi]:
                continue
            wi += 1
            if direction != "down" and obs_w >= self.min_count and obs_w >= self.min_ratio * exp_w:
                p = min(1.0, m * poisson_sf(obs_w, exp_w))
                if p < best[0]:
                    best = (p, i, obs_w, exp_w)
            if direction != "up" and exp_w >= self.min_count and obs_w * self.min_ratio <= exp_w:
                p = min(1.0, m * poisson_cdf(obs_w, exp_w))
                if p < best[0]:
                    best = (p, i, obs_w, exp_w)
            if wi == len(self.windows):
                break
        return best

    def _learn_baseline(self, s: _Series, x: float, anomalous: bool) -> None:
        if s.base_n == 0:
            s.baseline, s.var, s.base_n = x, 0.0, 1
            return
        if anomalous and s.base_n >= self.warmup_steps:
            return
        mu = s.baseline
        if s.kind == "count":
            # Clip so a spike that is not (yet) significant does not drag the baseline up.
            x = min(x, mu + 4.0 * math.sqrt(max(mu, 1.0)) + 1.0)
        s.base_n += 1
        a = max(self.alpha, 1.0 / s.base_n)
        d = x - mu
        s.baseline = mu + a * d
        s.var = (1.0 - a) * (s.var + a * d * d)

    # -- outputs ---------------------------------------------------------------------------

    def scores(self) -> dict[str, float]:
        """Latest step score per series (for gauges)."""
        return {name: s.last_score for name, s in self._series.items()}

    def expected(self) -> dict[str, float]:
        """Latest expected value per series (per step)."""
        return {name: s.last_expected for name, s in self._series.items()}

    def open_episodes(self) -> list[str]:
        """Series with an open episode."""
        return [name for name, s in self._series.items() if s.tracker.is_open]

    def state(self) -> dict[str, Any]:
        """The learned state (series, detectors, baselines, histories, episodes) for a checkpoint.

        Picklable; the configuration is not included: :meth:`load_state` on a watcher built
        with the same parameters continues where this one was.
        """
        return {
            "series": self._series,
            "first_step": self._first_step,
            "late_events": self.late_events,
            "dropped_series": self.dropped_series,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` of a watcher with the same parameters."""
        self._series = dict(state["series"])
        self._first_step = state["first_step"]
        self.late_events = state["late_events"]
        self.dropped_series = state["dropped_series"]

    def __len__(self) -> int:
        return len(self._series)
