"""Contacts: contact volumes, complaints, resolution, and the survey scores CSAT, NPS, CES."""

from __future__ import annotations

from collections import OrderedDict

from detectors.contact_rules import DetractorRule, RepeatContactRule
from detectors.customer_signal import CustomerSignal
from schemas import ContactEvent, Stream
from streams.alerts import series_monitor
from streams.envelopes import Component
from streams.event_time import RollingWindow, mean_reader
from streams.pipeline import Context, Outputs, StreamHandler
from streams.topics import Store

MAX_OPEN_CONTACTS = 500_000


def nps_category(score: int) -> str:
    """Promoter 9-10, passive 7-8, detractor 0-6 (the standard NPS bands)."""
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


class ContactsHandler(StreamHandler):
    stream = Stream.CONTACTS

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        window = ctx.settings.window_seconds
        self.csat = RollingWindow(window)
        self.ces = RollingWindow(window)
        self.nps = RollingWindow(window)  # value = +100 promoter, 0 passive, -100 detractor
        self.fcr = RollingWindow(window)  # value = 1 resolved on first contact, else 0
        self.monitor = series_monitor(ctx, Component.CONTACTS)
        settings = ctx.settings
        self.repeats = RepeatContactRule(
            settings.repeat_contact_threshold, settings.repeat_contact_window_seconds, store=ctx.store(Store.CONTACTS)
        )
        self.detractors = DetractorRule(
            settings.detractor_csat_max, settings.detractor_nps_max, settings.detractor_ces_min
        )
        m = self.metrics
        for rolling, gauge in (
            (self.csat, m.csat_rolling),
            (self.ces, m.ces_rolling),
            (self.nps, m.nps_rolling),
            (self.fcr, m.fcr_rolling),
        ):
            gauge.set_function(mean_reader(rolling, self.event_clock))
        # contact_id -> (opened ts, channel, reason): resolution time and detractor context.
        self.open_contacts: OrderedDict[str, tuple[float, str, str]] = OrderedDict()

    def on_event(self, event: ContactEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        if event.type == "contact_opened":
            self._opened(event, late)
            if event.complaint:
                detail = {"reason": self.ctx.label("reason", event.reason)}
                out.signal(CustomerSignal("complaint", event.customer_id, event.ts, event.contact_id or "", detail))
            repeat = self.repeats.process(event)
            if repeat is not None:
                out.signal(repeat.to_signal())
        elif event.type == "contact_resolved":
            self._resolved(event, late)
        else:
            self._survey(event, late)
        # The detractor rule also remembers each contact's reason, so it sees every event.
        detractor = self.detractors.process(event)
        if detractor is not None:
            out.signal(detractor.to_signal())

    def _opened(self, event: ContactEvent, late: bool) -> None:
        m = self.metrics
        channel = self.ctx.label("channel", event.channel)
        reason = self.ctx.label("reason", event.reason)
        m.contacts_opened.labels(channel, reason).inc()
        if event.complaint:
            m.complaints.labels(reason, channel).inc()
            if not late:
                self.monitor.observe(f'complaints{{reason="{reason}"}}', {"reason": reason}, event.ts)
                self.monitor.observe(f'complaints_by_channel{{channel="{channel}"}}', {"channel": channel}, event.ts)
        assert event.contact_id is not None  # required by the schema
        self.open_contacts[event.contact_id] = (event.ts, channel, reason)
        while len(self.open_contacts) > MAX_OPEN_CONTACTS:
            self.open_contacts.popitem(last=False)

    def _resolved(self, event: ContactEvent, late: bool) -> None:
        m = self.metrics
        fcr = bool(event.first_contact_resolution)
        m.contacts_resolved.labels("true" if fcr else "false").inc()
        if not late:
            self.fcr.add(event.ts, 1.0 if fcr else 0.0)
            self.monitor.observe("fcr", {}, event.ts, 1.0 if fcr else 0.0, "mean")
        opened = self.open_contacts.pop(event.contact_id or "", None)
        if opened is not None:
            opened_ts, channel, _ = opened
            m.resolution_time.labels(channel).observe(max(0.0, event.ts - opened_ts))

    def _survey(self, event: ContactEvent, late: bool) -> None:
        m = self.metrics
        if event.csat is not None:
            m.csat.observe(event.csat)
            if not late:
                self.csat.add(event.ts, event.csat)
                self.monitor.observe("csat", {}, event.ts, event.csat, "mean")
        if event.ces is not None:
            m.ces.observe(event.ces)
            if not late:
                self.ces.add(event.ts, event.ces)
        if event.nps is not None:
            category = nps_category(event.nps)
            m.nps_responses.labels(category).inc()
            if not late:
                value = {"promoter": 100.0, "passive": 0.0, "detractor": -100.0}[category]
                self.nps.add(event.ts, value)
                self.monitor.observe("nps", {}, event.ts, value, "mean")

    def on_clock(self, now: float, out: Outputs) -> None:
        self.monitor.advance(now, out)
        self.repeats.advance(now)
