"""Errors raised by the detectors package."""

from schemas.exceptions import CxpulseError


class DetectorError(CxpulseError):
    """Base class of every error raised by a cxpulse detector."""
