"""Quality figures of one run's outputs against the simulator's ground truth.

One scorer for every test that judges what cxpulse emitted against what the simulator injected
(``deploy/simulator/simulation.py``, ``Simulation(record_truth=True).truth()``):

* delivery delays (:func:`delay_score`): recall of ``delivery_delayed`` on late orders (before
  the promise and before the customer's first contact about the order), false notifications,
  lead time; orders created during the first simulated day are not scored (the transit model
  starts empty and learns from the stream);
* alert episodes (:func:`episodes`, :func:`first_firing`): one entry per firing episode, matched
  with the injected incidents by time overlap and labels;
* :func:`quality`: every figure of a run at once (delay recall and lead, incidents caught and
  alerts per incident, false alerts, repeat contacts and detractors exact), for tables that
  compare runs (:func:`quality_table`).

Pure functions over plain dicts (CloudEvents as JSON objects, the truth as written by
``--truth``): no Kafka, no handlers, so the same scorer serves in-process and broker tests.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas import cloudevents as ce
from schemas.models import NOTIFY_DELIVERY_DELAYED, NOTIFY_DETRACTOR_FOLLOWUP, NOTIFY_REPEAT_CONTACT

HOUR = 3600.0
DAY = 86400.0
#: An incident counts as caught when an alert for it fires at most this long after its onset.
MAX_DELAY_S = 300.0
#: A carrier delay shows in on-time ratios only when its orders arrive, days after the shipping
#: window: an on-time alert of the lane this long after the window still counts as explained.
ON_TIME_AFTERMATH_S = 4 * DAY


# --------------------------------------------------------------------------------------------
# Delivery delays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """What the delay scorer needs of a ``delivery_delayed`` notification (or a prediction)."""

    order_id: str
    ts: float
    promise: float

    @property
    def lead_time_s(self) -> float:
        return self.promise - self.ts


def delayed(notifications: Iterable[Mapping[str, Any]]) -> list[Sent]:
    """The ``delivery_delayed`` CloudEvents among ``notifications``, for :func:`delay_score`."""
    return [
        Sent(e["data"]["order_id"], ce.parse_rfc3339(e["time"]), ce.parse_rfc3339(e["data"]["promised_by"]))
        for e in notifications
        if e["type"] == NOTIFY_DELIVERY_DELAYED
    ]


def delay_score(truth: Mapping[str, Any], notes: Sequence[Any], start: float | None = None) -> dict[str, Any]:
    """Delay notifications (anything with ``order_id``, ``ts`` and ``lead_time_s``) against the
    truth's orders. ``start`` (default the truth's) + one day is the first creation time scored."""
    orders = {o["order_id"]: o for o in truth["orders"]}
    affected = {oid for i in truth["incidents"] if i["name"] == "carrier_delay" for oid in i["affected_orders"]}
    t0 = (truth["start"] if start is None else start) + DAY
    by_order = {n.order_id: n for n in notes}
    scored = [o for o in orders.values() if o["promise_seen"] and o["created"] >= t0 and o["late"] is not None]
    late = [o for o in scored if o["late"]]

    def in_time(o: dict[str, Any]) -> bool:
        n = by_order.get(o["order_id"])
        if n is None or n.ts >= o["promised_by"]:
            return False
        return o["first_contact_ts"] is None or n.ts < o["first_contact_ts"]

    hit = [o for o in late if in_time(o)]
    quiet = [o for o in late if o["first_contact_ts"] is None or o["first_contact_ts"] >= o["promised_by"]]
    inc_late = [o for o in late if o["order_id"] in affected]
    scored_ids = {o["order_id"] for o in scored}
    fired = [n for n in notes if n.order_id in scored_ids]
    false = [n for n in fired if not orders[n.order_id]["late"]]
    leads = [by_order[o["order_id"]].lead_time_s / HOUR for o in hit]
    inc_leads = [by_order[o["order_id"]].lead_time_s / HOUR for o in inc_late if in_time(o)]
    return {
        "late": len(late), "hit": len(hit),
        "quiet": len(quiet), "quiet_hit": sum(1 for o in quiet if in_time(o)),
        "inc_late": len(inc_late), "inc_hit": sum(1 for o in inc_late if in_time(o)),
        "fired": len(fired), "false": len(false), "leads": leads, "inc_leads": inc_leads,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Alert episodes
# --------------------------------------------------------------------------------------------


def route(template: str) -> str:
    """Simulator page template -> the handler's route label (``/products/{id}`` -> ``/products/:id``)."""
    return template.replace("{id}", ":id")


