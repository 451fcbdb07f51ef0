"""Fleet-wide series: partials per input partition upstream, one owner per series on ``cx.series``.

A watched series (complaints per reason, rage clicks per page, the on-time ratio per lane...) is
fed by every input partition, and the partitions are spread over the workers. So that one
incident gives one alert whatever the number of workers, and a partition consumed ahead cannot
close steps the others have not reached, detection is split in two:

**Partials, upstream** (:class:`SeriesPartials`, one per input handler). Per input partition
and per event-time step (``CXPULSE_ALERT_STEP_SECONDS``; ``CXPULSE_DELIVERY_ALERT_STEP_SECONDS``
for the deliveries stream's on-time series) the handler sums the values of every series it
feeds (``sum`` and ``count``). When *that partition's* clock (the newest ``ts`` seen on it,
:meth:`streams.event_time.Watermark.partition_now`) passes a step's end plus the grace period
(:data:`streams.alerts.ALERT_GRACE_S`), the step's partials go to ``cx.series``, one record per
(series, step) keyed by the series name (so one partition owns a series), then a *progress*
record ``(stream, partition, through step)`` goes to every partition of ``cx.series``. An
observation in a step its partition has already emitted is late for the series
(:attr:`SeriesPartials.late_events`) and left out.

*Idle partitions.* A partition with no events would hold every owner back forever. When the
handler's watermark leaves a partition out as idle (no backlog and silent for
``CXPULSE_IDLE_PARTITION_SECONDS``, :attr:`streams.event_time.Watermark.idle`), the handler
reports progress for it at the watermark's time, as if its clock were there: later events of
that partition in steps so reported are late. A worker whose only partition of a stream is
idle has no other partition to take the time from and reports nothing for it until it delivers.

**Owners** (:class:`SeriesOwnerHandler`, the agent on ``cx.series``). Per owned partition the
owner keeps the partials by ``(stream, input partition, step, series)`` (overwritten: a resend is
idempotent) and the progress of every input partition of every stream. **A step of a stream is
complete when every input partition of that stream (``CXPULSE_PARTITIONS`` of them) has reported
progress through it.** Complete steps go, in step order and summed over partitions, to the
stream's :class:`detectors.series_watch.SeriesWatcher`, whose detectors and episode trackers
raise the alerts (``cx.alerts``, source ``<source id>/<stream>``) and set the
``cxpulse_anomaly_score`` and alert gauges. A partial for a step already closed is counted in
``cxpulse_series_late_partials_total{stream}`` and dropped. The watcher starts on the earliest
first step any input partition reported, so a series first seen later starts warm on zeros.

**Checkpoints** (:mod:`streams.checkpoints`). Both halves are :class:`PartitionState`:

* upstream, per input partition (name ``series-partials/<stream>``): open steps, the last
  emitted step and the partials of the last emission, the first step, the offset of the last
  message applied. Format: orjson. After a restore, messages at or below that offset add
  nothing (per-key rules still run), and the last emission (partials and progress) is sent
  again, flagged as a resend, since it may not have reached Kafka before the crash.
* owners, per ``cx.series`` partition (name ``series-owner``): partials, progress, closed steps
  and each stream's learned series (detectors with their River models, baselines, histories,
  episode trackers). Format: ``pickle`` of a dict ``{"version": 1, ...}`` whose ``watchers`` are
  zlib-compressed pickles of :meth:`detectors.series_watch.SeriesWatcher.state` per stream
  (2-5 kB a series), re-pickled only when a step of that stream closed. Only trusted bytes (our
  own changelog) are unpickled. Records at or below the restored offset are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors.series_watch import SeriesWatcher
from schemas import Rejection, Stream
from streams.alerts import ALERT_GRACE_S, AlertPublisher, detector_of, series_watcher, step_seconds
from streams.deadletters import Source, dead_letter
from streams.envelopes import Component, Envelopes
from streams.event_time import Watermark
from streams.pipeline import PROGRESS, Context, Outputs, Record
from streams.size_budget import SizeBudget
from streams.topics import Store, Topic, topic_names

log = logging.getLogger(__name__)

PARTIAL = "partial"
#: Steps before the last emitted one whose partials are kept for a resend after a restore.
RESEND_STEPS = 2
OWNER_CHECKPOINT = "series-owner"
_SNAPSHOT_VERSION = 1


def _partials_checkpoint(stream: Stream) -> str:
    return f"series-partials/{stream.value}"


# -- upstream ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Upstream:
    """The series partials of one input partition."""

    #: step -> series -> [sum, count] of the steps not emitted yet
    buckets: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    through: int | None = None  # the last step emitted
    first: int | None = None  # the first step with an observation
    offset: int | None = None  # the last message applied
    #: the partials of the last emitted steps, sent again after a restore
    sent: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    dirty: bool = False


class SeriesPartials:
    """One input stream's series partials per input partition (see the module docstring).

    The handler calls :meth:`begin` per message, :meth:`observe` per value and :meth:`advance`
    after the message's events. It is the :class:`streams.checkpoints.PartitionState` of the
    stream's input topic.
    """

    def __init__(self, ctx: Context, stream: Stream) -> None:
        settings = ctx.settings
        self.stream = stream
        self.step_s = step_seconds(settings, stream)
        self.grace_s = ALERT_GRACE_S
        self.partitions = settings.partitions  # of cx.series: progress goes to each
        self.meta: dict[str, tuple[dict[str, str], str]] = {}  # series -> labels, kind
        self.late_events = 0
        # Exported so a run can tell lost observations (e.g. a partition with a backlog taken
        # for idle and reported at the watermark) from a detector's own decision.
        self._late_metric = ctx.metrics.series_late_events.labels(stream.value)
        self._states: dict[int, _Upstream] = {}
        self._current: _Upstream | None = None
        self._pending: list[Record] = []
        ctx.checkpoints.register(_partials_checkpoint(stream), topic_names(settings)[Topic.of_stream(stream)], self)

    def _state(self, partition: int) -> _Upstream:
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = _Upstream()
        return state

    def begin(self, partition: int | None, offset: int | None) -> None:
        """A message of ``partition`` at ``offset``: its values go to that partition's partials,
        unless the partition's state already holds them (re-processed after a restore)."""
        state = self._state(partition or 0)
        if offset is not None and state.offset is not None and offset <= state.offset:
            self._current = None
            return
        if offset is not None:
            state.offset = offset
            state.dirty = True
        self._current = state

    def observe(self, series: str, labels: dict[str, str], ts: float, value: float = 1.0, kind: str = "count") -> None:
        """Add ``value`` at event time ``ts`` to ``series`` (``kind`` "count" sums, "mean" averages)."""
        state = self._current
        if state is None:
            return
        k = int(ts // self.step_s)
        if state.through is not None and k <= state.through:
            self.late_events += 1
            self._late_metric.inc()
            return
        if series not in self.meta:
            self.meta[series] = (dict(labels), kind)
        if state.first is None:
            state.first = k
        steps = state.buckets.get(k)
        if steps is None:
            steps = state.buckets[k] = {}
        bucket = steps.get(series)
        if bucket is None:
            steps[series] = [value, 1.0]
        else:
            bucket[0] += value
            bucket[1] += 1.0
        state.dirty = True

    def advance(self, partition: int | None, now: float, out: Outputs) -> None:
        """``partition``'s clock is at ``now``: emit the steps it closed, then its progress."""
        if math.isinf(now):
            return
        through = int((now - self.grace_s) // self.step_s) - 1
        p = partition or 0
        state = self._state(p)
        if state.through is not None and through <= state.through:
            return
        emitted = {k: state.buckets.pop(k) for k in sorted(k for k in state.buckets if k <= through)}
        for k, steps in emitted.items():
            for series, (total, count) in steps.items():
                out.add(Topic.SERIES, series, self._partial(p, k, series, total, count))
        state.through = through
        self._progress(p, state, out)
        if emitted:
            horizon = through - RESEND_STEPS
            kept = {k: v for k, v in state.sent.items() if k > horizon}
            kept.update(emitted)
            state.sent = kept
        state.dirty = True

    def take_pending(self) -> Sequence[Record]:
        """Records to send again after a restore (the last emission of each restored partition)."""
        if not self._pending:  # nearly always: nothing made per message
            return ()
        pending, self._pending = self._pending, []
        return pending

    def _partial(
        self, partition: int, step: int, series: str, total: float, count: float, resend: bool = False
    ) -> bytes:
        labels, kind = self.meta[series]
        record: dict[str, Any] = {
            "type": PARTIAL,
            "stream": self.stream.value,
            "partition": partition,
            "step": step,
            "step_s": self.step_s,
            "series": series,
            "labels": labels,
            "kind": kind,
            "sum": total,
            "count": count,
        }
        if resend:
            record["resend"] = True
        return orjson.dumps(record)

    def _progress(self, partition: int, state: _Upstream, out: Outputs) -> None:
        value = orjson.dumps(
            {
                "type": PROGRESS,
                "stream": self.stream.value,
                "partition": partition,
                "through": state.through,
                "first": state.first,
                "step_s": self.step_s,
            }
        )
        out.broadcast(Topic.SERIES, f"{self.stream.value}/{partition}", value, self.partitions)

    # -- PartitionState ----------------------------------------------------------------------

    def snapshot(self, partition: int) -> bytes | None:
        state = self._states.get(partition)
        if state is None or not state.dirty:
            return None
        state.dirty = False
        series = {s for steps in (*state.buckets.values(), *state.sent.values()) for s in steps}
        return orjson.dumps(
            {
                "through": state.through,
                "first": state.first,
                "offset": state.offset,
                "buckets": [[k, s, v[0], v[1]] for k, steps in state.buckets.items() for s, v in steps.items()],
                "sent": [[k, s, v[0], v[1]] for k, steps in state.sent.items() for s, v in steps.items()],
                "meta": {s: self.meta[s] for s in series},
            }
        )

    def restore(self, partition: int, data: bytes | None) -> None:
        if data is None:
            self._states.pop(partition, None)
            return
        raw = orjson.loads(data)
        state = _Upstream(through=raw["through"], first=raw["first"], offset=raw["offset"])
        for series, (labels, kind) in raw["meta"].items():
            self.meta.setdefault(series, (labels, kind))
        for target, rows in ((state.buckets, raw["buckets"]), (state.sent, raw["sent"])):
            for k, series, total, count in rows:
                target.setdefault(k, {})[series] = [total, count]
        self._states[partition] = state
        if state.through is None:
            return
        # What was emitted last may not have reached Kafka before the crash: send it again.
        out = Outputs()
        for k in sorted(state.sent):
            for series, (total, count) in state.sent[k].items():
                out.add(Topic.SERIES, series, self._partial(partition, k, series, total, count, resend=True))
        self._progress(partition, state, out)
        self._pending.extend(out.records)

    def forget(self, partition: int) -> None:
        self._states.pop(partition, None)


# -- owners --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Owned:
    """What one partition of ``cx.series`` owns."""

    offset: int | None = None
    #: stream -> step -> series -> input partition -> (sum, count)
    partials: dict[str, dict[int, dict[str, dict[int, tuple[float, float]]]]] = field(default_factory=dict)
    meta: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)  # series -> labels, kind
    progress: dict[str, dict[int, int]] = field(default_factory=dict)  # stream -> partition -> through
    first: dict[str, dict[int, int]] = field(default_factory=dict)  # stream -> partition -> first step
    closed: dict[str, int] = field(default_factory=dict)  # stream -> last closed step
    watchers: dict[str, SeriesWatcher] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # stream -> pickled watcher state
    stale: set[str] = field(default_factory=set)  # streams whose watcher changed since its blob
    dirty: bool = False


class SeriesOwnerHandler:
    """The agent on ``cx.series``: sums partials, closes complete steps, runs the series' detectors.

    See the module docstring for the completeness rule. It is the
    :class:`streams.checkpoints.PartitionState` of ``cx.series``.
    """

    source = Topic.SERIES
    stores: tuple[Store, ...] = ()

    def __init__(self, ctx: Context) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.metrics = ctx.metrics
        self.partitions = settings.partitions  # input partitions of every stream
        self.source_topic = topic_names(settings)[self.source]
        # No event time of its own: kept for the worker's partition bookkeeping (streams/rebalance.py).
        self.event_clock = Watermark(settings.late_grace_seconds, settings.idle_partition_seconds)
        self.publisher = AlertPublisher(ctx.metrics, Envelopes(settings.source_id))
        self.components = {stream: Component(stream.value) for stream in Stream}
        self.steps = {stream.value: step_seconds(settings, stream) for stream in Stream}
        self._late = {stream.value: self.metrics.series_late_partials.labels(stream.value) for stream in Stream}
        self._owned: dict[int, _Owned] = {}
        self._deadletter_limit = SizeBudget.of(settings).output_record_bytes
        ctx.checkpoints.register(OWNER_CHECKPOINT, self.source_topic, self)

    def handle(
        self, raw: bytes | None, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        out = Outputs()
        owned = self._part(partition or 0)
        if offset is not None and owned.offset is not None and offset <= owned.offset:
            return out  # re-processed after a restore: already applied
        try:
            record = orjson.loads(raw or b"")
            stream = Stream(record["stream"])
            if float(record["step_s"]) != self.steps[stream.value]:
                raise ValueError(f"step {record['step_s']} s, this worker steps {stream.value} by "
                                 f"{self.steps[stream.value]} s: the fleet's settings differ")  # fmt: skip
            if record["type"] == PARTIAL:
                self._partial(owned, stream, record)
            elif record["type"] == PROGRESS:
                self._progress(owned, stream, record, out)
            else:
                raise ValueError(f"unknown record type {record['type']!r}")
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            self._reject(raw or b"", key, partition, offset, exc, out)
        if offset is not None:
            owned.offset = offset
            owned.dirty = True
        return out

    def _partial(self, owned: _Owned, stream: Stream, record: Mapping[str, Any]) -> None:
        name = stream.value
        step = int(record["step"])
        closed = owned.closed.get(name)
        if closed is not None and step <= closed:
            if not record.get("resend"):
                self._late[name].inc()
            return
        series = record["series"]
        if series not in owned.meta:
            owned.meta[series] = (dict(record["labels"]), str(record["kind"]))
        by_partition = owned.partials.setdefault(name, {}).setdefault(step, {}).setdefault(series, {})
        by_partition[int(record["partition"])] = (float(record["sum"]), float(record["count"]))
        owned.dirty = True

    def _progress(self, owned: _Owned, stream: Stream, record: Mapping[str, Any], out: Outputs) -> None:
        name = stream.value
        partition = int(record["partition"])
        through = int(record["through"])
        progress = owned.progress.setdefault(name, {})
        if through > progress.get(partition, through - 1):
            progress[partition] = through
            owned.dirty = True
        if record["first"] is not None:
            firsts = owned.first.setdefault(name, {})
            firsts[partition] = min(int(record["first"]), firsts.get(partition, int(record["first"])))
        if len(progress) < self.partitions:
            return
        complete = min(progress.get(p, -1 << 62) for p in range(self.partitions))
        closed = owned.closed.get(name)
        if closed is not None and complete <= closed:
            return
        self._close(owned, stream, complete, out)

    def _close(self, owned: _Owned, stream: Stream, complete: int, out: Outputs) -> None:
        """Feed every step up to ``complete`` (every input partition passed it) to the watcher."""
        name = stream.value
        watcher = self._watcher(owned, name)
        starts = [first for first in owned.first.get(name, {}).values() if first <= complete]
        if starts:
            watcher.watch_from(min(starts))
        steps = owned.partials.get(name, {})
        for k in sorted(k for k in steps if k <= complete):
            for series, by_partition in steps.pop(k).items():
                labels, kind = owned.meta[series]
                total = sum(v[0] for v in by_partition.values())
                count = sum(v[1] for v in by_partition.values())
                watcher.observe_step(series, labels, k, total, count, kind)  # type: ignore[arg-type]
        alerts = watcher.advance_steps(complete + 1)
        owned.closed[name] = complete
        owned.stale.add(name)
        owned.dirty = True
        self.publisher.scores(watcher.scores())
        self.publisher.alerts(alerts, self.components[stream], out)

    def _watcher(self, owned: _Owned, name: str) -> SeriesWatcher:
        watcher = owned.watchers.get(name)
        if watcher is None:
            watcher = owned.watchers[name] = series_watcher(self.settings, Stream(name))
        return watcher

    def _part(self, partition: int) -> _Owned:
        owned = self._owned.get(partition)
        if owned is None:
            owned = self._owned[partition] = _Owned()
        return owned

    def _reject(
        self, raw: bytes, key: bytes | None, partition: int | None, offset: int | None, exc: Exception, out: Outputs
    ) -> None:
        # Internal topic: a bad record is our bug or a foreign producer; dead-letter it like cx.signals.
        reason = "invalid_json" if isinstance(exc, orjson.JSONDecodeError) else "schema_violation"
        source = Source("series", self.source_topic, key, raw, partition, offset)
        letter = dead_letter(Rejection(reason, f"not a series record: {exc}", raw), source, self._deadletter_limit)
        self.metrics.events_rejected.labels("series", letter.reason).inc()
        self.metrics.deadletters.labels("series").inc()
        out.add_dead_letter(letter)

    def recovered(self) -> None:
        """Nothing indexes a table here: the owned state comes back through :meth:`restore`."""

    # -- PartitionState ----------------------------------------------------------------------

    def snapshot(self, partition: int) -> bytes | None:
        owned = self._owned.get(partition)
        if owned is None or not owned.dirty:
            return None
        for name in owned.stale:
            # River's models pickle to ~25-50 kB a series, mostly repeated floats: zlib level 1
            # takes that to 2-5 kB in about a millisecond, so a partition's record stays small.
            learned = pickle.dumps(owned.watchers[name].state(), protocol=pickle.HIGHEST_PROTOCOL)
            owned.blobs[name] = zlib.compress(learned, 1)
        owned.stale.clear()
        owned.dirty = False
        state = {
            "version": _SNAPSHOT_VERSION,
            "offset": owned.offset,
            "partials": owned.partials,
            "meta": owned.meta,
            "progress": owned.progress,
            "first": owned.first,
            "closed": owned.closed,
            "watchers": owned.blobs,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, partition: int, data: bytes | None) -> None:
        self.forget(partition)
        if data is None:
            return
        state = pickle.loads(data)  # our own changelog's bytes
        if state.get("version") != _SNAPSHOT_VERSION:
            log.warning("series owner checkpoint of partition %s has version %r: starting fresh", partition,
                        state.get("version"))  # fmt: skip
            return
        owned = _Owned(
            offset=state["offset"],
            partials=state["partials"],
            meta=state["meta"],
            progress=state["progress"],
            first=state["first"],
            closed=state["closed"],
            blobs=dict(state["watchers"]),
        )
        for name, blob in owned.blobs.items():
            watcher = self._watcher(owned, name)
            watcher.load_state(pickle.loads(zlib.decompress(blob)))
            self.publisher.scores(watcher.scores())
            for series in watcher.open_episodes():  # their resolution will decrement the gauge here
                self.metrics.alerts_active.labels(detector_of(series)).inc()
        self._owned[partition] = owned

    def forget(self, partition: int) -> None:
        owned = self._owned.pop(partition, None)
        if owned is None:
            return
        # Its series now score on another worker: a gauge would keep its last value forever here.
        for watcher in owned.watchers.values():
            for series in watcher.scores():
                with contextlib.suppress(KeyError):
                    self.metrics.anomaly_score.remove(detector_of(series), series)
            for series in watcher.open_episodes():  # they go on, and resolve, on the new owner
                self.metrics.alerts_active.labels(detector_of(series)).dec()
