"""Faust's ``faust_*`` metrics without Prometheus calls on the per-message path.

Faust's :class:`~faust.sensors.prometheus.PrometheusMonitor` updates several labelled
Prometheus children on every message, every stream event and every table access (plus its
base ``Monitor``'s bookkeeping): 9-12 µs per message measured on the 2-core build machine,
as much as a no-op agent's whole remaining cost. :class:`ScrapeTimeMonitor` counts those
events in plain dicts and hands the totals to the same ``faust_*`` families when ``/metrics``
is scraped (:meth:`ScrapeTimeMonitor.flush`); the event runtime histogram observes one event
in :data:`RUNTIME_SAMPLE_EVERY`. Names, labels and meaning of every family stay Faust's; only
their freshness changes (as of the last scrape instead of the last message). Sends, commits,
rebalances and everything else rarer than a message keep Faust's own hooks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from faust.sensors.prometheus import PrometheusMonitor

#: One stream event in this many has its runtime observed (a sample, not a count).
RUNTIME_SAMPLE_EVERY = 64


class ScrapeTimeMonitor(PrometheusMonitor):
    """A PrometheusMonitor whose per-message hooks only count; :meth:`flush` exports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_by_topic: defaultdict[str, int] = defaultdict(int)
        self._offsets: dict[Any, int] = {}
        self._messages_out = 0
        self._events_by_stream: defaultdict[Any, int] = defaultdict(int)
        self._events_out = 0
        self._events_seen = 0
        self._table_ops: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._stream_labels: dict[Any, str] = {}
        self._end_offsets: dict[Any, int] = {}

    # -- per message: plain counting only ----------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self._in_by_topic[tp.topic] += 1
        self._offsets[tp] = offset

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict[str, float] | None:
        self._events_by_stream[stream] += 1
        self._events_seen += 1
        if self._events_seen % RUNTIME_SAMPLE_EVERY:
            return None
        return {"time_in": time.monotonic()}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: dict[str, float] | None = None
    ) -> None:
        self._events_out += 1
        if state is not None:
            self._metrics.events_runtime_latency.observe((time.monotonic() - state["time_in"]) * 1000.0)

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        self._messages_out += 1

    def on_table_get(self, table: Any, key: Any) -> None:
        self._table_ops[(table.name, self.KEYS_RETRIEVED)] += 1

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._table_ops[(table.name, self.KEYS_UPDATED)] += 1

    def on_table_del(self, table: Any, key: Any) -> None:
        self._table_ops[(table.name, self.KEYS_DELETED)] += 1

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        # Faust calls this for every fetched record (consumer.getmany): keep the last one.
        self._end_offsets[tp] = offset

    # -- at scrape time ----------------------------------------------------------------------
    def flush(self) -> None:
        """Move the counts since the last flush into the ``faust_*`` families."""
        m = self._metrics
        received = 0
        in_by_topic, self._in_by_topic = self._in_by_topic, defaultdict(int)
        for topic, n in in_by_topic.items():
            m.messages_received_per_topics.labels(topic=topic).inc(n)
            received += n
        m.messages_received.inc(received)
        offsets, self._offsets = self._offsets, {}
        for tp, offset in offsets.items():
            m.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        m.active_messages.inc(received - self._messages_out)
        self._messages_out = 0
        events = 0
        by_stream, self._events_by_stream = self._events_by_stream, defaultdict(int)
        for stream, n in by_stream.items():
            label = self._stream_labels.get(stream)
            if label is None:
                label = self._stream_labels[stream] = f"stream.{self._stream_label(stream)}.events"
            m.total_events_per_stream.labels(stream=label).inc(n)
            events += n
        m.total_events.inc(events)
        m.total_active_events.inc(events - self._events_out)
        self._events_out = 0
        ends, self._end_offsets = self._end_offsets, {}
        for tp, offset in ends.items():
            m.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(offset)
        ops, self._table_ops = self._table_ops, defaultdict(int)
        for (table, operation), n in ops.items():
            m.table_operations.labels(table=f"table.{table}", operation=operation).inc(n)
