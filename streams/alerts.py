"""Series anomaly alerts: feed detectors in event time, export scores, emit CloudEvents."""

from __future__ import annotations

from typing import Any

from detectors.episodes import AlertEvent
from detectors.series_watch import DEFAULT_FAMILIES, SeriesSpec, SeriesWatcher
from schemas import cloudevents as ce
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs
from streams.topics import Topic

#: The watched series families: the detectors' defaults plus the worker's own series.
FAMILIES = {
    **DEFAULT_FAMILIES,
    "complaints_by_channel": SeriesSpec("complaint_spike", "up", "Complaints via {channel}"),
    "client_errors": SeriesSpec("metric_anomaly", "up", "Client errors on {page}"),
    "client_error_rate": SeriesSpec("metric_anomaly", "up", "Client error rate"),
    "nps": SeriesSpec("metric_anomaly", "down", "NPS"),
    "fcr": SeriesSpec("metric_anomaly", "down", "First-contact resolution"),
    "on_time": SeriesSpec("metric_anomaly", "down", "On-time delivery {carrier}/{region}"),
}

CLOUDEVENT_TYPES = {
    "complaint_spike": ce.ALERT_COMPLAINT_SPIKE,
    "rage_click_storm": ce.ALERT_RAGE_CLICK_STORM,
    "metric_anomaly": ce.ALERT_METRIC_ANOMALY,
}


def alert_cloudevent(alert: AlertEvent, source: str) -> dict[str, Any]:
    """The CloudEvent of one firing or resolved transition; its id is a function of the cause."""
    return ce.make_cloudevent(
        type=CLOUDEVENT_TYPES[alert.alert_type],
        source=source,
        subject=alert.series,
        time=alert.window_end,
        id=alert.event_id,
        dataschema=ce.schema_uri("alerts"),
        data={
            "series": alert.series,
            "labels": dict(alert.labels),
            "observed": alert.observed,
            "expected": alert.expected,
            "score": alert.score,
            "window_start": ce.rfc3339(alert.window_start),
            "window_end": ce.rfc3339(alert.window_end),
            "episode_start": ce.rfc3339(alert.episode_start),
            "severity": alert.severity,
            "status": alert.kind,
            "explanation": alert.explanation,
        },
    )


class SeriesMonitor:
    """One stream's watched series: buckets, detectors, episodes, gauges and alert records.

    ``advance`` is cheap to call per message: it does work only when event time has closed
    a new step.
    """

    def __init__(self, watcher: SeriesWatcher, metrics: Metrics, source: str) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.source = source
        self._next_step_end = float("-inf")

    def observe(self, series: str, labels: dict[str, str], ts: float, value: float = 1.0, kind: str = "count") -> None:
        self.watcher.observe(series, labels, ts, value, kind)  # type: ignore[arg-type]

    def advance(self, now: float, out: Outputs) -> list[AlertEvent]:
        if now < self._next_step_end:
            return []
        step = self.watcher.step_s
        self._next_step_end = (now - self.watcher.grace_s) // step * step + step + self.watcher.grace_s
        alerts = self.watcher.advance(now)
        m = self.metrics
        families = self.watcher.families
        for series, score in self.watcher.scores().items():
            family = series.split("{", 1)[0]
            detector = families[family].alert_type if family in families else "metric_anomaly"
            m.anomaly_score.labels(detector, series).set(score)
        for alert in alerts:
            if alert.kind == "firing":
                m.alerts.labels(alert.alert_type).inc()
                m.alerts_active.labels(alert.alert_type).inc()
            else:
                m.alerts_resolved.labels(alert.alert_type).inc()
                m.alerts_active.labels(alert.alert_type).dec()
            out.add(Topic.ALERTS, alert.alert_id, ce.encode(alert_cloudevent(alert, self.source)), ce.KAFKA_HEADERS)
        return alerts


def series_monitor(ctx: Context, source: str, step_s: float | None = None) -> SeriesMonitor:
    """A series watcher with the production detector, exporting to this worker's metrics."""
    settings = ctx.settings
    watcher = SeriesWatcher(
        step_s=step_s or settings.alert_step_seconds,
        warmup_steps=settings.alert_warmup_steps,
        families=FAMILIES,
    )
    return SeriesMonitor(watcher, ctx.metrics, source)
