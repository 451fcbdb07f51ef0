"""Contacts: contact volumes, complaints, resolution, and the survey scores CSAT, NPS, CES."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from detectors.contact_rules import DetractorRule, RepeatContactRule
from detectors.customer_signal import CustomerSignal
from schemas import ContactEvent, Stream
from streams.event_time import RollingWindow, mean_reader
from streams.metrics import Children
from streams.pipeline import Context, Outputs, StreamHandler
from streams.series import SeriesPartials
from streams.topics import Store

#: Contacts remembered for resolution times and for the reason of a later survey (LRU bound).
MAX_KNOWN_CONTACTS = 500_000
#: A contact is forgotten this long (event time, on the watermark) after its last open or
#: resolution: a later resolution is not timed, a later survey does not get its reason.
KNOWN_CONTACT_HORIZON_S = 7 * 86400.0
NPS_VALUES = {"promoter": 100.0, "passive": 0.0, "detractor": -100.0}


class KnownContact(NamedTuple):
    """What later events of a contact need: when it opened (None once resolved) and why."""

    opened_ts: float | None
    channel: str  # label value
    reason: str | None  # as sent, for the detractor follow-up
    last_ts: float  # its last open or resolution: it expires KNOWN_CONTACT_HORIZON_S after


def nps_category(score: int) -> str:
    """Promoter 9-10, passive 7-8, detractor 0-6 (the standard NPS bands)."""
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


class ContactsHandler(StreamHandler):
    stream = Stream.CONTACTS
    stores = (Store.CONTACTS,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        window = ctx.settings.window_seconds
        self.csat = RollingWindow(window)
        self.ces = RollingWindow(window)
        self.nps = RollingWindow(window)  # value = +100 promoter, 0 passive, -100 detractor
        self.fcr = RollingWindow(window)  # value = 1 resolved on first contact, else 0
        self.monitor: SeriesPartials = SeriesPartials(ctx, self.stream)
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
        # The one map of contacts: resolution time, and the reason a later survey refers to.
        # Ordered by last open or resolution, so expiry stops at the first live one.
        self.contacts: OrderedDict[str, KnownContact] = OrderedDict()
        self._opened_by = Children(m.contacts_opened, m.tallies)
        self._complaints = Children(m.complaints, m.tallies)
        self._resolution_time = Children(m.resolution_time)
        self._resolved_fcr = {True: m.contacts_resolved.labels("true"), False: m.contacts_resolved.labels("false")}
        self._nps_responses = {category: m.nps_responses.labels(category) for category in NPS_VALUES}

    def on_event(self, event: ContactEvent, late: bool, out: Outputs) -> None:  # type: ignore[override]
        if event.type == "contact_opened":
            self._opened(event, late, out)
            repeat = self.repeats.process(event)
            if repeat is not None:
                out.signal(repeat.to_signal())
            return
        if event.type == "contact_resolved":
            self._resolved(event, late)
        else:
            self._survey(event, late)
        known = self.contacts.get(event.contact_id) if event.contact_id is not None else None
        # The map is in memory: after a restart or a rebalance the durable contact history knows.
        reason = known.reason if known is not None else self.repeats.reason_of(event.customer_id, event.contact_id)
        detractor = self.detractors.process(event, reason)
        if detractor is not None:
            out.signal(detractor.to_signal())

    def _opened(self, event: ContactEvent, late: bool, out: Outputs) -> None:
        channel = self.ctx.label("channel", event.channel)
        reason = self.ctx.label("reason", event.reason)
        self._opened_by.get_child(channel, reason).inc()
        if event.complaint:
            self._complaints.get_child(reason, channel).inc()
            if not late:
                self.monitor.observe(f'complaints{{reason="{reason}"}}', {"reason": reason}, event.ts)
                self.monitor.observe(f'complaints_by_channel{{channel="{channel}"}}', {"channel": channel}, event.ts)
            detail = {"reason": reason}
            out.signal(CustomerSignal("complaint", event.customer_id, event.ts, event.contact_id or "", detail))
        assert event.contact_id is not None  # required by the schema
        contacts = self.contacts
        contacts[event.contact_id] = KnownContact(event.ts, channel, event.reason, event.ts)
        contacts.move_to_end(event.contact_id)
        while len(contacts) > MAX_KNOWN_CONTACTS:
            contacts.popitem(last=False)

    def _resolved(self, event: ContactEvent, late: bool) -> None:
        fcr = bool(event.first_contact_resolution)
        self._resolved_fcr[fcr].inc()
        if not late:
            self.fcr.add(event.ts, 1.0 if fcr else 0.0, now=self.event_clock.now)
            self.monitor.observe("fcr", {}, event.ts, 1.0 if fcr else 0.0, "mean")
        contact_id = event.contact_id or ""
        known = self.contacts.get(contact_id)
        if known is not None and known.opened_ts is not None:
            self._resolution_time.get_child(known.channel).observe(max(0.0, event.ts - known.opened_ts))
            # Kept for a later survey's reason (its horizon starts again); a second resolution
            # is not timed again.
            self.contacts[contact_id] = known._replace(opened_ts=None, last_ts=max(known.last_ts, event.ts))
            self.contacts.move_to_end(contact_id)

    def _survey(self, event: ContactEvent, late: bool) -> None:
        m = self.metrics
        if event.csat is not None:
            m.csat.observe(event.csat)
            if not late:
                self.csat.add(event.ts, event.csat, now=self.event_clock.now)
                self.monitor.observe("csat", {}, event.ts, event.csat, "mean")
        if event.ces is not None:
            m.ces.observe(event.ces)
            if not late:
                self.ces.add(event.ts, event.ces, now=self.event_clock.now)
        if event.nps is not None:
            category = nps_category(event.nps)
            self._nps_responses[category].inc()
            if not late:
                value = NPS_VALUES[category]
                self.nps.add(event.ts, value, now=self.event_clock.now)
                self.monitor.observe("nps", {}, event.ts, value, "mean")

    def on_clock(self, now: float, out: Outputs) -> None:
        self.repeats.advance(self.event_clock.safe)  # see DeliveriesHandler.on_clock
        # On the safe watermark: after a rebalance ``now`` may be far ahead of a partition taken
        # over, whose contacts must not expire before it catches up.
        self._expire_contacts(self.event_clock.safe - KNOWN_CONTACT_HORIZON_S)

    def _expire_contacts(self, horizon: float) -> None:
        """Forget contacts whose last open or resolution is older than ``horizon``.

        Like sessions, the map is in arrival order: with events out of order across partitions
        a contact can outlive the horizon by that disorder, and goes on a later call.
        """
        contacts = self.contacts
        while contacts:
            contact_id, known = next(iter(contacts.items()))
            if known.last_ts >= horizon:
                return
            del contacts[contact_id]

    def recovered(self) -> None:
        self.repeats.rebuild_index()
