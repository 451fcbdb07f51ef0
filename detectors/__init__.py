"""Detectors: pure-Python judgement on plain values (River inside; no Kafka, Faust, Prometheus)."""

from detectors.exceptions import DetectorError
from detectors.metric_anomaly import MetricAnomalyDetector

__all__ = ["DetectorError", "MetricAnomalyDetector"]
