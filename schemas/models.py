"""Typed, immutable event models: one class per input stream.

Timestamps are carried as float seconds since the Unix epoch (UTC): detectors compare and
subtract them on the hot path, and a float is what every clock in the pipeline speaks.
The optional fields of a stream's event types share one class, so a detector can read
``event.page`` without a type switch; fields that an event type does not carry are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stream(StrEnum):
    """The three input streams. The value is the short name used in labels and file names."""

    CLICKSTREAM = "clickstream"
    CONTACTS = "contacts"
    DELIVERIES = "deliveries"


@dataclass(frozen=True, slots=True)
class ClickstreamEvent:
    """One web/app event of a session (``page_view``, ``click``, ``scroll``, ``selection``,
    ``error``, ``login``)."""

    event_id: str
    ts: float
    type: str
    session_id: str
    page: str
    customer_id: str | None = None
    element: str | None = None
    element_text: str | None = None
    x: float | None = None
    y: float | None = None
    no_response: bool | None = None
    message: str | None = None
    success: bool | None = None


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One support event (``contact_opened``, ``contact_resolved``, ``survey_response``)."""

    event_id: str
    ts: float
    type: str
    customer_id: str
    contact_id: str | None = None
    channel: str | None = None
    reason: str | None = None
    complaint: bool | None = None
    order_id: str | None = None
    first_contact_resolution: bool | None = None
    handle_seconds: float | None = None
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One delivery tracking event; ``type`` is the status."""

    event_id: str
    ts: float
    type: str
    order_id: str
    customer_id: str
    carrier: str
    region: str
    promised_by: float | None = None
    eta: float | None = None


Event = ClickstreamEvent | ContactEvent | DeliveryEvent

MODEL_BY_STREAM: dict[Stream, type[ClickstreamEvent] | type[ContactEvent] | type[DeliveryEvent]] = {
    Stream.CLICKSTREAM: ClickstreamEvent,
    Stream.CONTACTS: ContactEvent,
    Stream.DELIVERIES: DeliveryEvent,
}

#: Fields of each model that are RFC 3339 timestamps on the wire and floats in the model.
TIMESTAMP_FIELDS: dict[Stream, tuple[str, ...]] = {
    Stream.CLICKSTREAM: ("ts",),
    Stream.CONTACTS: ("ts",),
    Stream.DELIVERIES: ("ts", "promised_by", "eta"),
}
