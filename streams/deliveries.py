"""Deliveries: status volumes, on-time performance, and delay prediction per order."""

from __future__ import annotations

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


class DeliveriesHandler(StreamHandler):
    stream = Stream.DELIVERIES
    stores = (Store.ORDERS,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Order state lives in the "orders" store (a changelogged Faust table in the worker),
        # so a restarted worker resumes every order where it was. The transit model keeps
        # lanes for as many carriers and regions as the metric labels do.
        settings = ctx.settings
        limit = settings.max_label_values
        self.delays = DeliveryDelayMonitor(
            ctx.store(Store.ORDERS),
            TransitModel(regression=settings.transit_regression, max_carriers=limit, max_regions=limit),
            margin_s=settings.delay_margin_seconds,
            min_confidence=settings.delay_min_confidence,
        )
        self.on_time: dict[tuple[str, str], RollingWindow] = {}
        self.metrics.orders_open.set_function(lambda: len(self.delays.store))
        self.monitor: SeriesPartials = SeriesPartials(ctx, self.stream)
        m = self.metrics
        self._status = Children(m.delivery_status)
        self._failed_attempts = Children(m.failed_attempts)
        self._exceptions = Children(m.delivery_exceptions)
        self._predicted = Children(m.delivery_delays_predicted)
        self._outcomes = Children(m.deliveries)

    def on_event(self, event: DeliveryEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        labels = self.ctx.label("carrier", event.carrier), self.ctx.label("region", event.region)
        status = event.type
        self._status.get_child(status, *labels).inc()
        if status == "failed_attempt":
            self._failed_attempts.get_child(*labels).inc()
        elif status == "exception":
            self._exceptions.get_child(*labels).inc()
        for finding in self.delays.process(event):
            same_lane = finding.carrier == event.carrier and finding.region == event.region
            self._on_finding(finding, late, out, labels if same_lane else None)

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
        window.add(ts, value)
        labels = {"carrier": carrier, "region": region}
        self.monitor.observe(f'on_time{{carrier="{carrier}",region="{region}"}}', labels, ts, value, "mean")

    def on_clock(self, now: float, out: Outputs) -> None:
        # Silent orders become due as event time passes: the monitor's index makes this free
        # when nothing is due. Only up to the time every partition has reached: an order of a
        # partition handed over by a rebalance, still behind, must not look silent.
        for finding in self.delays.advance(self.event_clock.safe):
            self._on_finding(finding, False, out)

    def recovered(self) -> None:
        """After a rebalance restored the orders table: re-index what is now ours."""
        self.delays.rebuild_index()
