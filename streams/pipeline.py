"""What every input stream does to a message, independent of Faust.

A :class:`StreamHandler` turns one Kafka message into metric updates and output records:
parse and validate (``schemas``), dead-letter what is rejected, drop duplicates, advance the
event-time clock, count late events, then hand each accepted event to the stream's own
``on_event``. An exception our own code raises on one event (a detector's bug) dead-letters
that event with reason ``processing_error`` and drops its partial outputs; the rest of the
message, and the stream, go on. Agents stay thin: they call :meth:`StreamHandler.handle` and
send the returned :class:`Outputs` (:mod:`streams.sender`). Keeping this free of Faust lets the
same code run in unit tests, in the benchmark and in the worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from detectors.customer_signal import CustomerSignal
from schemas import Event, Rejection, Stream, message_parser
from streams.checkpoints import Checkpoints
from streams.deadletters import DeadLetter, Headers, Source, dead_letter, element_payload, processing_error
from streams.deadletters import deadletter_headers as deadletter_headers  # re-exported: customers.py
from streams.dedup import Deduplicator
from streams.event_time import Watermark
from streams.exceptions import ConfigurationError
from streams.labels import LabelCap, RouteNormalizer, parse_route_patterns
from streams.metrics import Metrics
from streams.settings import Settings
from streams.size_budget import SizeBudget
from streams.topics import Store, Topic, topic_names

if TYPE_CHECKING:
    from streams.series import SeriesPartials


@dataclass(slots=True)
class Record:
    """One message to produce on one of cxpulse's topics."""

    topic: Topic
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    #: An explicit partition (progress records go to every partition); None: by key.
    partition: int | None = None


