from __future__ import annotations

import math

from streams.dedup import Deduplicator
from streams.event_time import EventClock, RollingWindow, Watermark


def test_clock_counts_only_events_beyond_grace_as_late():
    clock = EventClock(grace_s=120)
    assert [clock.observe(t) for t in (1000, 1200, 1081, 1079, 1300)] == [False, False, False, True, False]
    assert clock.now == 1300


def test_rolling_window_slides_in_event_time_and_keeps_running_sums_exact():
    window = RollingWindow(window_s=600, step_s=60)
    for t in range(0, 1200, 10):  # one value of 1 every 10 s for 20 minutes
        window.add(t, 1.0)
    # The window ending in the bucket of t=1190 spans buckets [600, 1200): 60 values.
    assert window.count == 60 and window.total == 60
    window.advance(10_000)
    assert window.count == 0 and math.isnan(window.mean())


def test_rolling_window_accepts_out_of_order_within_the_window_and_refuses_older():
    window = RollingWindow(window_s=600, step_s=60)
    assert window.add(1000, 5)
    assert window.add(700, 1)  # older bucket, still inside the window
    assert not window.add(100, 1)  # before the window: refused
    assert window.mean() == 3


def test_weighted_values_give_ratios():
    window = RollingWindow(window_s=600)
    for t in range(10):
        window.add(t, 0.0)  # ten page views
    window.add(5, 1.0, count=0.0)  # one error
    assert window.total / window.count == 0.1


def test_dedup_is_bounded_by_horizon_and_size():
    seen = Deduplicator(horizon_s=100, max_ids=1000)
    for i in range(5000):
        assert not seen.is_duplicate(f"e{i}", ts=float(i))
    assert len(seen) <= 101
    small = Deduplicator(horizon_s=1e9, max_ids=10)
    for i in range(50):
        small.is_duplicate(f"e{i}", ts=0.0)
    assert len(small) == 10
    assert small.is_duplicate("e49", ts=0.0)
    assert not small.is_duplicate("e0", ts=0.0)  # evicted by the size bound: counted again


def test_reader_of_an_unstarted_stream_is_nan_not_an_error():
    from streams.event_time import mean_reader

    assert math.isnan(mean_reader(RollingWindow(), EventClock())())


def test_watermark_waits_for_the_slowest_live_partition_and_skips_idle_ones():
    from streams.event_time import Watermark

    wall = [0.0]
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: wall[0])
    mark.observe(5000.0, partition=0)
    mark.observe(100.0, partition=1)
    assert mark.advance() == 100.0
    assert not mark.observe(200.0, partition=1)  # not late: judged against its own partition
    assert mark.advance() == 200.0
    wall[0] = 31.0  # partition 1 has gone quiet: it no longer holds the stream back
    mark.observe(5001.0, partition=0)
    assert mark.advance() == 5001.0
    wall[0] = 32.0
    mark.observe(300.0, partition=1)  # back, but behind: the watermark never runs backwards
    assert mark.advance() == 5001.0


def test_an_assigned_partition_holds_the_watermark_before_its_first_event() -> None:
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: 0.0)
    mark.assign([0, 1])
    mark.observe(1000.0, partition=0)
    assert mark.advance() == float("-inf")  # partition 1 has not delivered: nothing may close
    mark.observe(400.0, partition=1)
    assert mark.advance() == 400.0


def test_a_partition_with_backlog_is_never_idle() -> None:
    wall = [0.0]
    backlog = {1: True}
    mark = Watermark(grace_s=60, idle_s=30, clock=lambda: wall[0], backlog=lambda p: backlog.get(p, False))
    mark.observe(400.0, partition=1)
    wall[0] = 100.0  # partition 1 not fetched for 100 s of wall time, but it has unread messages
    mark.observe(5000.0, partition=0)
    assert mark.advance() == 400.0
    backlog[1] = False  # drained and silent: now it is idle and stops holding the clock
    assert mark.advance() == 5000.0
    mark.forget(1)
    assert mark.advance() == 5000.0