def episodes(alerts: Iterable[Mapping[str, Any]], end: float) -> list[dict[str, Any]]:
    """One entry per firing alert episode: type, series, labels, start, firing time, end (``end``
    when it never resolved), explanation. ``alerts`` are CloudEvents as JSON objects."""
    found: dict[str, dict[str, Any]] = {}
    for ev in alerts:
        data = ev["data"]
        ep = found.setdefault(f"{data['series']}|{data['episode_start']}", {
            "type": ev["type"], "series": data["series"], "labels": data["labels"],
            "start": ce.parse_rfc3339(data["episode_start"]), "fired": None, "end": end, "explanation": "",
        })  # fmt: skip
        if data["status"] == "firing":
            ep["fired"] = ce.parse_rfc3339(ev["time"])
            ep["explanation"] = data["explanation"]
        else:
            ep["end"] = ce.parse_rfc3339(ev["time"])
    return [ep for ep in found.values() if ep["fired"] is not None]


def overlaps(ep: Mapping[str, Any], incident: Mapping[str, Any], aftermath: float = 0.0) -> bool:
    return ep["start"] <= incident["end"] + aftermath and incident["start"] <= ep["end"]


def first_firing(
    found: Iterable[Mapping[str, Any]], incident: Mapping[str, Any], ok: Callable[[Mapping[str, Any]], bool]
) -> float | None:
    """Delay (s) of the first matching firing alert at or after the onset, during the incident."""
    delays = [
        ep["fired"] - incident["start"]
        for ep in found
        if ok(ep) and incident["start"] <= ep["fired"] and overlaps(ep, incident)
    ]
    return min(delays, default=None)


