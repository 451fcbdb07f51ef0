"""Bounded duplicate suppression by ``event_id`` within an event-time horizon."""

from __future__ import annotations

from collections import deque


class Deduplicator:
    """Remembers event ids for ``horizon_s`` of event time, at most ``max_ids`` of them.

    Producers retry, and at-least-once delivery replays messages after a rebalance; an id
    seen again within the horizon is a duplicate. Memory is bounded twice over: ids older
    than the horizon (relative to the newest event time seen) are forgotten, and so are the
    oldest ids beyond ``max_ids``.

    >>> seen = Deduplicator(horizon_s=60, max_ids=10)
    >>> seen.is_duplicate("a", ts=0.0), seen.is_duplicate("a", ts=5.0)
    (False, True)
    >>> seen.is_duplicate("b", ts=100.0), seen.is_duplicate("a", ts=101.0)
    (False, False)
    """

    __slots__ = ("_clock", "_order_ids", "_order_ts", "_seen", "horizon_s", "max_ids")

    def __init__(self, horizon_s: float = 3600.0, max_ids: int = 200_000) -> None:
        self.horizon_s = horizon_s
        self.max_ids = max_ids
        # A set for the lookups and the ids with their times in arrival order, for forgetting:
        # cheaper per event than one ordered map (this runs once per input event).
        self._seen: set[str] = set()
        self._order_ids: deque[str] = deque()
        self._order_ts: deque[float] = deque()
        self._clock = float("-inf")

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, event_id: str, ts: float) -> bool:
        seen = self._seen
        if event_id in seen:
            return True
        seen.add(event_id)
        self._order_ids.append(event_id)
        order_ts = self._order_ts
        order_ts.append(ts)
        if ts > self._clock:
            self._clock = ts
            horizon = ts - self.horizon_s
            # Arrival order approximates event-time order; stop at the first young id.
            if order_ts[0] < horizon:
                order_ids = self._order_ids
                while order_ts and order_ts[0] < horizon:
                    order_ts.popleft()
                    seen.discard(order_ids.popleft())
        while len(seen) > self.max_ids:
            self._order_ts.popleft()
            seen.discard(self._order_ids.popleft())
        return False
