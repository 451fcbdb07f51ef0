"""Detectors: pure-Python judgement on plain values (River inside; no Kafka, Faust, Prometheus)."""

from detectors.episodes import AlertEvent, EpisodeTracker, alert_id_for
from detectors.exceptions import DetectorError
from detectors.frustration import FrustrationSignals
from detectors.metric_anomaly import MetricAnomalyDetector
from detectors.rage_clicks import RageClickDetector
from detectors.series_watch import SeriesSpec, SeriesWatcher
from detectors.signals import SIGNAL_KINDS, Signal

__all__ = [
    "SIGNAL_KINDS",
    "AlertEvent",
    "DetectorError",
    "EpisodeTracker",
    "FrustrationSignals",
    "MetricAnomalyDetector",
    "RageClickDetector",
    "SeriesSpec",
    "SeriesWatcher",
    "Signal",
    "alert_id_for",
]
