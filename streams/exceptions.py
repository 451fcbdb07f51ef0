"""Errors raised by the streams package (the worker)."""

from schemas.exceptions import CxpulseError


class StreamsError(CxpulseError):
    """Base class of every error raised by :mod:`streams`."""


class ConfigurationError(StreamsError):
    """A setting has a value that cannot work, or a topic or store is not defined."""


class BrokerAccessError(StreamsError):
    """Kafka refused this client: wrong SASL credentials or a certificate it cannot verify.

    Retrying cannot help until a setting changes, so commands stop on it with exit code
    ``os.EX_CONFIG`` instead of retrying silently like a client does for a broker that is down.
    """
