"""The one root of cxpulse's errors, and the errors raised by the schemas package.

:class:`CxpulseError` lives here because :mod:`schemas` is the package every other one builds
on (it imports nothing of ours). Each package has one subclass of it as its own base:
:class:`SchemaError` here, ``detectors.exceptions.DetectorError``,
``streams.exceptions.StreamsError`` and ``deploy.local.exceptions.LocalStackError``, so a caller
can catch everything of ours with one ``except CxpulseError``.
"""


class CxpulseError(Exception):
    """Root of every error cxpulse raises on purpose."""


class SchemaError(CxpulseError):
    """Base class of every error raised by :mod:`schemas`."""


class UnknownStreamError(SchemaError, ValueError):
    """A stream name that has no schema."""