def alert_for(incident: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Which alert episodes report ``incident`` itself (what "caught" means per incident kind)."""
    name, params = incident["name"], incident["params"]
    if name == "complaint_spike":
        return lambda ep: ep["type"] == "cx.alert.complaint_spike" and ep["labels"].get("reason") == params["reason"]
    if name == "rage_click_storm":
        return lambda ep: (ep["type"] == "cx.alert.rage_click_storm"
                           and ep["labels"].get("page") == route(params["page"]))  # fmt: skip
    if name == "error_storm":
        page = route(params["page"])
        return lambda ep: ep["type"] == "cx.alert.metric_anomaly" and ep["series"] == f'client_errors{{page="{page}"}}'
    if name == "carrier_delay":
        lane = f'on_time{{carrier="{params["carrier"]}",region="{params["region"]}"}}'
        return lambda ep: ep["series"] == lane
    raise ValueError(f"unknown incident kind {name!r}")


def explained(ep: Mapping[str, Any], incidents: Iterable[Mapping[str, Any]]) -> bool:
    """Whether an injected incident explains a firing episode; every other one is a false alert.

    Its own alert (:func:`alert_for`) overlapping it; for a complaint spike also the channel
    series (30% of a spike's contacts follow the normal channel mix, so every channel rises);
    for an error storm also the fleet's client error rate; for a carrier delay the lane's
    on-time ratio up to :data:`ON_TIME_AFTERMATH_S` after the shipping window.
    """
    for inc in incidents:
        name = inc["name"]
        if name == "carrier_delay":
            if alert_for(inc)(ep) and overlaps(ep, inc, ON_TIME_AFTERMATH_S):
                return True
            continue
        if not overlaps(ep, inc):
            continue
        if alert_for(inc)(ep):
            return True
        if name == "complaint_spike" and ep["series"].startswith("complaints_by_channel"):
            return True
        if name == "error_storm" and ep["series"] == "client_error_rate":
            return True
    return False


# --------------------------------------------------------------------------------------------
# Notification candidates that must match the truth exactly
# --------------------------------------------------------------------------------------------


def candidates(signals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The notification candidates carried by ``cx.signals`` records (before the policy)."""
    return [s["notification"] for s in signals if s.get("notification")]


def exact_candidates(truth: Mapping[str, Any], found: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, set]]:
    """Repeat-contact and detractor candidates against the truth: ``{kind: {"want", "got"}}``.

    One repeat-contact candidate per episode (the contact that brings the 7-day count to 3);
    one detractor follow-up per detractor survey."""
    found = list(found)
    return {
        "repeat_contact": {
            "want": {(t["customer_id"], t["contact_ids"][-1])
                     for t in truth["repeat_contacts"] if t["count_in_window"] == 3},
            "got": {(c["customer_id"], c["data"]["contact_ids"][-1]) for c in found
                    if c["type"] == NOTIFY_REPEAT_CONTACT},
        },
        "detractor_followup": {
            "want": {(t["customer_id"], t["contact_id"]) for t in truth["detractors"]},
            "got": {(c["customer_id"], c["subject"]) for c in found if c["type"] == NOTIFY_DETRACTOR_FOLLOWUP},
        },
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Every figure of a run
# --------------------------------------------------------------------------------------------


def quality(
    truth: Mapping[str, Any],
    notifications: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    signals: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The quality figures of one run, by name, in a stable order (see the module docstring).

    ``notifications`` and ``alerts`` are the CloudEvents the run sent (one per id), ``signals``
    every ``cx.signals`` record's signals. Values are plain numbers or strings, so two runs'
    figures compare with ``==``.
    """
    d = delay_score(truth, delayed(notifications))
    found = episodes(alerts, truth["end"])
    incidents = truth["incidents"]
    figures: dict[str, Any] = {
        "delivery_delayed sent": sum(1 for e in notifications if e["type"] == NOTIFY_DELIVERY_DELAYED),
        "delay recall (before promise and first contact)": f"{d['hit']}/{d['late']}",
        "delay recall, incident orders": f"{d['inc_hit']}/{d['inc_late']}",
        "delay false notifications": f"{d['false']}/{d['fired']}",
        "delay median lead (h)": round(statistics.median(d["leads"]), 2) if d["leads"] else None,
    }
    # A carrier delay is judged by its orders' notifications (above), not by an alert in minutes.
    for kind in ("complaint_spike", "rage_click_storm", "error_storm"):
        of_kind = [i for i in incidents if i["name"] == kind]
        if not of_kind:
            continue
        delays = [first_firing(found, i, alert_for(i)) for i in of_kind]
        caught = sum(1 for x in delays if x is not None and x <= MAX_DELAY_S)
        per = [sum(1 for ep in found if alert_for(i)(ep) and overlaps(ep, i)) for i in of_kind]
        figures[f"{kind}: caught within {MAX_DELAY_S:.0f}s"] = f"{caught}/{len(of_kind)}"
        figures[f"{kind}: alert delays (s)"] = [None if x is None else round(x) for x in delays]
        figures[f"{kind}: firing episodes per incident"] = per
    false = sorted(ep["series"] for ep in found if not explained(ep, incidents))
    figures["firing episodes"] = len(found)
    figures["false alerts"] = len(false)
    figures["false alert series"] = ", ".join(false) or "-"
    for kind, sets in exact_candidates(truth, candidates(signals)).items():
        want, got = sets["want"], sets["got"]
        figures[f"{kind} candidates exact"] = (
            f"{len(want & got)}/{len(want)} found, {len(got - want)} extra, "
            f"{'exact' if want == got else 'NOT exact'}"
        )
    return figures


def quality_table(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """One line per figure, one column per run (``{run name: quality(...)}``); ``*`` marks a
    figure that differs between the runs."""
    names = list(runs)
    figures = list(dict.fromkeys(f for r in runs.values() for f in r))
    width = max(len(f) for f in figures)
    lines = [f"  {'figure':<{width}} | " + " | ".join(names)]
    for f in figures:
        values = [runs[n].get(f) for n in names]
        mark = " " if all(v == values[0] for v in values) else "*"
        lines.append(f"{mark} {f:<{width}} | " + " | ".join(str(v) for v in values))
    return "\n".join(lines)
