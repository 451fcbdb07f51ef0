"""Findings to CloudEvents: the one place that builds cxpulse's output events.

The detectors return findings, plain dataclasses: :class:`~detectors.episodes.AlertEvent` (an
alert episode fired or resolved) and :class:`~detectors.customer_signal.NotificationCandidate`
(a notification a rule proposes; it crosses ``cx.signals`` as plain JSON and the customers
agent's policy decides on it). :class:`Envelopes` wraps them into CloudEvents 1.0
structured-mode dicts, which :mod:`schemas.cloudevents` encodes and consumers read:

* ``id``: from :mod:`schemas.ids` (a candidate carries its own; an alert event's is derived
  from its alert key and status);
* ``source``: ``<CXPULSE_SOURCE_ID>/<component>``, the :class:`Component` that found it: the
  stream whose series alerted, or the one whose rule proposed the notification (deliveries:
  delayed and failed; contacts: repeat contact and detractor; customers: frustration outreach).
  The default ``/cxpulse`` keeps the sources cxpulse has always written;
* ``type``, ``subject``, ``time`` (event time of the cause) and ``data`` from the finding, and
  ``dataschema``, the ``$id`` of the data's JSON Schema.

The events are built by hand, not with the ``cloudevents`` SDK: its JSON writer formats ``time``
with microseconds and spaced separators (other bytes than consumers receive today) at twice
the cost, and its validation would only re-check what the construction below guarantees. The
tests read these events with the SDK instead, as an independent check of the format.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from detectors.customer_signal import NotificationCandidate
from detectors.episodes import AlertEvent
from schemas.cloudevents import DATACONTENTTYPE, SPECVERSION, notification_schema, schema_uri
from schemas.ids import alert_event_id
from schemas.models import (
    ALERT_TYPES,
    NOTIFICATION_TYPES,
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
    NOTIFY_REPEAT_CONTACT,
    rfc3339,
)


class Component(StrEnum):
    """The part of cxpulse an output event comes from: the last segment of its ``source``."""

    CLICKSTREAM = "clickstream"
    CONTACTS = "contacts"
    DELIVERIES = "deliveries"
    CUSTOMERS = "customers"


#: The component whose rule proposes each notification type.
NOTIFICATION_COMPONENTS: dict[str, Component] = {
    NOTIFY_DELIVERY_DELAYED: Component.DELIVERIES,
    NOTIFY_DELIVERY_FAILED: Component.DELIVERIES,
    NOTIFY_REPEAT_CONTACT: Component.CONTACTS,
    NOTIFY_DETRACTOR_FOLLOWUP: Component.CONTACTS,
    NOTIFY_FRUSTRATION_OUTREACH: Component.CUSTOMERS,
}

#: CloudEvents type of each ``AlertEvent.alert_type`` (``complaint_spike`` -> ``cx.alert.complaint_spike``).
ALERT_EVENT_TYPES: dict[str, str] = {event_type.rsplit(".", 1)[-1]: event_type for event_type in ALERT_TYPES}

ALERT_DATASCHEMA = schema_uri("alerts")


class Envelopes:
    """This deployment's CloudEvents of findings.

    Parameters
    ----------
    source_id : str
        ``CXPULSE_SOURCE_ID``, the prefix of every ``source`` (a trailing ``/`` is ignored).

    Examples
    --------
    >>> candidate = NotificationCandidate("cx.notification.repeat_contact", "id-1", "c-1", "k-3",
    ...                                   1.25, {"customer_id": "c-1"})
    >>> event = Envelopes("/cxpulse").notification(candidate)
    >>> event["id"], event["source"], event["subject"], event["time"]
    ('id-1', '/cxpulse/contacts', 'k-3', '1970-01-01T00:00:01.250Z')
    >>> Envelopes("urn:shop:eu/").sources[Component.CUSTOMERS]
    'urn:shop:eu/customers'
    """

    def __init__(self, source_id: str) -> None:
        prefix = source_id.rstrip("/")
        self.sources = {component: f"{prefix}/{component.value}" for component in Component}
        # Per notification type, once: the source and data schema of its events.
        self._notification_context = {
            event_type: (self.sources[NOTIFICATION_COMPONENTS[event_type]], notification_schema(event_type))
            for event_type in NOTIFICATION_TYPES
        }

    def notification(self, candidate: NotificationCandidate) -> dict[str, Any]:
        """The ``cx.notifications`` event of a candidate the policy sends."""
        source, dataschema = self._notification_context[candidate.type]
        return _cloudevent(
            id=candidate.id,
            source=source,
            type=candidate.type,
            time=candidate.time,
            dataschema=dataschema,
            subject=candidate.subject,
            data=candidate.data,
        )

    def alert(self, alert: AlertEvent, component: Component) -> dict[str, Any]:
        """The ``cx.alerts`` event of one firing or resolved transition of an episode."""
        return _cloudevent(
            id=alert_event_id(alert.alert_id, alert.kind),
            source=self.sources[component],
            type=ALERT_EVENT_TYPES[alert.alert_type],
            time=alert.window_end,
            dataschema=ALERT_DATASCHEMA,
            subject=alert.series,
            data={
                "series": alert.series,
                "labels": dict(alert.labels),
                "observed": alert.observed,
                "expected": alert.expected,
                "score": alert.score,
                "window_start": rfc3339(alert.window_start),
                "window_end": rfc3339(alert.window_end),
                "episode_start": rfc3339(alert.episode_start),
                "severity": alert.severity,
                "status": alert.kind,
                "explanation": alert.explanation,
            },
        )


def _cloudevent(
    *, id: str, source: str, type: str, time: float, dataschema: str, subject: str | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """A structured-mode CloudEvent; attributes in the order cxpulse has always written them.

    ``subject`` is left out when None; ``time`` is epoch seconds, written as RFC 3339.
    """
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
