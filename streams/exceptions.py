"""Errors raised by the streams package (the worker)."""

from schemas.exceptions import CxpulseError


class StreamsError(CxpulseError):
    """Base class of every error raised by :mod:`streams`."""


class ConfigurationError(StreamsError):
    """A setting has a value that cannot work, or a topic or store is not defined."""
