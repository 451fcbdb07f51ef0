"""Errors raised by the schemas package."""


class SchemaError(Exception):
    """Base class of every error raised by :mod:`schemas`."""


class UnknownStreamError(SchemaError):
    """A stream name that has no schema."""
