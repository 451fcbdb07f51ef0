"""Series anomaly alerts: feed detectors in event time, export scores, emit alert events."""

from __future__ import annotations

from detectors.episodes import AlertEvent
from detectors.series_watch import DEFAULT_FAMILIES, SeriesSpec, SeriesWatcher
from schemas import cloudevents as ce
from streams.envelopes import Component, Envelopes
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


class SeriesMonitor:
    """One stream's watched series: buckets, detectors, episodes, gauges and alert records.

    ``advance`` is cheap to call per message: it does work only when event time has closed
    a new step. Alert events carry ``component`` in their source.
    """

    def __init__(self, watcher: SeriesWatcher, metrics: Metrics, envelopes: Envelopes, component: Component) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.envelopes = envelopes
        self.component = component
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
            event = self.envelopes.alert(alert, self.component)
            out.add(Topic.ALERTS, alert.alert_id, ce.encode(event), ce.KAFKA_HEADERS)
        return alerts


def series_monitor(ctx: Context, component: Component, step_s: float | None = None) -> SeriesMonitor:
    """A series watcher with the production detector, exporting to this worker's metrics."""
    settings = ctx.settings
    watcher = SeriesWatcher(
        step_s=step_s or settings.alert_step_seconds,
        warmup_steps=settings.alert_warmup_steps,
        families=FAMILIES,
    )
    return SeriesMonitor(watcher, ctx.metrics, Envelopes(settings.source_id), component)
