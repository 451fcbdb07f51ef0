"""CloudEvents 1.0 helpers for cxpulse outputs (``cx.alerts``, ``cx.notifications``).

Events are built as plain *structured-mode* JSON dicts (CloudEvents 1.0 JSON format) and put in
the Kafka message value with header ``content-type: application/cloudevents+json;
charset=UTF-8`` (:data:`KAFKA_HEADERS`). The ``data`` member is always a JSON object described by
the JSON Schema file named in ``dataschema`` (the ``$id`` of a file under ``schemas/json/``).

Ids are derived from the *cause* of an event (:func:`cloudevent_id`), never drawn at random, so a
replay or an at-least-once redelivery yields the same ``id`` and consumers deduplicate on it.
Context attributes never carry personal data: ``subject`` is an order, contact or series id.

Examples
--------
>>> eid = cloudevent_id("cx.notification.delivery_delayed", "o-1", "1767225600")
>>> eid == cloudevent_id("cx.notification.delivery_delayed", "o-1", "1767225600")
True
>>> ev = make_cloudevent(type="cx.notification.delivery_delayed", source="/cxpulse/deliveries",
...                      subject="o-1", time=1767225600.0, data={"order_id": "o-1"},
...                      dataschema=schema_uri("notifications/delivery_delayed"), id=eid)
>>> ev["time"]
'2026-01-01T00:00:00Z'
>>> decode(encode(ev)) == ev
True
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.exceptions import SchemaError
from schemas.parsing import parse_timestamp

#: Namespace of the uuid5 ids (fixed forever: changing it changes every id).
CXPULSE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cxpulse.dev/")

#: Base URI of the JSON Schema files under ``schemas/json/`` (their ``$id`` prefix).
SCHEMA_BASE = "https://cxpulse.dev/schemas/"

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"
CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

#: Kafka headers for structured-mode CloudEvents.
KAFKA_HEADERS: list[tuple[str, bytes]] = [("content-type", CONTENT_TYPE.encode())]

REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
OPTIONAL_ATTRIBUTES = ("time", "subject", "datacontenttype", "dataschema")

# Alert event types (data schema: alerts/v1.json).
ALERT_COMPLAINT_SPIKE = "cx.alert.complaint_spike"
ALERT_RAGE_CLICK_STORM = "cx.alert.rage_click_storm"
ALERT_METRIC_ANOMALY = "cx.alert.metric_anomaly"
ALERT_TYPES = (ALERT_COMPLAINT_SPIKE, ALERT_RAGE_CLICK_STORM, ALERT_METRIC_ANOMALY)

# Notification event types (data schema: notifications/<suffix>/v1.json).
NOTIFY_DELIVERY_DELAYED = "cx.notification.delivery_delayed"
NOTIFY_DELIVERY_FAILED = "cx.notification.delivery_failed"
NOTIFY_REPEAT_CONTACT = "cx.notification.repeat_contact"
NOTIFY_DETRACTOR_FOLLOWUP = "cx.notification.detractor_followup"
NOTIFY_FRUSTRATION_OUTREACH = "cx.notification.frustration_outreach"
NOTIFICATION_TYPES = (
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_REPEAT_CONTACT,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
)

#: ``source`` attribute per producing component (``source`` + ``id`` is unique per event).
SOURCE_DELIVERIES = "/cxpulse/deliveries"
SOURCE_CONTACTS = "/cxpulse/contacts"
SOURCE_CUSTOMERS = "/cxpulse/customers"
SOURCE_ALERTS = "/cxpulse/alerts"


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


def cloudevent_id(*cause_parts: str) -> str:
    """Deterministic event id: uuid5 over :data:`CXPULSE_NAMESPACE` of the joined cause parts.

    Parts are joined with a unit separator (``\\x1f``) so ``("ab", "c")`` and ``("a", "bc")``
    differ. Pass the event type first, then the key and what the event concerns (promise,
    episode start, status...). Floats should be formatted by the caller (e.g. ``f"{ts:.0f}"``)
    so equal causes give equal strings.

    >>> cloudevent_id("a", "bc") != cloudevent_id("ab", "c")
    True
    >>> len(cloudevent_id("x"))
    36
    """
    if not cause_parts:
        raise ValueError("cloudevent_id needs at least one cause part")
    return str(uuid.uuid5(CXPULSE_NAMESPACE, "\x1f".join(str(p) for p in cause_parts)))


def rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC (``Z``; milliseconds only when non-zero).

    >>> rfc3339(0.0)
    '1970-01-01T00:00:00Z'
    >>> rfc3339(1.25)
    '1970-01-01T00:00:01.250Z'
    """
    dt = datetime.fromtimestamp(ts, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> float:
    """Parse an RFC 3339 timestamp to epoch seconds (the wire parser's own rule).

    >>> parse_rfc3339("1970-01-01T00:00:01.250Z")
    1.25
    """
    return parse_timestamp(value)


def make_cloudevent(
    *,
    type: str,
    source: str,
    subject: str | None,
    time: float,
    data: Mapping[str, Any],
    dataschema: str,
    id: str,
) -> dict[str, Any]:
    """Build a CloudEvents 1.0 structured-mode JSON dict.

    Parameters
    ----------
    type : str
        Reverse-DNS-ish event type, e.g. ``cx.notification.delivery_delayed``.
    source : str
        URI reference of the producing component, e.g. ``/cxpulse/deliveries``.
    subject : str or None
        Order, contact or series id (never personal data); omitted when None.
    time : float
        Epoch seconds: the *event time of the cause* (not wall clock).
    data : Mapping
        JSON object matching ``dataschema``.
    dataschema : str
        URI of the data's JSON Schema (``$id`` of a file under ``schemas/json/``).
    id : str
        Deterministic id, see :func:`cloudevent_id`.

    Returns
    -------
    dict
        ``specversion``, ``id``, ``source``, ``type``, ``time``, ``datacontenttype``,
        ``dataschema``, ``subject`` (if given) and ``data``.
    """
    for name, value in (("type", type), ("source", source), ("id", id)):
        if not isinstance(value, str) or not value:
            raise CloudEventError(f"attribute {name!r} must be a non-empty string")
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": rfc3339(time),
        "datacontenttype": DATACONTENTTYPE,
        "dataschema": dataschema,
    }
    if subject is not None:
        event["subject"] = subject
    event["data"] = dict(data)
    return event


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


