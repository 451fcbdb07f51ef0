"""Event time: the stream clock, lateness, and rolling windows over the events' own ``ts``.

No outcome here depends on the wall clock, so a replay at 100x speed produces the same
numbers as live traffic. Each partition's clock is the newest ``ts`` seen on it; an event
older than its partition's clock minus the grace period is *late*: it still counts in the
monotonic counters (they have no window), but the rolling windows and detector steps it
would belong to may already have closed, so it is counted in ``cxpulse_events_late_total``
and left out of them. The stream's clock is the watermark: the minimum over live partitions.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class EventClock:
    """The event-time clock of one partition (:class:`Watermark` combines partitions).

    >>> clock = EventClock(grace_s=60)
    >>> clock.observe(1000.0), clock.observe(990.0), clock.observe(900.0)
    (False, False, True)
    >>> clock.now
    1000.0
    """

    def __init__(self, grace_s: float = 120.0) -> None:
        self.grace_s = grace_s
        self.now = float("-inf")

    def observe(self, ts: float) -> bool:
        """Advance the clock to ``ts`` if newer; return True when the event is late."""
        if ts > self.now:
            self.now = ts
            return False
        return ts < self.now - self.grace_s


class Watermark:
    """The event-time clock of one stream on one worker, over the partitions it owns.

    Each partition keeps its own clock (lateness is judged against it), and the stream's
    ``now`` is the *minimum* over the partitions that are live: when a worker catches up on a
    backlog, Kafka hands it partitions in uneven chunks, and a maximum would let one partition
    that ran ahead close windows and declare orders silent for the partitions still behind.
    Partitions count from their assignment (:meth:`assign`), before their first event. A
    partition that has delivered nothing for ``idle_s`` seconds of processing time *and has no
    backlog* is left out, so an idle partition cannot stall the stream; a partition with unread
    messages always counts, so a catch-up in any interleaving of partitions closes nothing
    early (wall time decides liveness only, never an outcome). A revoked partition leaves the
    watermark (:meth:`forget`).

    >>> mark = Watermark(grace_s=60, idle_s=30, clock=lambda: 0.0)
    >>> mark.observe(1000.0, partition=0), mark.observe(400.0, partition=1)
    (False, False)
    >>> mark.advance()  # partition 1 is behind: nothing after 400 may close yet
    400.0
    >>> mark.observe(900.0, partition=0)  # late for partition 0
    True

    ``safe`` is the event time every live partition has reached. It equals ``now`` unless a
    partition is behind the clock: one handed to this worker by a rebalance (:meth:`hold`), which
    the clock cannot wait for since it never runs backwards. Work judged against every partition's
    data (due checks of orders, expiry of customers) should wait for ``safe``.

    >>> mark.forget(1); mark.hold(1)  # partition 1 comes back, behind: nothing is safe until it reports
    >>> mark.advance(), mark.safe
    (400.0, -inf)
    >>> _ = mark.observe(390.0, partition=1); mark.advance(), mark.safe
    (400.0, 390.0)
    """

    def __init__(
        self,
        grace_s: float = 120.0,
        idle_s: float = 30.0,
        clock: Callable[[], float] | None = None,
        backlog: Callable[[int | None], bool] | None = None,
    ) -> None:
        import time

        self.grace_s = grace_s
        self.idle_s = idle_s
        self._wall = clock or time.monotonic
        #: ``backlog(partition)`` is True while the partition has messages not yet consumed: such
        #: a partition is never idle, however long the fetcher leaves it waiting (catch-up).
        self.backlog = backlog
        self._clocks: dict[int | None, EventClock] = {}
        self._seen: dict[int | None, float] = {}
        self.now = float("-inf")
        self.safe = float("-inf")
        #: The partitions the last :meth:`advance` left out as idle (no backlog, silent ``idle_s``).
        self.idle: list[int | None] = []

    def partition_now(self, partition: int | None) -> float:
        """The clock of one partition: the newest ``ts`` seen on it (-inf before its first event)."""
        clock = self._clocks.get(partition)
        return clock.now if clock is not None else float("-inf")

    def assign(self, partitions: Iterable[int | None]) -> None:
        """Partitions now owned hold the watermark back from the start, before their first event,
        so a partition fetched first cannot run the clock ahead of one not fetched yet."""
        wall = self._wall()
        for partition in partitions:
            if partition not in self._clocks:
                self._clocks[partition] = EventClock(self.grace_s)
                self._seen[partition] = wall

    def observe(self, ts: float, partition: int | None = None) -> bool:
        """Record an event of ``partition``; True when it is late for that partition."""
        clock = self._clocks.get(partition)
        if clock is None:
            clock = self._clocks[partition] = EventClock(self.grace_s)
        self._seen[partition] = self._wall()
        return clock.observe(ts)

    def advance(self) -> float:
        """Recompute ``now`` and ``safe`` from the live partitions (call once per message)."""
        if len(self._clocks) == 1:
            (clock,) = self._clocks.values()
            candidate = clock.now
            if self.idle:
                self.idle = []
        else:
            horizon = self._wall() - self.idle_s
            backlog = self.backlog
            live = []
            idle = []
            for p, c in self._clocks.items():
                if self._seen[p] >= horizon or (backlog is not None and backlog(p)):
                    live.append(c.now)
                else:
                    idle.append(p)
            if idle or self.idle:
                self.idle = idle
            candidate = min(live) if live else max((c.now for c in self._clocks.values()), default=self.now)
        # The stream's clock never runs backwards (a partition newly assigned may start behind).
        if candidate > self.now:
            self.now = candidate
        self.safe = min(candidate, self.now)
        return self.now

    def forget(self, partition: int | None) -> None:
        """A partition was revoked: it no longer holds the watermark back."""
        self._clocks.pop(partition, None)
        self._seen.pop(partition, None)

    def hold(self, partition: int | None) -> None:
        """A partition was assigned while the clock runs: ``safe`` waits for its first event (or
        for it to be idle ``idle_s``), since its data may be behind the clock."""
        if math.isfinite(self.now) and partition not in self._clocks:
            self._clocks[partition] = EventClock(self.grace_s)
            self._seen[partition] = self._wall()
            self.safe = float("-inf")


@dataclass(slots=True)
class _Bucket:
    start: float
    total: float = 0.0
    count: float = 0.0


@dataclass
class RollingWindow:
    """Sum and count of values over the last ``window_s`` of event time, in ``step_s`` buckets.

    Memory is ``window_s / step_s`` buckets whatever the traffic.

    >>> csat = RollingWindow(window_s=3600, step_s=60)
    >>> for ts, score in [(0, 5), (30, 4), (1800, 1), (4000, 3)]:
    ...     _ = csat.add(ts, score)
    >>> csat.mean()  # the first two fell out of the window ending at ts=4000
    2.0
    """

    window_s: float = 3600.0
    step_s: float = 60.0
    _buckets: deque[_Bucket] = field(default_factory=deque, repr=False)
    _end: float = float("-inf")
    # Running sums, so mean() is O(1) however many buckets the window holds.
    total: float = 0.0
    count: float = 0.0

    def add(self, ts: float, value: float, count: float = 1.0, now: float | None = None) -> bool:
        """Add ``value`` to the total and ``count`` to the count at event time ``ts``.

        ``count=0`` adds to the numerator only (an error among page views). Returns False
        when ``ts`` is older than the window. ``now`` is the stream's watermark: when given, the
        window ends there rather than at the newest event added, so the events of a partition
        running ahead (a catch-up) cannot push those of the partitions behind out of the window;
        they wait in buckets past its end.
        """
        start = math.floor(ts / self.step_s) * self.step_s
        if now is None:
            end = start + self.step_s
        elif math.isfinite(now):
            end = math.floor(now / self.step_s) * self.step_s + self.step_s
        else:  # no watermark yet (a partition has not reported): nothing closes
            end = -math.inf
        if end > self._end:
            self._end = end
            self._expire()
        if start < self._end - self.window_s:
            return False
        buckets = self._buckets
        if not buckets or buckets[-1].start < start:
            buckets.append(_Bucket(start))
            bucket = buckets[-1]
        elif buckets[-1].start == start:  # the newest bucket: most events
            bucket = buckets[-1]
        else:
            bucket = next((b for b in reversed(buckets) if b.start == start), None)  # type: ignore[assignment]
            if bucket is None:  # a gap bucket for an out-of-order event: insert in order
                bucket = _Bucket(start)
                index = next(i for i, b in enumerate(buckets) if b.start > start)
                buckets.insert(index, bucket)
        bucket.total += value
        bucket.count += count
        self.total += value
        self.count += count
        return True

    def advance(self, now: float) -> None:
        """Move the window's end to ``now`` (event time) without adding a value."""
        if not math.isfinite(now):  # a stream that has seen no event yet
            return
        end = math.floor(now / self.step_s) * self.step_s + self.step_s
        if end > self._end:
            self._end = end
            self._expire()

    def _expire(self) -> None:
        horizon = self._end - self.window_s
        while self._buckets and self._buckets[0].start < horizon:
            gone = self._buckets.popleft()
            self.total -= gone.total
            self.count -= gone.count
        if not self._buckets:  # reset float drift whenever the window empties
            self.total = self.count = 0.0

    def mean(self) -> float:
        """Mean of the values in the window (NaN when empty)."""
        count = self.count
        return self.total / count if count else math.nan


def mean_reader(window: RollingWindow, clock: EventClock | Watermark) -> Callable[[], float]:
    """A scrape-time reader of a window's mean, slid to the stream's clock first.

    Gauges read this way cost nothing per event (``Gauge.set_function``).
    """

    def read() -> float:
        window.advance(clock.now)
        return window.mean()

    return read
