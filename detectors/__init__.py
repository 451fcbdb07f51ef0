"""Detectors: pure-Python judgement on plain values (River inside; no Kafka, Faust, Prometheus).

They return findings, plain dataclasses, and never build wire envelopes: :mod:`streams.envelopes`
makes the CloudEvents of alert episodes and of the notification candidates the policy sends.
"""

from detectors.episodes import AlertEvent, EpisodeTracker
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
]
