"""Alert episodes: turn a per-step anomaly score stream into firing/resolved pairs.

An :class:`EpisodeTracker` follows one series. An episode *opens* on the first step whose
score reaches ``threshold`` with the observed value on the alerting side of the expected one
(``direction`` "up": above, "down": below, "both": either), stays open while steps stay
elevated (score at or above ``clear_threshold``, on the alerting side), and *closes* after
``clear_steps`` consecutive normal steps (hysteresis). Each episode gives exactly one
``firing`` and one ``resolved`` :class:`AlertEvent`, both carrying the same ``alert_id``:
derived from ``(series, episode_start)`` by :func:`schemas.ids.alert_id`, so reprocessing the
same input yields the same ids (at-least-once processing plus these ids is effectively-once
downstream). The events are findings: :mod:`streams.envelopes` makes them CloudEvents.

Severity: ``critical`` when the score reaches ``critical_score`` (default 0.99) or the
observed value is at least ``critical_ratio`` (default 3) times the expected one (for "down",
at most expected / ratio); ``warning`` otherwise. The resolved event repeats the firing's
severity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from schemas.ids import alert_id

Direction = Literal["up", "down", "both"]


def _hm(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One state change of an alert episode.

    Attributes
    ----------
    kind : str
        ``"firing"`` or ``"resolved"``.
    alert_id : str
        Same for both events of an episode (:func:`schemas.ids.alert_id`).
    series, labels, alert_type : str, dict, str
        What is alerting: ``'complaints{reason="billing"}'``, ``{"reason": "billing"}``,
        ``"complaint_spike" | "rage_click_storm" | "metric_anomaly"``.
    episode_start : float
        Event time the episode is dated from (start of the window that proved it).
    window_start, window_end : float
        The evidence window of this event (firing: the detection window; resolved: the
        last step).
    observed, expected : float
        Per-step observed and expected value over that window.
    score : float
        Anomaly score in [0, 1] of the step that caused the event.
    severity : str
        ``"critical"`` or ``"warning"``.
    explanation : str
        One line for a person, e.g. ``"Complaints about billing: 42/min vs ~9/min expected
        since 14:02 UTC (score 0.97)"``.
    """

    kind: str
    alert_id: str
    series: str
    labels: dict[str, str]
    alert_type: str
    episode_start: float
    window_start: float
    window_end: float
    observed: float
    expected: float
    score: float
    severity: str
    explanation: str


