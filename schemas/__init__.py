"""The wire contract of cxpulse: versioned JSON Schema files, typed event models and parsers.

This package imports nothing else of cxpulse, so producers and consumers can depend on it alone.
"""

from schemas.exceptions import CxpulseError, SchemaError
from schemas.models import (
    ClickstreamEvent,
    ContactEvent,
    DeliveryEvent,
    Event,
    Stream,
)
from schemas.parsing import ParseResult, Rejection, message_parser, parse_message

__all__ = [
    "ClickstreamEvent",
    "ContactEvent",
    "CxpulseError",
    "DeliveryEvent",
    "Event",
    "ParseResult",
    "Rejection",
    "SchemaError",
    "Stream",
    "message_parser",
    "parse_message",
]
