"""Errors raised by the streams package."""


class CxpulseError(Exception):
    """Base class of every error raised by :mod:`streams`."""


class KafkaRuntimeError(CxpulseError):
    """The local Kafka broker could not be installed, started or reached."""


class ConfigurationError(CxpulseError):
    """A setting has a value that cannot work."""
