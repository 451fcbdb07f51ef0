"""The scrape-time Faust monitor (``streams/faust_monitor.py``) exports what Faust's own would."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams import faust_monitor
from streams.faust_monitor import ScrapeTimeMonitor


class _Stream:
    """Hashable, as Faust's streams are."""

    def __init__(self, shortlabel: str) -> None:
        self.shortlabel = shortlabel


def _monitor() -> tuple[ScrapeTimeMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return ScrapeTimeMonitor(metrics=FaustMetrics.create(registry, "faust")), registry


def test_counts_reach_the_faust_families_at_scrape_time() -> None:
    monitor, registry = _monitor()
    tp = TP("t.clicks", 1)
    stream = _Stream("Stream: t.clicks")
    table = SimpleNamespace(name="orders")
    for offset in range(5):
        monitor.on_message_in(tp, offset, None)
        state = monitor.on_stream_event_in(tp, offset, stream, None)
        monitor.on_stream_event_out(tp, offset, stream, None, state)
    for offset in range(3):
        monitor.on_message_out(tp, offset, None)
    monitor.on_table_set(table, "k", 1)
    monitor.on_table_get(table, "k")
    monitor.track_tp_end_offset(tp, 42)
    value = registry.get_sample_value
    assert value("faust_messages_received_total") == 0.0  # nothing until a scrape
    monitor.flush()
    assert value("faust_messages_received_total") == 5.0
    assert value("faust_messages_received_per_topic_total", {"topic": "t.clicks"}) == 5.0
    assert value("faust_messages_received_per_topics_partition", {"topic": "t.clicks", "partition": "1"}) == 4.0
    assert value("faust_active_messages") == 2.0  # 5 in, 3 acknowledged
    assert value("faust_total_events_total") == 5.0 and value("faust_total_active_events") == 0.0
    assert value("faust_table_operations_total", {"table": "table.orders", "operation": "keys_updated"}) == 1.0
    assert value("faust_topic_partition_end_offset", {"topic": "t.clicks", "partition": "1"}) == 42.0
    monitor.on_message_in(tp, 5, None)
    monitor.flush()
    assert value("faust_messages_received_total") == 6.0  # deltas, not totals, are added


def test_event_runtime_is_sampled_not_observed_per_event() -> None:
    monitor, registry = _monitor()
    tp, stream = TP("t", 0), _Stream("Stream: t")
    events = 10 * faust_monitor.RUNTIME_SAMPLE_EVERY
    for offset in range(events):
        monitor.on_stream_event_out(tp, offset, stream, None, monitor.on_stream_event_in(tp, offset, stream, None))
    assert registry.get_sample_value("faust_events_runtime_ms_count") == 10.0
