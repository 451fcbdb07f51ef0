"""Contact-centre rules: repeat contacts and survey detractors (event time, bounded state).

* :class:`RepeatContactRule`: a customer opening their ``threshold``-th contact within
  ``window_s`` (default the 3rd within 7 days) yields one ``cx.notification.repeat_contact``
  candidate, when the count in the window *reaches* the threshold (a 4th contact in the same
  window does not fire again; once the window slides below the threshold it can fire again).
* :class:`DetractorRule`: a ``survey_response`` with CSAT <= ``csat_max`` (2), NPS <=
  ``nps_max`` (6) or CES >= ``ces_min`` (6) yields a ``cx.notification.detractor_followup``
  candidate, with the contact's reason remembered from its ``contact_opened`` (bounded LRU).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from detectors.customer_signal import CustomerSignal, DueIndex, NotificationCandidate
from schemas.ids import detractor_followup_id, repeat_contact_id
from schemas.models import NOTIFY_DETRACTOR_FOLLOWUP, NOTIFY_REPEAT_CONTACT, ContactEvent

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RepeatContact:
    """The customer's contacts in the window that reached the threshold (oldest first)."""

    customer_id: str
    contact_ids: tuple[str, ...]
    reasons: tuple[str | None, ...]
    channels: tuple[str | None, ...]
    ts: float

    @property
    def id(self) -> str:
        """customer + the contact that reached the threshold (:func:`schemas.ids.repeat_contact_id`)."""
        return repeat_contact_id(self.customer_id, self.contact_ids[-1])

    def candidate(self) -> NotificationCandidate:
        """The ``cx.notification.repeat_contact`` it proposes, about the newest contact."""
        return NotificationCandidate(
            type=NOTIFY_REPEAT_CONTACT, id=self.id, customer_id=self.customer_id,
            subject=self.contact_ids[-1], time=self.ts,
            data={"customer_id": self.customer_id, "contact_ids": list(self.contact_ids),
                  "reasons": list(self.reasons), "channels": list(self.channels)},
        )

    def to_signal(self) -> CustomerSignal:
        """``repeat_contact`` signal carrying the candidate notification."""
        return CustomerSignal("repeat_contact", self.customer_id, self.ts, self.contact_ids[-1],
                              {"count": len(self.contact_ids)}, self.candidate())


class RepeatContactRule:
    """Fires when a customer's open contacts within ``window_s`` reach ``threshold``.

    Parameters
    ----------
    threshold : int
        Contacts in the window that make a repeat contact (default 3).
    window_s : float
        Window length in seconds of event time (default 7 days), inclusive.
    store : MutableMapping or None
        customer_id -> list of ``[ts, contact_id, reason, channel]`` (at most ``threshold * 4``).

    Examples
    --------
    >>> from schemas.models import ContactEvent
    >>> rule = RepeatContactRule()
    >>> evs = [ContactEvent(f"e{i}", i * 86400.0, "contact_opened", "c-1", contact_id=f"k{i}",
    ...                     channel="chat", reason="delivery") for i in range(3)]
    >>> [rule.process(e) is not None for e in evs]
    [False, False, True]
    """

    def __init__(self, threshold: int = 3, window_s: float = 7 * DAY,
                 store: MutableMapping[str, list[list[Any]]] | None = None) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.store: MutableMapping[str, list[list[Any]]] = store if store is not None else {}
        self._index = DueIndex()
        self.clock = float("-inf")
        self.rebuild_index()

    def rebuild_index(self) -> None:
        """Re-index the store's customers by expiry (after the store was restored or changed hands)."""
        self._index.clear()
        for cid, items in self.store.items():
            if items:
                self._index.schedule(cid, float(items[-1][0]) + self.window_s)

    def process(self, event: ContactEvent) -> RepeatContact | None:
        """Apply a contact event (only ``contact_opened`` counts), in the customer's own time.

        Nothing is expired here: another partition's contacts may be far behind this one's,
        so other customers' histories expire only in :meth:`advance`, on the watermark.
        """
        if event.type != "contact_opened" or event.contact_id is None:
            return None
        items = [it for it in self.store.get(event.customer_id, [])
                 if event.ts - it[0] <= self.window_s and it[1] != event.contact_id]
        before = sum(1 for it in items if it[0] <= event.ts)
        items.append([event.ts, event.contact_id, event.reason, event.channel])
        items.sort(key=lambda it: (it[0], it[1]))
        items = items[-self.threshold * 4:]
        self.store[event.customer_id] = items
        self._index.schedule(event.customer_id, float(items[-1][0]) + self.window_s)
        if before + 1 != self.threshold:
            return None
        hit = [it for it in items if it[0] <= event.ts][-self.threshold:]
        return RepeatContact(event.customer_id, tuple(str(it[1]) for it in hit),
                             tuple(it[2] for it in hit), tuple(it[3] for it in hit), event.ts)

    def reason_of(self, customer_id: str, contact_id: str | None) -> str | None:
        """The reason of one of the customer's contacts still in the window (None if unknown)."""
        for it in self.store.get(customer_id) or ():
            if it[1] == contact_id:
                return it[2]
        return None

    def advance(self, now: float) -> None:
        """Drop customers whose newest contact left the window by ``now``: the watermark of
        the contacts stream (the minimum over its partitions), never the newest event seen."""
        self.clock = max(self.clock, now)
        for cid, _ in list(self._index.pop_due(now)):
            self.store.pop(cid, None)


