"""Series anomaly alerts: the watched families, the production watcher, gauges and alert records.

The watchers run in the series owners (:mod:`streams.series`): the partition of ``cx.series``
that owns a series sums the partials of every input partition and feeds complete steps here.
"""

from __future__ import annotations

from collections.abc import Iterable

from detectors.episodes import AlertEvent
from detectors.series_watch import DEFAULT_FAMILIES, DEFAULT_GRACE_S, SeriesSpec, SeriesWatcher
from schemas import Stream
from schemas import cloudevents as ce
from streams.envelopes import Component, Envelopes
from streams.metrics import Metrics
from streams.pipeline import Outputs
from streams.settings import Settings
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

#: A step closes once its partition's clock is this far past the step's end.
ALERT_GRACE_S = DEFAULT_GRACE_S


def step_seconds(settings: Settings, stream: Stream) -> float:
    """The event-time step of a stream's series (the on-time series of deliveries step by the hour)."""
    return settings.delivery_alert_step_seconds if stream is Stream.DELIVERIES else settings.alert_step_seconds


def series_watcher(settings: Settings, stream: Stream) -> SeriesWatcher:
    """A series watcher with the production detector for one stream's series."""
    return SeriesWatcher(
        step_s=step_seconds(settings, stream),
        grace_s=ALERT_GRACE_S,
        warmup_steps=settings.alert_warmup_steps,
        families=FAMILIES,
    )


def detector_of(series: str) -> str:
    """The alert type (the ``detector`` label of ``cxpulse_anomaly_score``) of a series."""
    family = series.split("{", 1)[0]
    spec = FAMILIES.get(family)
    return spec.alert_type if spec is not None else "metric_anomaly"


class AlertPublisher:
    """Scores to gauges, alert episodes to ``cx.alerts`` (source ``<source id>/<component>``)."""

    def __init__(self, metrics: Metrics, envelopes: Envelopes) -> None:
        self.metrics = metrics
        self.envelopes = envelopes

    def scores(self, scores: dict[str, float]) -> None:
        gauge = self.metrics.anomaly_score
        for series, score in scores.items():
            gauge.labels(detector_of(series), series).set(score)

    def alerts(self, alerts: Iterable[AlertEvent], component: Component, out: Outputs) -> None:
        m = self.metrics
        for alert in alerts:
            if alert.kind == "firing":
                m.alerts.labels(alert.alert_type).inc()
                m.alerts_active.labels(alert.alert_type).inc()
            else:
                m.alerts_resolved.labels(alert.alert_type).inc()
                m.alerts_active.labels(alert.alert_type).dec()
            event = self.envelopes.alert(alert, component)
            out.add(Topic.ALERTS, alert.alert_id, ce.encode(event), ce.KAFKA_HEADERS)
