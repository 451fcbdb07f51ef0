"""Exceptions raised by the detectors package."""


class DetectorError(Exception):
    """Base class of every error raised by a cxpulse detector."""