@dataclass(frozen=True, slots=True)
class Detractor:
    """A detractor survey answer."""

    customer_id: str
    contact_id: str | None
    csat: int | None
    nps: int | None
    ces: int | None
    reason: str | None
    ts: float

    @property
    def id(self) -> str:
        """customer + contact, or survey time without a contact (:func:`schemas.ids.detractor_followup_id`)."""
        return detractor_followup_id(self.customer_id, self.contact_id, self.ts)

    def candidate(self) -> NotificationCandidate:
        """The ``cx.notification.detractor_followup`` it proposes, about the surveyed contact."""
        return NotificationCandidate(
            type=NOTIFY_DETRACTOR_FOLLOWUP, id=self.id, customer_id=self.customer_id,
            subject=self.contact_id, time=self.ts,
            data={"customer_id": self.customer_id, "contact_id": self.contact_id,
                  "scores": {"csat": self.csat, "nps": self.nps, "ces": self.ces},
                  "reason": self.reason},
        )

    def to_signal(self) -> CustomerSignal:
        """``detractor`` signal carrying the candidate notification."""
        return CustomerSignal("detractor", self.customer_id, self.ts, self.contact_id or "",
                              {"reason": self.reason}, self.candidate())


class DetractorRule:
    """Flags detractor survey responses.

    The reason of the contact a survey refers to comes from the caller, which already keeps
    one map of contacts (the contacts handler), so the rule keeps no state of its own.

    Parameters
    ----------
    csat_max, nps_max, ces_min : int
        Detractor if CSAT <= csat_max or NPS <= nps_max or CES >= ces_min (inclusive).

    Examples
    --------
    >>> from schemas.models import ContactEvent
    >>> rule = DetractorRule()
    >>> d = rule.process(ContactEvent("e2", 9.0, "survey_response", "c-1", contact_id="k1", csat=2),
    ...                  contact_reason="billing")
    >>> d.reason, d.csat
    ('billing', 2)
    >>> rule.process(ContactEvent("e3", 9.0, "survey_response", "c-1", contact_id="k1", csat=4)) is None
    True
    """

    def __init__(self, csat_max: int = 2, nps_max: int = 6, ces_min: int = 6) -> None:
        self.csat_max = csat_max
        self.nps_max = nps_max
        self.ces_min = ces_min

    def is_detractor(self, csat: int | None, nps: int | None, ces: int | None) -> bool:
        """The threshold test alone."""
        return ((csat is not None and csat <= self.csat_max)
                or (nps is not None and nps <= self.nps_max)
                or (ces is not None and ces >= self.ces_min))

    def process(self, event: ContactEvent, contact_reason: str | None = None) -> Detractor | None:
        """A :class:`Detractor` for a bad survey; ``contact_reason`` is the reason of the
        contact the survey refers to, used when the survey carries none."""
        if event.type != "survey_response" or not self.is_detractor(event.csat, event.nps,
                                                                     event.ces):
            return None
        reason = event.reason if event.reason is not None else contact_reason
        return Detractor(event.customer_id, event.contact_id, event.csat, event.nps, event.ces,
                         reason, event.ts)
