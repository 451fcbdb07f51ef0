"""The one place that decides which candidate notifications a customer receives.

Rules, applied in this order to each :class:`~detectors.customer_signal.NotificationCandidate`:

1. ``duplicate``: its ``id`` was already sent to this customer (last ``max_ids`` ids kept).
2. ``cooldown``: a notification of the same type went to this customer less than
   ``cooldown_s`` (event time, default 24 h) before or after the candidate's ``time``.
3. ``daily_cap``: the customer already received ``daily_cap`` (default 3) notifications of any
   type in the **rolling 24 h** of event time up to the candidate's time (``t - 24 h < s <= t``;
   rolling, not calendar days: no time-zone question and no burst at midnight).

Types in ``immediate`` (the worker's transactional ones: "your parcel is late") are subject to
rule 1 only: they are decided as they arrive, so that they go out at once, and a rule that
compared them with other candidates would depend on arrival order. They count towards the cap
of the others. The cap looks only *back* from the candidate's time (it used to look 24 h both
ways): the customers agent decides the other types in event-time order, so everything before a
candidate is known when it is decided, while what comes after it is not, except immediate
notifications that happened to arrive early, which must not change the answer.

Within one :meth:`NotificationPolicy.decide` call candidates are ranked by ``priority`` (default
failed > delayed > detractor > repeat_contact > outreach), then event time, then id, so when
several compete for the cap the more important one wins. Candidates are decided in that order.

Times are compared at the millisecond precision of the sent event's ``time``
(:func:`schemas.models.wire_time`): the policy judges the times consumers see.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from detectors.customer_signal import NotificationCandidate
from schemas.models import (
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
    NOTIFY_REPEAT_CONTACT,
    wire_time,
)

DEFAULT_PRIORITY = (
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_REPEAT_CONTACT,
    NOTIFY_FRUSTRATION_OUTREACH,
)
DAY = 86400.0


class NotificationPolicy:
    """Cooldown, rolling daily cap, priority and duplicate suppression per customer.

    Parameters
    ----------
    cooldown_s : float
        Per customer and type (default 24 h).
    daily_cap : int
        Per customer, any type, rolling 24 h of event time (default 3).
    priority : sequence of str
        Types, most important first; unknown types rank last.
    max_ids : int
        Ids remembered per customer for duplicate suppression.
    store : MutableMapping or None
        customer_id -> ``{"last": {type: ts}, "sent": [ts, ...], "ids": [id, ...]}``.

    Examples
    --------
    >>> def candidate(id, type):
    ...     return NotificationCandidate(type, id, "c", None, 0.0, {"customer_id": "c"})
    >>> pol = NotificationPolicy()
    >>> batch = [candidate("a", NOTIFY_FRUSTRATION_OUTREACH), candidate("b", NOTIFY_DELIVERY_FAILED)]
    >>> send, sup = pol.decide(batch)
    >>> [c.id for c in send], sup
    (['b', 'a'], [])
    >>> pol.decide([candidate("b", NOTIFY_DELIVERY_FAILED)])[1][0][1]
    'duplicate'
    """

    def __init__(self, cooldown_s: float = DAY, daily_cap: int = 3,
                 priority: Iterable[str] = DEFAULT_PRIORITY, max_ids: int = 64,
                 store: MutableMapping[str, dict[str, Any]] | None = None,
                 immediate: Iterable[str] = ()) -> None:
        self.cooldown_s = cooldown_s
        self.daily_cap = daily_cap
        self.priority = {t: i for i, t in enumerate(priority)}
        self.max_ids = max_ids
        self.immediate = frozenset(immediate)
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}

    def _rank(self, candidate: NotificationCandidate) -> tuple[int, float, str]:
        return (self.priority.get(candidate.type, len(self.priority)), wire_time(candidate.time), candidate.id)

    def decide(self, candidates: Iterable[NotificationCandidate], now: float | None = None
               ) -> tuple[list[NotificationCandidate], list[tuple[NotificationCandidate, str]]]:
        """Return ``(send, suppressed)``; ``suppressed`` pairs each candidate with its reason.

        ``now`` is the event time below which every ordered candidate has been decided (the
        customers agent's signals watermark): sends older than two days before it are forgotten.
        Without it, sends older than two days before the customer's newest are.
        """
        send: list[NotificationCandidate] = []
        suppressed: list[tuple[NotificationCandidate, str]] = []
        for candidate in sorted(candidates, key=self._rank):
            cid = candidate.customer_id
            t = wire_time(candidate.time)
            st = self.store.get(cid) or {"last": {}, "sent": [], "ids": []}
            reason = None
            if candidate.id in st["ids"]:
                reason = "duplicate"
            elif candidate.type in self.immediate:
                pass
            elif candidate.type in st["last"] and abs(t - st["last"][candidate.type]) < self.cooldown_s:
                reason = "cooldown"
            elif sum(1 for s in st["sent"] if t - DAY < s <= t) >= self.daily_cap:
                reason = "daily_cap"
            if reason is not None:
                suppressed.append((candidate, reason))
                continue
            horizon = (max([t, *st["sent"]]) if now is None else now) - 2 * DAY
            st = {
                "last": {**st["last"], candidate.type: max(t, st["last"].get(candidate.type, t))},
                # Immediate sends are not capped: keep as many as ids, all within the horizon.
                "sent": sorted(s for s in [*st["sent"], t] if s > horizon)[-self.max_ids :],
                "ids": [*st["ids"], candidate.id][-self.max_ids:],
            }
            self.store[cid] = st
            send.append(candidate)
        return send, suppressed

    def expire(self, now: float) -> int:
        """Drop customers with nothing sent within ``max(cooldown_s, 24 h)`` before ``now``.

        Duplicate memory goes with them (ids are only needed while a replay can still arrive).
        Linear in the number of customers: call it rarely (e.g. hourly of event time).
        """
        horizon = max(self.cooldown_s, DAY)
        stale = [c for c, st in self.store.items()
                 if max([*st["sent"], *st["last"].values(), -1e18]) < now - horizon]
        for c in stale:
            del self.store[c]
        return len(stale)
