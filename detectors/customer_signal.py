"""The record that carries cross-stream facts to the customer agent, and a shared due-time index.

In production the clickstream, contacts and deliveries agents emit small :class:`CustomerSignal`
records re-keyed by ``customer_id`` to the internal topic ``cx.signals``; the customers agent
feeds them to :class:`detectors.frustration_score.FrustrationScore` and passes any candidate
notification through :class:`detectors.notification_policy.NotificationPolicy`.

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
    notification : dict or None
        Optional candidate notification (a CloudEvent dict) for the policy to decide on.

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
    notification: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the value of a ``cx.signals`` message)."""
        return {
            "kind": self.kind,
            "customer_id": self.customer_id,
            "ts": self.ts,
            "source_id": self.source_id,
            "detail": dict(self.detail),
            "notification": dict(self.notification) if self.notification is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CustomerSignal:
        """Inverse of :meth:`to_dict`; raises ``KeyError``/``ValueError`` on malformed input."""
        notification = d.get("notification")
        return cls(
            kind=str(d["kind"]),
            customer_id=str(d["customer_id"]),
            ts=float(d["ts"]),
            source_id=str(d["source_id"]),
            detail=dict(d.get("detail") or {}),
            notification=dict(notification) if notification is not None else None,
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
