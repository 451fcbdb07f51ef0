"""Output ids: the one place every id cxpulse emits is derived.

An output id is ``uuid5(namespace of the output kind, the parts of its cause joined by the
kind's separator)``: never random, so a replay or an at-least-once redelivery yields the same
id, and consumers deduplicate on it. The functions below are the whole recipe, cause parts and
their formatting included; nothing else in cxpulse makes an id.

Notification ids, scheme :data:`NOTIFICATION_IDS` (the first part is the event type):

* ``delivery_delayed``: customer, order, promise (to the second);
* ``delivery_failed``: customer, order, status, scan time (ms);
* ``repeat_contact``: customer, the contact that brought the count to the threshold;
* ``detractor_followup``: customer, contact (``t`` + survey time in ms without a contact);
* ``frustration_outreach``: customer, episode start (ms).

Alert ids, scheme :data:`ALERT_IDS`:

* :func:`alert_id`, the key of an episode: series, episode start (ms);
* :func:`alert_event_id`, one event of the episode: its alert key, status (``firing`` or
  ``resolved``).

Why two schemes. The notification ids and the alert ids were designed apart: notifications
hash over a namespace derived from ``https://cxpulse.dev/`` with the parts joined by the unit
separator ``\\x1f``; alerts hash over a fixed random namespace with the parts joined by ``|``.
One scheme would be simpler, but ids are a public contract: consumers deduplicate on them, so
a changed id is a new event to them (a second notification to a customer, a second page to
on-call). Both schemes therefore stay as they are, forever; ``tests/streams/test_output_ids.py``
and ``tests/schemas/test_ids.py`` hold recorded values. A new kind of output adds its recipe
here, on a namespace of its own.

Examples
--------
>>> repeat_contact_id("c-1", "k-3") == repeat_contact_id("c-1", "k-3")
True
>>> alert_event_id(alert_id("s", 10.0), "firing") != alert_event_id(alert_id("s", 10.0), "resolved")
True
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from schemas.models import (
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
    NOTIFY_REPEAT_CONTACT,
)


@dataclass(frozen=True, slots=True)
class IdScheme:
    """``uuid5(namespace, separator.join(cause_parts))`` as a string.

    Parameters
    ----------
    namespace : uuid.UUID
        Namespace of one kind of output (fixed forever: changing it changes every id).
    separator : str
        Joins the cause parts; a character no part contains, so ``("ab", "c")`` and
        ``("a", "bc")`` give different ids.

    Examples
    --------
    >>> NOTIFICATION_IDS.derive("ab", "c") != NOTIFICATION_IDS.derive("a", "bc")
    True
    """

    namespace: uuid.UUID
    separator: str

    def derive(self, *cause_parts: str) -> str:
        """The id of the output caused by ``cause_parts`` (floats already formatted)."""
        return str(uuid.uuid5(self.namespace, self.separator.join(cause_parts)))


#: Notifications (``cx.notifications``): the first cause part is always the event type.
NOTIFICATION_IDS: Final = IdScheme(uuid.uuid5(uuid.NAMESPACE_URL, "https://cxpulse.dev/"), "\x1f")
#: Alerts (``cx.alerts``): the episode's key, and each of its events.
ALERT_IDS: Final = IdScheme(uuid.UUID("6f1c1f8e-3c2b-5b8e-9a57-2f0c1d9e4b11"), "|")


def delivery_delayed_id(customer_id: str, order_id: str, promised_by: float) -> str:
    """One ``delivery_delayed`` per order and promise: a new promise may be notified again."""
    return NOTIFICATION_IDS.derive(NOTIFY_DELIVERY_DELAYED, customer_id, order_id, f"{promised_by:.0f}")


def delivery_failed_id(customer_id: str, order_id: str, status: str, ts: float) -> str:
    """One ``delivery_failed`` per failed scan (status and event time of the scan)."""
    return NOTIFICATION_IDS.derive(NOTIFY_DELIVERY_FAILED, customer_id, order_id, status, f"{ts:.3f}")


def repeat_contact_id(customer_id: str, contact_id: str) -> str:
    """One ``repeat_contact`` per contact that brought the customer's count to the threshold."""
    return NOTIFICATION_IDS.derive(NOTIFY_REPEAT_CONTACT, customer_id, contact_id)


def detractor_followup_id(customer_id: str, contact_id: str | None, ts: float) -> str:
    """One ``detractor_followup`` per contact surveyed, or per survey time without a contact."""
    return NOTIFICATION_IDS.derive(NOTIFY_DETRACTOR_FOLLOWUP, customer_id, contact_id or f"t{ts:.3f}")


def frustration_outreach_id(customer_id: str, episode_start: float) -> str:
    """One ``frustration_outreach`` per frustration episode of the customer."""
    return NOTIFICATION_IDS.derive(NOTIFY_FRUSTRATION_OUTREACH, customer_id, f"{episode_start:.3f}")


def alert_id(series: str, episode_start: float) -> str:
    """Key of an alert episode: the same for its firing and resolved events (the Kafka key)."""
    return ALERT_IDS.derive(series, f"{episode_start:.3f}")


def alert_event_id(episode_alert_id: str, status: str) -> str:
    """CloudEvent ``id`` of one event of an episode: its :func:`alert_id` and its status."""
    return ALERT_IDS.derive(episode_alert_id, status)


__all__ = [
    "ALERT_IDS",
    "NOTIFICATION_IDS",
    "IdScheme",
    "alert_event_id",
    "alert_id",
    "delivery_delayed_id",
    "delivery_failed_id",
    "detractor_followup_id",
    "frustration_outreach_id",
    "repeat_contact_id",
]
