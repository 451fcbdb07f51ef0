"""The one place that decides which candidate notifications a customer receives.

Rules, applied in this order to each candidate (a CloudEvent dict with ``data.customer_id``):

1. ``duplicate``: its ``id`` was already sent to this customer (last ``max_ids`` ids kept).
2. ``cooldown``: a notification of the same type went to this customer less than
   ``cooldown_s`` (event time, default 24 h) before or after the candidate's ``time``.
3. ``daily_cap``: the customer already received ``daily_cap`` (default 3) notifications of any
   type within a **rolling 24 h** of event time around the candidate (rolling, not calendar days:
   no time-zone question and no burst at midnight).

Within one :meth:`NotificationPolicy.decide` call candidates are ranked by ``priority`` (default
failed > delayed > detractor > repeat_contact > outreach), then event time, then id, so when
several compete for the cap the more important one wins. Candidates are decided in that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from schemas.cloudevents import (
    NOTIFY_DELIVERY_DELAYED,
    NOTIFY_DELIVERY_FAILED,
    NOTIFY_DETRACTOR_FOLLOWUP,
    NOTIFY_FRUSTRATION_OUTREACH,
    NOTIFY_REPEAT_CONTACT,
    parse_rfc3339,
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
    >>> from schemas.cloudevents import make_cloudevent
    >>> def ev(i, t):
    ...     return make_cloudevent(type=t, source="/x", subject=None, time=0.0,
    ...                            data={"customer_id": "c"}, dataschema="s", id=i)
    >>> pol = NotificationPolicy()
    >>> batch = [ev("a", NOTIFY_FRUSTRATION_OUTREACH), ev("b", NOTIFY_DELIVERY_FAILED)]
    >>> send, sup = pol.decide(batch)
    >>> [e["id"] for e in send], sup
    (['b', 'a'], [])
    >>> pol.decide([ev("b", NOTIFY_DELIVERY_FAILED)])[1][0][1]
    'duplicate'
    """

    def __init__(self, cooldown_s: float = DAY, daily_cap: int = 3,
                 priority: Iterable[str] = DEFAULT_PRIORITY, max_ids: int = 64,
                 store: MutableMapping[str, dict[str, Any]] | None = None) -> None:
        self.cooldown_s = cooldown_s
        self.daily_cap = daily_cap
        self.priority = {t: i for i, t in enumerate(priority)}
        self.max_ids = max_ids
        self.store: MutableMapping[str, dict[str, Any]] = store if store is not None else {}

    def _rank(self, ev: Mapping[str, Any]) -> tuple[int, float, str]:
        return (self.priority.get(ev["type"], len(self.priority)),
                parse_rfc3339(ev["time"]), str(ev["id"]))

    def decide(self, candidates: Iterable[Mapping[str, Any]]
               ) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
        """Return ``(send, suppressed)``; ``suppressed`` pairs each event with its reason."""
        send: list[dict[str, Any]] = []
        suppressed: list[tuple[dict[str, Any], str]] = []
        for ev in sorted(candidates, key=self._rank):
            cid = str(ev["data"]["customer_id"])
            t = parse_rfc3339(ev["time"])
            st = self.store.get(cid) or {"last": {}, "sent": [], "ids": []}
            reason = None
            if ev["id"] in st["ids"]:
                reason = "duplicate"
            elif ev["type"] in st["last"] and abs(t - st["last"][ev["type"]]) < self.cooldown_s:
                reason = "cooldown"
            elif sum(1 for s in st["sent"] if abs(t - s) < DAY) >= self.daily_cap:
                reason = "daily_cap"
            if reason is not None:
                suppressed.append((dict(ev), reason))
                continue
            newest = max([t, *st["sent"]])
            st = {
                "last": {**st["last"], ev["type"]: max(t, st["last"].get(ev["type"], t))},
                "sent": sorted(s for s in [*st["sent"], t] if newest - s < 2 * DAY)[
                    -4 * self.daily_cap :
                ],
                "ids": [*st["ids"], ev["id"]][-self.max_ids:],
            }
            self.store[cid] = st
            send.append(dict(ev))
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
