"""The records that carry cross-stream facts to the customer agent, and a shared due-time index.

In production the clickstream, contacts and deliveries agents emit small :class:`CustomerSignal`
records re-keyed by ``customer_id`` to the internal topic ``cx.signals``; the customers agent
feeds them to :class:`detectors.frustration_score.FrustrationScore` and passes any
:class:`NotificationCandidate` through :class:`detectors.notification_policy.NotificationPolicy`.
Both records are plain data that travel as plain JSON: wrapping a sent candidate into a
CloudEvent is :mod:`streams.envelopes`' job, not a detector's.

:class:`DueIndex` is the time-ordered index (a heap of ``(due_ts, key, version)``) the stateful
detectors use so that advancing event time costs nothing per key when nothing is due. Entries made
stale by a later update are skipped lazily (their version no longer matches) and the heap is
compacted when stale entries dominate.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.models import NOTIFICATION_TYPES

#: Signal kinds understood by the frustration score (other kinds carry only a notification).
SIGNAL_KINDS = (
    "rage_click",
    "error_click",
    "dead_click",
    "failed_login_streak",
    "complaint",
    "detractor",
    "delivery_delayed",
    "delivery_failed",
    "repeat_contact",
)


@dataclass(frozen=True, slots=True)
class NotificationCandidate:
    """A notification a rule proposes for one customer, before the policy decides on it.

    Parameters
    ----------
    type : str
        Notification type, one of :data:`schemas.models.NOTIFICATION_TYPES`.
    id : str
        Derived from the cause by :mod:`schemas.ids`: the policy drops a repeated id, and a sent
        candidate's id is its CloudEvent ``id``.
    customer_id : str
        The customer it is for (the policy's key).
    subject : str or None
        The order or contact it is about (never personal data); None when there is none.
    time : float
        Event time (epoch seconds) of the cause.
    data : dict
        The notification's data as its JSON Schema (``schemas/json/notifications/``) describes
        it: JSON-able, timestamps already RFC 3339.

    Raises
    ------
    ValueError
        For a type that is not a notification type, or an empty id.

    Examples
    --------
    >>> c = NotificationCandidate("cx.notification.repeat_contact", "id-1", "c-1", "k-3", 10.0,
    ...                           {"customer_id": "c-1"})
    >>> NotificationCandidate.from_dict(c.to_dict()) == c
    True
    """

    type: str
    id: str
    customer_id: str
    subject: str | None
    time: float
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        # Checked here because candidates also arrive from cx.signals: a bad one is dead-lettered
        # there rather than sent as an event no consumer can read.
        if self.type not in NOTIFICATION_TYPES:
            raise ValueError(f"not a notification type: {self.type!r}")
        if not self.id:
            raise ValueError("a notification candidate needs an id")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inside a ``cx.signals`` record)."""
        return {
            "type": self.type,
            "id": self.id,
            "customer_id": self.customer_id,
            "subject": self.subject,
            "time": self.time,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NotificationCandidate:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``ValueError``/``TypeError`` on malformed input."""
        subject = d["subject"]
        return cls(
            type=str(d["type"]),
            id=str(d["id"]),
            customer_id=str(d["customer_id"]),
            subject=str(subject) if subject is not None else None,
            time=float(d["time"]),
            data=dict(d["data"]),
        )

    def __hash__(self) -> int:  # data is a dict: the id identifies a candidate
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class CustomerSignal:
    """One fact about a customer, keyed by ``customer_id`` on ``cx.signals``.

    Parameters
    ----------
    kind : str
        What happened, e.g. ``rage_click`` or ``delivery_delayed`` (see :data:`SIGNAL_KINDS`).
    customer_id : str
        The customer (Kafka key of ``cx.signals``).
    ts : float
        Event time (epoch seconds) of the cause.
    source_id : str
        Id of the cause: session, order or contact id (never personal data).
    detail : dict
        Small JSON-able extras (e.g. ``{"page": "/checkout"}``).
    notification : NotificationCandidate or None
        Optional candidate notification for the policy to decide on.

    Examples
    --------
    >>> s = CustomerSignal("complaint", "c-1", 10.0, "k-1", {"reason": "delivery"})
    >>> CustomerSignal.from_dict(s.to_dict()) == s
    True
    """

    kind: str
    customer_id: str
    ts: float
    source_id: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    notification: NotificationCandidate | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the value of a ``cx.signals`` message)."""
        return {
            "kind": self.kind,
            "customer_id": self.customer_id,
            "ts": self.ts,
            "source_id": self.source_id,
            "detail": dict(self.detail),
            "notification": self.notification.to_dict() if self.notification is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CustomerSignal:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``ValueError``/``TypeError`` on malformed input."""
        notification = d.get("notification")
        return cls(
            kind=str(d["kind"]),
            customer_id=str(d["customer_id"]),
            ts=float(d["ts"]),
            source_id=str(d["source_id"]),
            detail=dict(d.get("detail") or {}),
            notification=NotificationCandidate.from_dict(notification) if notification is not None else None,
        )

    def __hash__(self) -> int:  # detail/notification are dicts: hash the identity fields only
        return hash((self.kind, self.customer_id, self.ts, self.source_id))


class DueIndex:
    """Heap of ``(due_ts, key, version)`` with lazy deletion.

    ``schedule(key, due)`` supersedes any earlier entry of ``key``; ``pop_due(now)`` yields keys
    whose latest entry is due at or before ``now``, earliest first (ties by key: deterministic).

    Examples
    --------
    >>> ix = DueIndex()
    >>> ix.schedule("a", 5.0); ix.schedule("b", 3.0); ix.schedule("a", 9.0)
    >>> list(ix.pop_due(6.0))
    [('b', 3.0)]
    >>> list(ix.pop_due(10.0))
    [('a', 9.0)]
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, str, int]] = []
        self._version: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, key: str, due: float) -> None:
        """(Re)schedule ``key`` at ``due``; replaces the previous due time."""
        if self._due.get(key) == due:
            return
        self._seq += 1
        self._version[key] = self._seq
        self._due[key] = due
        heapq.heappush(self._heap, (due, key, self._seq))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def discard(self, key: str) -> None:
        """Forget ``key`` (its heap entries become stale)."""
        self._version.pop(key, None)
        self._due.pop(key, None)

    def due_of(self, key: str) -> float | None:
        """Current due time of ``key`` or None."""
        return self._due.get(key)

    def next_due(self) -> float | None:
        """Earliest live due time, or None when empty."""
        while self._heap:
            due, key, ver = self._heap[0]
            if self._version.get(key) == ver:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: float) -> Iterator[tuple[str, float]]:
        """Yield ``(key, due)`` for every key due at or before ``now`` and unschedule it.

        A consumer may reschedule the yielded key while iterating; a new due time <= ``now``
        is yielded again in the same pass.
        """
        while self._heap and self._heap[0][0] <= now:
            due, key, ver = heapq.heappop(self._heap)
            if self._version.get(key) != ver:
                continue
            del self._version[key]
            del self._due[key]
            yield key, due

    def clear(self) -> None:
        """Drop every entry."""
        self._heap.clear()
        self._version.clear()
        self._due.clear()

    def _compact(self) -> None:
        self._heap = [(d, k, v) for d, k, v in self._heap if self._version.get(k) == v]
        heapq.heapify(self._heap)
