"""Deliveries: status volumes, on-time performance, and delay prediction per order.

**One transit model per deliveries partition.** Each input partition this worker owns has its
own :class:`~detectors.delivery_delay.DeliveryDelayMonitor` with its own
:class:`~detectors.transit_model.TransitModel`, which learns from that partition's messages in
offset order only and judges that partition's orders only; its due checks run on that
partition's own event time (before it processes anything newer), or on the stream's safe
watermark when the partition is idle. Every delay prediction is therefore a function of its
partition's own history: the same on one worker or five, live or in a catch-up that consumes the
partitions in any interleaving.

The trade-off, chosen for now: each model sees 1/P of the deliveries (P = partitions), so it
warms up P times slower and keeps P copies of the lane statistics (lanes x partitions in
memory). The issue asks for one model per lane fleet-wide, fed by every worker; that needs each
prediction to wait for a fleet-wide model version (the lane owner's learning as of the order's
due time) and is not built yet (see docs/fleet.md, which has the measured quality cost).

**Checkpointed.** The models are a :class:`streams.checkpoints.PartitionState`: before every
offset commit each changed partition's model is pickled with the offset of the last message it
learnt; after an assignment the new owner restores it, and messages at or below that offset,
which Kafka hands out again from the committed offset, are judged as usual but not learnt twice.
"""

from __future__ import annotations

import logging
import math
import pickle
import zlib
from collections.abc import Mapping
from typing import Any

from detectors.delivery_delay import (
    DelayPredicted,
    Delivered,
    DeliveryDelayMonitor,
    DeliveryFailed,
    Finding,
    PromiseMissed,
)
from detectors.transit_model import TransitModel
from schemas import DeliveryEvent, Stream
from streams.event_time import RollingWindow, mean_reader
from streams.metrics import Children
from streams.pipeline import Context, Outputs, StreamHandler
from streams.series import SeriesPartials
from streams.topics import Store

log = logging.getLogger(__name__)

#: Name of the transit models' checkpoints (``checkpoints`` table keys ``transit/<partition>``).
TRANSIT_CHECKPOINT = "transit"
#: Bumped when the pickled layout changes: an older snapshot is then ignored (a fresh model).
CHECKPOINT_VERSION = 1
#: Delivered orders the fleet learns before the transit regression is used, and the fewest one
#: partition's model waits for.
FLEET_REGRESSION_WARMUP = 200
MIN_REGRESSION_WARMUP = 25
#: Snapshot = this prefix + zlib(pickle((version, offset, model))). Compressed because a model's
#: samples are most of it: about 190 KB raw, 134 KB compressed after six simulated days.
SNAPSHOT_MAGIC = b"cxpulse-transit\x00"
#: Largest snapshot written: the checkpoints changelog is created by Faust with the broker's default
#: ``max.message.bytes`` (1,048,588), and a record it refuses would fail the producer. A model
#: with many lanes full of samples can exceed it (31 x 31 lanes full: 5.7 MB compressed): it is then not
#: saved (logged), and the partition resumes from its previous snapshot or relearns.
MAX_SNAPSHOT_BYTES = 1_000_000