def alert_id(type: str, series: str, episode_start: float, status: str) -> str:
    """Id of an alert event: type + series + episode start + status (firing|resolved).

    >>> alert_id(ALERT_METRIC_ANOMALY, "s", 10.0, "firing") != alert_id(
    ...     ALERT_METRIC_ANOMALY, "s", 10.0, "resolved")
    True
    """
    return cloudevent_id(type, series, f"{episode_start:.3f}", status)


__all__ = [
    "ALERT_COMPLAINT_SPIKE",
    "ALERT_METRIC_ANOMALY",
    "ALERT_RAGE_CLICK_STORM",
    "ALERT_TYPES",
    "CONTENT_TYPE",
    "KAFKA_HEADERS",
    "NOTIFICATION_TYPES",
    "NOTIFY_DELIVERY_DELAYED",
    "NOTIFY_DELIVERY_FAILED",
    "NOTIFY_DETRACTOR_FOLLOWUP",
    "NOTIFY_FRUSTRATION_OUTREACH",
    "NOTIFY_REPEAT_CONTACT",
    "SOURCE_ALERTS",
    "SOURCE_CONTACTS",
    "SOURCE_CUSTOMERS",
    "SOURCE_DELIVERIES",
    "CloudEventError",
    "alert_id",
    "cloudevent_id",
    "decode",
    "encode",
    "make_cloudevent",
    "notification_schema",
    "parse_rfc3339",
    "rfc3339",
    "schema_uri",
    "validate",
]
