"""Deliveries: status volumes, on-time performance by carrier and region."""

from __future__ import annotations

from collections import OrderedDict

from schemas import DeliveryEvent, Stream
from streams.event_time import RollingWindow, mean_reader
from streams.pipeline import Context, Outputs, StreamHandler

MAX_TRACKED_ORDERS = 1_000_000


class DeliveriesHandler(StreamHandler):
    stream = Stream.DELIVERIES
    source_topic_setting = "topic_deliveries"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # order_id -> promised_by, remembered from created/shipped (the schema's rule).
        self.promises: OrderedDict[str, float] = OrderedDict()
        self.on_time: dict[tuple[str, str], RollingWindow] = {}
        self.metrics.orders_open.set_function(lambda: len(self.promises))
        self.monitor = ctx.series_monitor("/cxpulse/deliveries", step_s=ctx.settings.delivery_alert_step_seconds)

    def on_event(self, event: DeliveryEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        m = self.metrics
        carrier = self.ctx.label("carrier", event.carrier)
        region = self.ctx.label("region", event.region)
        status = event.type
        m.delivery_status.labels(status, carrier, region).inc()
        if event.promised_by is not None:
            self.promises[event.order_id] = event.promised_by
            self.promises.move_to_end(event.order_id)
            while len(self.promises) > MAX_TRACKED_ORDERS:
                self.promises.popitem(last=False)
        if status == "delivered":
            promised = self.promises.pop(event.order_id, None)
            if promised is not None:
                on_time = event.ts <= promised
                m.deliveries.labels(carrier, region, "on_time" if on_time else "late").inc()
                if not late:
                    window = self.on_time.get((carrier, region))
                    if window is None:
                        window = self.on_time[carrier, region] = RollingWindow(
                            self.ctx.settings.delivery_window_seconds, step_s=600.0
                        )
                        m.on_time_rolling.labels(carrier, region).set_function(mean_reader(window, self.event_clock))
                    window.add(event.ts, 1.0 if on_time else 0.0)
                    self.monitor.observe(
                        f'on_time{{carrier="{carrier}",region="{region}"}}',
                        {"carrier": carrier, "region": region},
                        event.ts,
                        1.0 if on_time else 0.0,
                        "mean",
                    )
        elif status == "failed_attempt":
            m.failed_attempts.labels(carrier, region).inc()
        elif status == "exception":
            m.delivery_exceptions.labels(carrier, region).inc()

    def on_clock(self, now: float, out: Outputs) -> None:
        self.monitor.advance(now, out)
