"""Bounded duplicate suppression by ``event_id`` within an event-time horizon."""

from __future__ import annotations

from collections import OrderedDict


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

    def __init__(self, horizon_s: float = 3600.0, max_ids: int = 200_000) -> None:
        self.horizon_s = horizon_s
        self.max_ids = max_ids
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._clock = float("-inf")

    def __len__(self) -> int:
        return len(self._ids)

    def is_duplicate(self, event_id: str, ts: float) -> bool:
        ids = self._ids
        if event_id in ids:
            return True
        ids[event_id] = ts
        if ts > self._clock:
            self._clock = ts
            horizon = ts - self.horizon_s
            # Insertion order approximates event-time order; stop at the first young id.
            while ids:
                oldest_id, oldest_ts = next(iter(ids.items()))
                if oldest_ts >= horizon:
                    break
                del ids[oldest_id]
        while len(ids) > self.max_ids:
            ids.popitem(last=False)
        return False
