"""CloudEvents 1.0 wire format of cxpulse outputs (``cx.alerts``, ``cx.notifications``).

Events are plain *structured-mode* JSON dicts (CloudEvents 1.0 JSON format) in the Kafka
message value with header ``content-type: application/cloudevents+json; charset=UTF-8``
(:data:`KAFKA_HEADERS`). The ``data`` member is always a JSON object described by the JSON
Schema file named in ``dataschema`` (the ``$id`` of a file under ``schemas/json/``).

The worker builds events in one place, :mod:`streams.envelopes`; their ids come from
:mod:`schemas.ids` and their type names from :mod:`schemas.models`. This module is the format
itself: its constants, :func:`encode` for the Kafka value, and what a consumer needs to read an
event (:func:`decode`, :func:`validate`, :func:`parse_rfc3339`).
Context attributes never carry personal data: ``subject`` is an order, contact or series id.

Examples
--------
>>> raw = (b'{"specversion":"1.0","id":"1","source":"/cxpulse/deliveries",'
...        b'"type":"cx.notification.delivery_failed","time":"2026-01-01T00:00:00Z","data":{}}')
>>> event = decode(raw)
>>> parse_rfc3339(event["time"])
1767225600.0
>>> encode(event) == raw
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from schemas.exceptions import SchemaError
from schemas.parsing import parse_timestamp

#: Base URI of the JSON Schema files under ``schemas/json/`` (their ``$id`` prefix).
SCHEMA_BASE = "https://cxpulse.dev/schemas/"

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"
CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

#: Kafka headers for structured-mode CloudEvents.
KAFKA_HEADERS: list[tuple[str, bytes]] = [("content-type", CONTENT_TYPE.encode())]

REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
OPTIONAL_ATTRIBUTES = ("time", "subject", "datacontenttype", "dataschema")


class CloudEventError(SchemaError, ValueError):
    """A payload is not a valid cxpulse CloudEvent (structured JSON, version 1.0)."""


def schema_uri(name: str, version: int = 1) -> str:
    """URI (JSON Schema ``$id``) of ``schemas/json/<name>/v<version>.json``.

    >>> schema_uri("alerts")
    'https://cxpulse.dev/schemas/alerts/v1.json'
    """
    return f"{SCHEMA_BASE}{name}/v{version}.json"


def notification_schema(type: str) -> str:
    """Data schema URI of a notification type (``cx.notification.X`` -> ``notifications/X``).

    >>> notification_schema("cx.notification.repeat_contact")
    'https://cxpulse.dev/schemas/notifications/repeat_contact/v1.json'
    """
    return schema_uri("notifications/" + type.rsplit(".", 1)[-1])


def parse_rfc3339(value: str) -> float:
    """Parse an RFC 3339 timestamp to epoch seconds (the wire parser's own rule).

    >>> parse_rfc3339("1970-01-01T00:00:01.250Z")
    1.25
    """
    return parse_timestamp(value)


def encode(event: Mapping[str, Any]) -> bytes:
    """Serialise an event dict to JSON bytes (orjson) for the Kafka message value."""
    return orjson.dumps(event)


def validate(event: Any) -> dict[str, Any]:
    """Check the required and typed attributes of a structured CloudEvent; return it.

    Raises
    ------
    CloudEventError
        On a missing/empty required attribute, a wrong ``specversion``, a non-string optional
        attribute, an unparsable ``time`` or, with ``datacontenttype`` JSON, non-object data.
    """
    if not isinstance(event, dict):
        raise CloudEventError("a structured CloudEvent must be a JSON object")
    for name in REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise CloudEventError(f"missing or empty required attribute {name!r}")
    if event["specversion"] != SPECVERSION:
        raise CloudEventError(f"unsupported specversion {event['specversion']!r}")
    for name in OPTIONAL_ATTRIBUTES:
        if name in event and not isinstance(event[name], str):
            raise CloudEventError(f"attribute {name!r} must be a string")
    if "time" in event:
        try:
            parse_rfc3339(event["time"])
        except ValueError as exc:
            raise CloudEventError(f"attribute 'time' is not RFC 3339: {event['time']!r}") from exc
    json_data = event.get("datacontenttype", DATACONTENTTYPE) == DATACONTENTTYPE
    if json_data and "data" in event and not isinstance(event["data"], dict):
        raise CloudEventError("data must be a JSON object")
    return event


def decode(raw: bytes) -> dict[str, Any]:
    """Parse and validate a structured-mode CloudEvent from Kafka message bytes.

    Raises
    ------
    CloudEventError
        If the bytes are not JSON or fail :func:`validate`.
    """
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CloudEventError(f"not JSON: {exc}") from exc
    return validate(event)


__all__ = [
    "CONTENT_TYPE",
    "DATACONTENTTYPE",
    "KAFKA_HEADERS",
    "SCHEMA_BASE",
    "SPECVERSION",
    "CloudEventError",
    "decode",
    "encode",
    "notification_schema",
    "parse_rfc3339",
    "schema_uri",
    "validate",
]