class EpisodeTracker:
    """Hysteresis over one series' step scores, emitting one firing and one resolved event.

    Parameters
    ----------
    series : str
        Series identifier, e.g. ``'complaints{reason="billing"}'``.
    labels : dict of str to str
        Labels carried on the alert.
    alert_type : str, default "metric_anomaly"
        ``"complaint_spike"``, ``"rage_click_storm"`` or ``"metric_anomaly"``.
    direction : {"up", "down", "both"}, default "up"
        Which side of the expected value is an anomaly (a drop in complaints is not a spike;
        a drop in CSAT is).
    threshold : float, default 0.9
        Score that opens an episode.
    clear_threshold : float, optional
        Score below which a step counts as normal; defaults to ``threshold``.
    clear_steps : int, default 5
        Consecutive normal steps that close an episode.
    critical_score, critical_ratio : float, default 0.99, 3.0
        Severity rule (see module docstring).
    title : str, optional
        Human name of the series for explanations; defaults to ``series``.
    unit : str, default "/min"
        Suffix of observed/expected values in explanations ("" for mean series).

    Examples
    --------
    >>> tr = EpisodeTracker('complaints{reason="billing"}', {"reason": "billing"},
    ...                     alert_type="complaint_spike", title="Complaints about billing",
    ...                     clear_steps=2)
    >>> t0 = 1_700_000_040.0
    >>> steps = [(9, 9, 0.1), (42, 9, 0.97), (40, 9, 0.99), (10, 9, 0.2), (9, 9, 0.1)]
    >>> evs = [e for i, (o, x, s) in enumerate(steps)
    ...        if (e := tr.step(t0 + 60 * i, t0 + 60 * i + 60, o, x, s)) is not None]
    >>> [e.kind for e in evs], evs[0].alert_id == evs[1].alert_id
    (['firing', 'resolved'], True)
    >>> evs[0].explanation
    'Complaints about billing: 42/min vs ~9.0/min expected since 22:15 UTC (score 0.97)'
    """

    __slots__ = (
        "_normal_run",
        "_open",
        "_peak",
        "_severity",
        "alert_type",
        "clear_steps",
        "clear_threshold",
        "critical_ratio",
        "critical_score",
        "direction",
        "episode_start",
        "labels",
        "series",
        "threshold",
        "title",
        "unit",
    )

    def __init__(
        self,
        series: str,
        labels: dict[str, str] | None = None,
        alert_type: str = "metric_anomaly",
        direction: Direction = "up",
        threshold: float = 0.9,
        clear_threshold: float | None = None,
        clear_steps: int = 5,
        critical_score: float = 0.99,
        critical_ratio: float = 3.0,
        title: str | None = None,
        unit: str = "/min",
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        self.series = series
        self.labels = dict(labels or {})
        self.alert_type = alert_type
        self.direction = direction
        self.threshold = threshold
        self.clear_threshold = threshold if clear_threshold is None else clear_threshold
        self.clear_steps = clear_steps
        self.critical_score = critical_score
        self.critical_ratio = critical_ratio
        self.title = title or series
        self.unit = unit
        self._open = False
        self._normal_run = 0
        self._peak = 0.0
        self._severity = "warning"
        self.episode_start = 0.0

    @property
    def is_open(self) -> bool:
        """Whether an episode is open."""
        return self._open

    def _side_ok(self, observed: float, expected: float) -> bool:
        if self.direction == "up":
            return observed > expected
        if self.direction == "down":
            return observed < expected
        return observed != expected

    def _severity_of(self, observed: float, expected: float, score: float) -> str:
        if score >= self.critical_score:
            return "critical"
        r = self.critical_ratio
        up = observed >= r * expected and observed > expected
        down = observed * r <= expected and observed < expected
        if (self.direction != "down" and up) or (self.direction != "up" and down):
            return "critical"
        return "warning"

    def step(
        self,
        window_start: float,
        window_end: float,
        observed: float,
        expected: float,
        score: float,
        onset: float | None = None,
    ) -> AlertEvent | None:
        """Feed one closed step; return the firing/resolved event it causes, if any.

        ``onset`` (default ``window_start``) dates a new episode: pass the start of the
        multi-step window that proved the anomaly.
        """
        side = self._side_ok(observed, expected)
        if not self._open:
            if score >= self.threshold and side:
                self._open = True
                self._normal_run = 0
                self.episode_start = window_start if onset is None else onset
                self._peak = observed
                self._severity = self._severity_of(observed, expected, score)
                since = _hm(self.episode_start)
                text = (
                    f"{self.title}: {_num(observed)}{self.unit} vs ~{_num(expected)}{self.unit}"
                    f" expected since {since} UTC (score {score:.2f})"
                )
                return self._event(
                    "firing", self.episode_start, window_end, observed, expected, score, text
                )
            return None
        if score >= self.clear_threshold and side:
            self._normal_run = 0
            if (observed > self._peak) if self.direction != "down" else (observed < self._peak):
                self._peak = observed
            return None
        self._normal_run += 1
        if self._normal_run < self.clear_steps:
            return None
        self._open = False
        text = (
            f"{self.title} back to normal: {_num(observed)}{self.unit} vs ~{_num(expected)}"
            f"{self.unit} expected; episode {_hm(self.episode_start)}–{_hm(window_end)} UTC,"
            f" peak {_num(self._peak)}{self.unit}"
        )
        return self._event("resolved", window_start, window_end, observed, expected, score, text)

    def _event(
        self,
        kind: str,
        window_start: float,
        window_end: float,
        observed: float,
        expected: float,
        score: float,
        text: str,
    ) -> AlertEvent:
        return AlertEvent(
            kind=kind,
            alert_id=alert_id(self.series, self.episode_start),
            series=self.series,
            labels=dict(self.labels),
            alert_type=self.alert_type,
            episode_start=self.episode_start,
            window_start=window_start,
            window_end=window_end,
            observed=observed,
            expected=expected,
            score=score,
            severity=self._severity,
            explanation=text,
        )
