"""Errors of the local-run tooling, under the one cxpulse root :class:`schemas.CxpulseError`."""

from __future__ import annotations

from schemas.exceptions import CxpulseError


class LocalStackError(CxpulseError):
    """Base of every error raised by :mod:`deploy.local`."""


class SystemPackageError(LocalStackError):
    """A tool cxpulse runs beside Python is missing and could not be installed."""


class KafkaRuntimeError(LocalStackError):
    """The local Kafka broker could not be installed, started or reached."""


class OpsError(LocalStackError):
    """A Prometheus/Alertmanager process could not be installed, started or stopped."""