class Outputs:
    """What handling one input message produces: records to send, and signals not grouped yet."""

    __slots__ = ("records", "signals")

    def __init__(self, records: list[Record] | None = None, signals: list[CustomerSignal] | None = None) -> None:
        # By hand rather than a dataclass's default factories: one is made per input message.
        self.records: list[Record] = [] if records is None else records
        self.signals: list[CustomerSignal] = [] if signals is None else signals

    def add(
        self,
        topic: Topic,
        key: str | bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        self.records.append(Record(topic, raw_key, value, headers or [], partition))

    def mark(self) -> tuple[int, int]:
        """Where the outputs stand now, for :meth:`rollback`."""
        return len(self.records), len(self.signals)

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget what was added since ``mark`` (the outputs of an event our code failed on)."""
        del self.records[mark[0] :], self.signals[mark[1] :]

    def broadcast(self, topic: Topic, key: str, value: bytes, partitions: int) -> None:
        """``value`` to every partition of ``topic`` (progress records: every owner must see them)."""
        for target in range(partitions):
            self.add(topic, key, value, partition=target)

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self.records.append(Record(Topic.DEADLETTER, letter.key, letter.value, letter.headers))

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


#: ``type`` of a progress record on ``cx.signals`` and ``cx.series``.
PROGRESS = "progress"
#: Least wall time between two signals progress reports of one partition (catch-ups, replays).
PROGRESS_MIN_WALL_S = 0.1
#: Wall time a partition must be quiet before its held-back newest clock is reported anyway.
FLUSH_QUIET_S = 1.0


class SignalsProgress:
    """The progress of one input stream's partitions on ``cx.signals`` (its signals watermark).

    After the signals of a message, when a partition's clock (the newest ``ts`` seen on it) has
    advanced by ``CXPULSE_SIGNALS_PROGRESS_SECONDS`` of event time since its last report, a
    record ``{"type": "progress", "stream", "partition", "through"}`` goes to every partition of
    ``cx.signals``, after the signals it covers: every signal this partition sends later is
    expected at or after ``through`` (events in ``ts`` order within a partition). The customers
    agent holds signals until every input partition of every stream has passed them
    (:mod:`streams.customers`). The interval trades records for waiting: each report is
    ``CXPULSE_PARTITIONS`` small records, and an ordered notification waits until the slowest
    input partition's next report past its time.

    In a catch-up or a replay event time runs far faster than the wall clock and every message
    would report; ``wall`` (monotonic seconds, None in world runs) then spaces the reports of a
    partition by :data:`PROGRESS_MIN_WALL_S`. Which reports go out changes when signals are
    released, never the order they are applied in (only a signal arriving below the watermark
    depends on it, and fewer reports make that rarer).
    """

    def __init__(self, stream: Stream, settings: Settings, wall: Callable[[], float] | None = time.monotonic) -> None:
        self.stream = stream.value
        self.every = settings.signals_progress_seconds
        self.partitions = settings.partitions  # of cx.signals: progress goes to each
        self.wall = wall
        self._sent: dict[int, float] = {}
        self._sent_at: dict[int, float] = {}
        #: Per partition: a clock not reported yet (the spacing held it back), and the wall time
        #: of the message that moved it (see :meth:`flush`).
        self._unreported: dict[int, float] = {}
        self._touched: dict[int, float] = {}

    def advance(self, partition: int | None, now: float, out: Outputs) -> None:
        """``partition``'s clock is at ``now``: report it if it moved far enough since the last
        report, else remember it as not reported yet (see :meth:`flush`)."""
        if math.isinf(now):
            return
        p = partition or 0
        last = self._sent.get(p)
        wall = self.wall() if self.wall is not None else 0.0
        if last is None or (
            now - last >= self.every
            and (self.wall is None or wall - self._sent_at.get(p, -math.inf) >= PROGRESS_MIN_WALL_S)
        ):
            if self.wall is not None:
                self._sent_at[p] = wall
            self._report(p, now, out)
        elif now > last:
            self._unreported[p] = now
            self._touched[p] = wall

    def _report(self, p: int, now: float, out: Outputs) -> None:
        self._sent[p] = now
        self._unreported.pop(p, None)
        record = orjson.dumps({"type": PROGRESS, "stream": self.stream, "partition": p, "through": now})
        out.broadcast(Topic.SIGNALS, f"{self.stream}/{p}", record, self.partitions)

    @property
    def pending(self) -> int:
        """Partitions whose newest clock has not been reported yet."""
        return len(self._unreported)

    def flush(self, out: Outputs, quiet_s: float = FLUSH_QUIET_S) -> None:
        """Report the newest clock of every partition quiet for ``quiet_s`` (wall) since its last
        message, if the spacing rules held it back: once traffic stops, the last signals of every
        partition are released by the same rule on one worker or many (a worker timer calls this,
        between messages, after their outputs were sent)."""
        wall = self.wall() if self.wall is not None else math.inf
        for p, now in list(self._unreported.items()):
            if wall - self._touched.get(p, -math.inf) >= quiet_s:
                self._report(p, now, out)

    def forget(self, partition: int | None) -> None:
        self._sent.pop(partition or 0, None)
        self._sent_at.pop(partition or 0, None)
        self._unreported.pop(partition or 0, None)
        self._touched.pop(partition or 0, None)


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
    #: Spaces signals progress reports in wall time (None: every report, as in world runs).
    progress_wall: Callable[[], float] | None = time.monotonic
    #: Per-partition state saved before every commit (a dict-backed one in tests, benchmarks).
    checkpoints: Checkpoints = field(default_factory=lambda: Checkpoints({}))

    def store(self, store: Store) -> MutableMapping[str, Any]:
        try:
            return self.stores[store]
        except KeyError:
            raise ConfigurationError(f"store {store.value!r} was not created by the worker") from None

    @classmethod
    def create(
        cls,
        settings: Settings,
        metrics: Metrics,
        stores: Mapping[Store, MutableMapping[str, Any]] | None = None,
        checkpoints: Checkpoints | None = None,
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
            checkpoints=checkpoints or Checkpoints({}),
        )

    def label(self, dimension: str, value: str | None) -> str:
        return self.caps[dimension](value)


class StreamHandler:
    """Base of the per-stream handlers; subclasses implement :meth:`on_event`."""

    stream: Stream
    #: The stores whose keys this handler's detectors index (rebuilt by :meth:`recovered`).
    stores: tuple[Store, ...] = ()
    #: The partials of the series this stream feeds (:mod:`streams.series`), if any.
    monitor: SeriesPartials | None = None

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ctx.metrics
        settings = ctx.settings
        self.source = Topic.of_stream(self.stream)
        self.source_topic = topic_names(settings)[self.source]
        self.event_clock = Watermark(settings.late_grace_seconds, settings.idle_partition_seconds)
        # Per partition: an event's duplicates come on its own partition (same key), and each
        # partition's horizon follows its own clock, so a partition ahead cannot age out the
        # ids of one behind.
        self._dedup: dict[int | None, Deduplicator] = {}
        name = self.stream.value
        # Bound label children once: .labels() per event is the hottest cost in the loop.
        tally = self.metrics.tallies.tally
        self._messages = tally(self.metrics.messages.labels(name))
        self._late = tally(self.metrics.events_late.labels(name))
        self._duplicates = tally(self.metrics.events_duplicate.labels(name))
        self._deadletters = self.metrics.deadletters.labels(name)
        # Read at scrape time: no per-message cost.
        self.metrics.event_time.labels(name).set_function(lambda: max(self.event_clock.now, 0.0))
        self._delay = self.metrics.tallies.histogram(self.metrics.event_delay.labels(name))
        self._by_type: dict[str, Any] = {}
        self._deadletter_limit = SizeBudget.of(settings).output_record_bytes
        self._parse = message_parser(
            self.stream, max_message_bytes=settings.max_message_bytes, max_batch_events=settings.max_batch_events
        )
        self.signals_progress = SignalsProgress(self.stream, settings, ctx.progress_wall)
        progress = self.signals_progress
        self.metrics.signals_progress_pending.labels(name).set_function(lambda: progress.pending)

    def partition_clocks(self, partition: int | None) -> list[tuple[int | None, float]]:
        """The clock of ``partition`` and of every partition the watermark leaves out as idle.

        An idle partition (no backlog, silent ``CXPULSE_IDLE_PARTITION_SECONDS``) reports at the
        stream's watermark, as if its clock were there, so that it cannot stall the owners
        downstream (series owners, the customers agent); its later events below that are late
        for them. A worker whose only partition of a stream is idle reports nothing for it.
        """
        clock = self.event_clock
        own = (partition, clock.partition_now(partition))
        if not clock.idle:
            return [own]
        return [own, *((idle, clock.now) for idle in clock.idle)]

    def handle(
        self, raw: bytes | None, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        """Process one Kafka message value; never raises: what fails becomes a dead letter."""
        out = Outputs()
        self._messages.inc()
        raw = raw if raw is not None else b""  # a tombstone is an empty, so invalid, document
        settings = self.ctx.settings
        try:
            result = self._parse(raw)
        except Exception as exc:  # a bug of ours in parsing must not stop the stream
            self.reject(out, processing_error(exc, "parsing the message", raw), raw, key, partition, offset, exc)
            return out
        for rejection in result.rejections:
            self.reject(out, rejection, raw, key, partition, offset)
        monitor = self.monitor
        if monitor is not None:
            monitor.begin(partition, offset)
            out.records.extend(monitor.take_pending())
        newest = None
        dedup = self._dedup.get(partition)
        if dedup is None:
            dedup = self._dedup[partition] = Deduplicator(settings.dedup_horizon_seconds, settings.dedup_max_ids)
        for position, event in enumerate(result.events):
            if dedup.is_duplicate(event.event_id, event.ts):
                self._duplicates.inc()
                continue
            late = self.event_clock.observe(event.ts, partition)
            before = out.mark()
            try:
                self.on_event(event, late, out)
            except Exception as exc:  # a bug of ours on one event: dead-letter it, go on with the rest
                out.rollback(before)
                index = result.event_indices[position]
                failed = processing_error(exc, f"processing {event.type} event", element_payload(raw, index), index)
                self.reject(out, failed, raw, key, partition, offset, exc)
                continue
            if late:
                self._late.inc()
            counter = self._by_type.get(event.type)
            if counter is None:
                counter = self._by_type[event.type] = self.metrics.tallies.tally(
                    self.metrics.events.labels(self.stream.value, event.type)
                )
            counter.inc()
            newest = event.ts if newest is None or event.ts > newest else newest
        if newest is not None:
            self._delay.observe(max(0.0, self.ctx.clock() - newest))
            now = self.event_clock.advance()
            if now != -math.inf:  # some owned partition has not delivered yet: nothing closes
                before = out.mark()
                try:
                    self.on_clock(now, out)
                except Exception as exc:  # the message moved the clock into a bug of ours: keep it for replay
                    out.rollback(before)
                    failed = processing_error(exc, "advancing the event-time clock", raw)
                    self.reject(out, failed, raw, key, partition, offset, exc)
            clocks = self.partition_clocks(partition)
            if monitor is not None:
                # Series steps close on the partition's own clock (streams/series.py).
                for p, now in clocks:
                    monitor.advance(p, now, out)
        if out.signals:
            out.flush_signals()
        if newest is not None:
            # After the signals they cover: the customers agent releases signals on these.
            progress = self.signals_progress
            for p, now in clocks:
                progress.advance(p, now, out)
        return out

    def forget_partition(self, partition: int) -> None:
        """A partition was revoked: it leaves the watermark, and its dedup memory goes."""
        self.event_clock.forget(partition)
        self._dedup.pop(partition, None)
        self.signals_progress.forget(partition)

    def reject(
        self,
        out: Outputs,
        rejection: Rejection,
        raw: bytes,
        key: bytes | None,
        partition: int | None,
        offset: int | None,
        exc: BaseException | None = None,
    ) -> None:
        """Dead-letter ``rejection`` (truncated if it must be, to fit the producer) and count it."""
        source = Source(self.stream.value, self.source_topic, key, raw, partition, offset)
        letter = dead_letter(rejection, source, self._deadletter_limit, exc)
        self.metrics.events_rejected.labels(self.stream.value, letter.reason).inc()
        self._deadletters.inc()
        out.add_dead_letter(letter)

    def on_event(self, event: Event, late: bool, out: Outputs) -> None:
        """Update metrics and detectors for one accepted, de-duplicated event."""
        raise NotImplementedError

    def on_clock(self, now: float, out: Outputs) -> None:
        """Called once per message after its events, with the stream's event-time clock."""

    def recovered(self) -> None:
        """The worker's tables were recovered after a rebalance: re-index what is now ours."""