class DeliveriesHandler(StreamHandler):
    stream = Stream.DELIVERIES
    stores = (Store.ORDERS,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Order state lives in the "orders" store (a changelogged Faust table in the worker),
        # so a restarted worker resumes every order where it was.
        settings = ctx.settings
        self.orders = ctx.store(Store.ORDERS)
        #: input partition -> the monitor (and transit model) of that partition's orders
        self.monitors: dict[int | None, DeliveryDelayMonitor] = {}
        self._clock_of: dict[int | None, float] = {}  # newest ts seen on each partition
        self._offset_of: dict[int | None, int] = {}  # last offset each partition's model holds
        self._skip_through: dict[int | None, int] = {}  # restored: re-read up to here, not learnt
        self._dirty: set[int | None] = set()
        self._partition: int | None = None  # of the message being handled
        self._checks_due = False  # the message's first event runs its partition's due checks first
        self.on_time: dict[tuple[str, str], RollingWindow] = {}
        self.metrics.orders_open.set_function(lambda: len(self.orders))
        self.monitor: SeriesPartials = SeriesPartials(ctx, self.stream)
        m = self.metrics
        self._status = Children(m.delivery_status, m.tallies)
        self._failed_attempts = Children(m.failed_attempts, m.tallies)
        self._exceptions = Children(m.delivery_exceptions, m.tallies)
        self._predicted = Children(m.delivery_delays_predicted, m.tallies)
        self._outcomes = Children(m.deliveries, m.tallies)
        self._limit = settings.max_label_values
        ctx.checkpoints.register(TRANSIT_CHECKPOINT, self.source_topic, self)

    # ------------------------------------------------------------------ per-partition monitors
    def new_model(self) -> TransitModel:
        """A fresh transit model: lanes for as many carriers and regions as the metric labels."""
        limit, settings = self._limit, self.ctx.settings
        # The regression is used once it has learnt the fleet's first 200 delivered orders; a
        # partition's model sees 1/P of them. Waiting for 200 of its own cost false notifications
        # (5.2% at 2 partitions against 4.4% with one model); 200/P: 4.8% (docs/fleet.md).
        warmup = max(MIN_REGRESSION_WARMUP, math.ceil(FLEET_REGRESSION_WARMUP / max(1, settings.partitions)))
        return TransitModel(
            regression=settings.transit_regression, regression_warmup=warmup, max_carriers=limit, max_regions=limit
        )

    def delays(self, partition: int | None) -> DeliveryDelayMonitor:
        """The monitor of ``partition``'s orders (created fresh on first use)."""
        monitor = self.monitors.get(partition)
        if monitor is None:
            settings = self.ctx.settings
            monitor = self.monitors[partition] = DeliveryDelayMonitor(
                self.orders,
                self.new_model(),
                margin_s=settings.delay_margin_seconds,
                min_confidence=settings.delay_min_confidence,
                partition=partition,
                partition_of=self._partition_of,
            )
        return monitor

    def _partition_of(self, order_id: str, state: Mapping[str, Any]) -> int | None:
        partition = state.get("partition")
        if partition is None:  # an order written before states recorded their partition
            routes = getattr(self.orders, "key_partitions", None)
            partition = routes.get(order_id) if routes is not None else None
        return partition

    # ------------------------------------------------------------------ messages and events
    def handle(
        self, raw: bytes | None, key: bytes | None = None, partition: int | None = None, offset: int | None = None
    ) -> Outputs:
        monitor = self.delays(partition)
        skip = self._skip_through.get(partition)
        # Re-read after a restore: the restored model already holds what these messages taught.
        monitor.learning = skip is None or offset is None or offset > skip
        self._partition, self._checks_due = partition, True
        try:
            return super().handle(raw, key, partition, offset)
        finally:
            if monitor.learning:
                self._dirty.add(partition)
            monitor.learning = True
            if offset is not None and offset > self._offset_of.get(partition, -1):
                self._offset_of[partition] = offset

    def on_event(self, event: DeliveryEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        partition = self._partition
        delays = self.delays(partition)
        if self._checks_due:
            # The partition's checks that fell due up to its previous message, at this point of
            # its own sequence whether or not the stream's watermark moved since (a catch-up).
            self._checks_due = False
            for finding in delays.advance(self._clock_of.get(partition, -math.inf)):
                self._on_finding(finding, False, out)
        labels = self.ctx.label("carrier", event.carrier), self.ctx.label("region", event.region)
        status = event.type
        self._status.get_child(status, *labels).inc()
        if status == "failed_attempt":
            self._failed_attempts.get_child(*labels).inc()
        elif status == "exception":
            self._exceptions.get_child(*labels).inc()
        for finding in delays.process(event):
            same_lane = finding.carrier == event.carrier and finding.region == event.region
            self._on_finding(finding, late, out, labels if same_lane else None)
        if event.ts > self._clock_of.get(partition, -math.inf):
            self._clock_of[partition] = event.ts

    def _on_finding(self, finding: Finding, late: bool, out: Outputs, labels: tuple[str, str] | None = None) -> None:
        m = self.metrics
        if labels is None:
            labels = self.ctx.label("carrier", finding.carrier), self.ctx.label("region", finding.region)
        carrier, region = labels
        if isinstance(finding, Delivered):
            if finding.on_time is not None:
                self._delivered(finding.ts, finding.on_time, carrier, region, late)
        elif isinstance(finding, DelayPredicted):
            self._predicted.get_child(carrier, region).inc()
            out.signal(finding.to_signal())
        elif isinstance(finding, DeliveryFailed):
            out.signal(finding.to_signal())
        elif isinstance(finding, PromiseMissed):
            m.delivery_delays_missed.inc()

    def _delivered(self, ts: float, on_time: bool, carrier: str, region: str, late: bool) -> None:
        self._outcomes.get_child(carrier, region, "on_time" if on_time else "late").inc()
        if late:
            return
        window = self.on_time.get((carrier, region))
        if window is None:
            window = self.on_time[carrier, region] = RollingWindow(
                self.ctx.settings.delivery_window_seconds, step_s=600.0
            )
            self.metrics.on_time_rolling.labels(carrier, region).set_function(mean_reader(window, self.event_clock))
        value = 1.0 if on_time else 0.0
        window.add(ts, value, now=self.event_clock.now)
        labels = {"carrier": carrier, "region": region}
        self.monitor.observe(f'on_time{{carrier="{carrier}",region="{region}"}}', labels, ts, value, "mean")

    def on_clock(self, now: float, out: Outputs) -> None:
        # Silent orders become due as event time passes: the monitors' indexes make this free
        # when nothing is due. Each partition's orders on that partition's own clock (its state
        # has not changed since its last message, so this is the same point of its sequence), or
        # on the safe watermark when it is idle: never on another partition's time. An order of a
        # partition handed over by a rebalance, still behind, must not look silent.
        safe = self.event_clock.safe
        for partition, delays in self.monitors.items():
            for finding in delays.advance(max(self._clock_of.get(partition, -math.inf), safe)):
                self._on_finding(finding, False, out)

    def recovered(self) -> None:
        """After a rebalance restored the orders table: re-index what is now ours, per partition."""
        partitions = {self._partition_of(order_id, state) for order_id, state in self.orders.items()}
        for partition in partitions | set(self.monitors):
            self.delays(partition).rebuild_index()

    # ------------------------------------------------------------------ checkpoints (PartitionState)
    def snapshot(self, partition: int) -> bytes | None:
        """The partition's model and the offset of the last message it learnt (None: unchanged)."""
        if partition not in self._dirty:
            return None
        self._dirty.discard(partition)
        monitor = self.monitors.get(partition)
        if monitor is None:
            return None
        state = (CHECKPOINT_VERSION, self._offset_of.get(partition), monitor.model)
        data = SNAPSHOT_MAGIC + zlib.compress(pickle.dumps(state, protocol=5), 1)
        if len(data) > MAX_SNAPSHOT_BYTES:
            log.warning("transit model of partition %s is %d bytes compressed, over the %d a checkpoint "
                        "holds: not saved", partition, len(data), MAX_SNAPSHOT_BYTES)
            return None
        return data

    def restore(self, partition: int, data: bytes | None) -> None:
        """Continue from a snapshot (None: a fresh model); its offset and below are not learnt again."""
        self._skip_through.pop(partition, None)
        self._offset_of.pop(partition, None)
        self._dirty.discard(partition)
        model = None
        if data is not None:
            try:
                if not data.startswith(SNAPSHOT_MAGIC):
                    raise ValueError("not a transit snapshot")
                # our own changelog topic: trusted
                version, offset, model = pickle.loads(zlib.decompress(data[len(SNAPSHOT_MAGIC) :]))
            except Exception:  # a snapshot we cannot read must not stop the worker: relearn
                log.exception("transit checkpoint of partition %s unreadable; starting fresh", partition)
                version, offset, model = None, None, None
            if version != CHECKPOINT_VERSION or not isinstance(model, TransitModel):
                model = None
            elif offset is not None:
                self._skip_through[partition] = self._offset_of[partition] = offset
            if model is not None:
                log.info("transit model of partition %s restored: %d bytes, learnt through offset %s",
                         partition, len(data), offset)
        self.delays(partition).model = model if model is not None else self.new_model()

    def forget(self, partition: int) -> None:
        """The partition went to another worker: its model goes (its orders left with the table)."""
        for state in (self.monitors, self._clock_of, self._offset_of, self._skip_through):
            state.pop(partition, None)
        self._dirty.discard(partition)
