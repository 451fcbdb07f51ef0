"""The deduplicator against the plain rule it implements faster."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from streams.dedup import Deduplicator


class PlainRule:
    """Look at the oldest id on every newer event (the rule, without the front-time shortcut)."""

    def __init__(self, horizon_s: float, max_ids: int) -> None:
        self.horizon_s, self.max_ids = horizon_s, max_ids
        self.ids: OrderedDict[str, float] = OrderedDict()
        self.clock = float("-inf")

    def is_duplicate(self, event_id: str, ts: float) -> bool:
        if event_id in self.ids:
            return True
        self.ids[event_id] = ts
        if ts > self.clock:
            self.clock = ts
            while self.ids:
                oldest_id, oldest_ts = next(iter(self.ids.items()))
                if oldest_ts >= ts - self.horizon_s:
                    break
                del self.ids[oldest_id]
        while len(self.ids) > self.max_ids:
            self.ids.popitem(last=False)
        return False


@pytest.mark.parametrize("seed", range(20))
def test_same_answers_as_the_plain_rule(seed: int) -> None:
    rng = random.Random(seed)
    horizon, max_ids = rng.choice([5.0, 50.0, 1e9]), rng.choice([3, 40, 10_000])
    fast, plain = Deduplicator(horizon, max_ids), PlainRule(horizon, max_ids)
    ts = 0.0
    for i in range(5000):
        ts += rng.expovariate(2.0)
        # Out of order by up to 20 s, gaps longer than the horizon, and repeated ids.
        event_ts = ts - rng.random() * 20 if rng.random() < 0.2 else ts
        if rng.random() < 0.01:
            ts += 100
        event_id = f"e{rng.randrange(i + 1)}" if rng.random() < 0.3 else f"e{i}"
        assert fast.is_duplicate(event_id, event_ts) == plain.is_duplicate(event_id, event_ts), i
        assert len(fast) == len(plain.ids)
