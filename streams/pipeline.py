"""What every input stream does to a message, independent of Faust.

A :class:`StreamHandler` turns one Kafka message into metric updates and output records:
parse and validate (``schemas``), dead-letter what is rejected, drop duplicates, advance the
event-time clock, count late events, then hand each accepted event to the stream's own
``on_event``. Agents stay thin: they call :meth:`StreamHandler.handle` and send the returned
:class:`Outputs`. Keeping this free of Faust lets the same code run in unit tests, in the
benchmark and in the worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.customer_signal import CustomerSignal
from schemas import Event, Rejection, Stream, parse_message
from streams.dedup import Deduplicator
from streams.event_time import Watermark
from streams.exceptions import ConfigurationError
from streams.labels import LabelCap, RouteNormalizer, parse_route_patterns
from streams.metrics import Metrics
from streams.settings import Settings
from streams.topics import Store, Topic, topic_names

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class Record:
    """One message to produce on one of cxpulse's topics."""

    topic: Topic
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class Outputs:
    records: list[Record] = field(default_factory=list)
    signals: list[CustomerSignal] = field(default_factory=list)

    def add(self, topic: Topic, key: str | bytes | None, value: bytes, headers: Headers | None = None) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        self.records.append(Record(topic, raw_key, value, headers or []))

    def signal(self, signal: CustomerSignal) -> None:
        """Queue a per-customer signal for ``cx.signals`` (grouped per customer on flush)."""
        self.signals.append(signal)

    def flush_signals(self) -> None:
        """One ``cx.signals`` record per customer, so a customer's candidates meet together."""
        by_customer: dict[str, list[dict[str, Any]]] = {}
        for signal in self.signals:
            by_customer.setdefault(signal.customer_id, []).append(signal.to_dict())
        for customer_id, signals in by_customer.items():
            self.add(Topic.SIGNALS, customer_id, orjson.dumps(signals))
        self.signals.clear()


@dataclass
class Context:
    """What the handlers of one worker share: settings, metrics and label normalisers."""

    settings: Settings
    metrics: Metrics
    pages: RouteNormalizer
    caps: dict[str, LabelCap]
    #: Durable state (Faust tables in the worker, dicts in tests): one per :class:`Store`.
    stores: Mapping[Store, MutableMapping[str, Any]]
    clock: Callable[[], float] = time.time  # wall clock, only for the event-delay histogram

    def store(self, store: Store) -> MutableMapping[str, Any]:
        try:
            return self.stores[store]
        except KeyError:
            raise ConfigurationError(f"store {store.value!r} was not created by the worker") from None

    @classmethod
    def create(
        cls, settings: Settings, metrics: Metrics, stores: Mapping[Store, MutableMapping[str, Any]] | None = None
    ) -> Context:
        """A context; ``stores`` defaults to in-memory dicts (tests, benchmarks)."""
        if stores is None:
            stores = {store: {} for store in Store}
        missing = [store.value for store in Store if store not in stores]
        if missing:
            raise ConfigurationError(f"stores missing: {', '.join(missing)}")
        limit = settings.max_label_values
        return cls(
            settings=settings,
            metrics=metrics,
            pages=RouteNormalizer(parse_route_patterns(settings.route_patterns), settings.max_pages),
            caps={name: LabelCap(limit) for name in ("reason", "channel", "carrier", "region")},
            stores=stores,
        )

    def label(self, dimension: str, value: str | None) -> str:
        return self.caps[dimension](value)


def deadletter_headers(
    rejection: Rejection, stream: str, source_topic: str, partition: int | None, offset: int | None
) -> Headers:
    """Headers a person (or a replay tool) needs to act on a rejected record."""
    headers = [
        ("cxpulse-reason", rejection.reason.encode()),
        ("cxpulse-error", rejection.detail.encode("utf-8", "replace")[:2000]),
        ("cxpulse-stream", stream.encode()),
        ("cxpulse-source-topic", source_topic.encode()),
        ("cxpulse-source-partition", str(partition if partition is not None else -1).encode()),
        ("cxpulse-source-offset", str(offset if offset is not None else -1).encode()),
    ]
    if rejection.index is not None:
        headers.append(("cxpulse-batch-index", str(rejection.index).encode()))
    return headers


class StreamHandler:
    """Base of the per-stream handlers; subclasses implement :meth:`on_event`."""

    stream: Stream
    #: The stores whose keys this handler's detectors index (rebuilt by :meth:`recovered`).
    stores: tuple[Store, ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ctx.metrics
        settings = ctx.settings
        self.source = Topic.of_stream(self.stream)
        self.source_topic = topic_names(settings)[self.source]
        self.event_clock = Watermark(settings.late_grace_seconds, settings.idle_partition_seconds)
        self.dedup = Deduplicator(settings.dedup_horizon_seconds, settings.dedup_max_ids)
        name = self.stream.value
        # Bound label children once: .labels() per event is the hottest cost in the loop.
        self._messages = self.metrics.messages.labels(name)
        self._late = self.metrics.events_late.labels(name)
        self._duplicates = self.metrics.events_duplicate.labels(name)
        self._deadletters = self.metrics.deadletters.labels(name)
        # Read at scrape time: no per-message cost.
        self.metrics.event_time.labels(name).set_function(lambda: max(self.event_clock.now, 0.0))
        self._delay = self.metrics.event_delay.labels(name)
        self._by_type: dict[str, Any] = {}

    def handle(
        self, raw: bytes, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        """Process one Kafka message value; never raises on bad input."""
        out = Outputs()
        self._messages.inc()
        settings = self.ctx.settings
        result = parse_message(
            self.stream, raw, max_message_bytes=settings.max_message_bytes, max_batch_events=settings.max_batch_events
        )
        for rejection in result.rejections:
            self.metrics.events_rejected.labels(self.stream.value, rejection.reason).inc()
            headers = deadletter_headers(rejection, self.stream.value, self.source_topic, partition, offset)
            out.add(Topic.DEADLETTER, key, rejection.payload, headers)
            self._deadletters.inc()
        newest = None
        for event in result.events:
            if self.dedup.is_duplicate(event.event_id, event.ts):
                self._duplicates.inc()
                continue
            late = self.event_clock.observe(event.ts, partition)
            if late:
                self._late.inc()
            counter = self._by_type.get(event.type)
            if counter is None:
                counter = self._by_type[event.type] = self.metrics.events.labels(self.stream.value, event.type)
            counter.inc()
            self.on_event(event, late, out)
            newest = event.ts if newest is None or event.ts > newest else newest
        if newest is not None:
            self._delay.observe(max(0.0, self.ctx.clock() - newest))
            self.on_clock(self.event_clock.advance(), out)
        if out.signals:
            out.flush_signals()
        return out

    def on_event(self, event: Event, late: bool, out: Outputs) -> None:
        """Update metrics and detectors for one accepted, de-duplicated event."""
        raise NotImplementedError

    def on_clock(self, now: float, out: Outputs) -> None:
        """Called once per message after its events, with the stream's event-time clock."""

    def recovered(self) -> None:
        """The worker's tables were recovered after a rebalance: re-index what is now ours."""
