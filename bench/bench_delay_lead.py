"""How much lead time can a delay notification have? Our monitor against an oracle.

On the simulator's carrier-delay scenario (the one ``tests/streams/test_notifications_kafka.py``
scores), compares the lead time (``promised_by`` minus the notification's event time) of

* **the monitor** (:class:`detectors.delivery_delay.DeliveryDelayMonitor`, learning everything
  online from the tracking stream), and
* **an oracle** that knows the simulator's true transit distribution of every lane
  (``base x lognormal(0, 0.22)``, last leg 1-6 h) and notifies at the first 10-minute step at
  which ``P(late | shipped at s, not out for delivery by t)`` reaches the same confidence.

for ordinary late orders (no incident, no failed attempt or exception) and for the incident's
orders. Ordinary lateness in the simulator is the tail of the transit-time distribution and the
scans in between carry no progress, so even the oracle can only tell a few hours before the
promise; the oracle's median is the ceiling for these orders at this precision.

``--partitions N`` splits the orders by key over N partitions, each with its own monitor and
transit model learning from its partition only, as the worker does (streams/deliveries.py): the
quality cost of per-partition models. Recall is the share of those late orders notified before
their promise.

Run: ``python -m bench.bench_delay_lead [--seeds 1 2 3] [--confidence 0.96] [--partitions 4]``.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import zlib
from statistics import NormalDist

from detectors.delivery_delay import DelayPredicted, DeliveryDelayMonitor
from tests.detectors.test_delivery_quality import scenario

H = 3600.0
D = 86400.0
TRANSIT_SIGMA = 0.22  # the simulator's log-spread of transit around the lane's base
LAST_LEG_H = (1.0, 6.0)  # out_for_delivery -> delivered, uniform
_N = NormalDist()


def _survival(x: float, base: float) -> float:
    return 1.0 if x <= 0 else 1.0 - _N.cdf(math.log(x / base) / TRANSIT_SIGMA)


def oracle_probability(promise_after_ship: float, elapsed: float, base: float) -> float:
    """``P(T > promise | T - U > elapsed)`` with the true lane base and last leg ``U``."""
    legs = [(LAST_LEG_H[0] + (LAST_LEG_H[1] - LAST_LEG_H[0]) * (i + 0.5) / 20) * H
            for i in range(20)]
    den = sum(_survival(elapsed + u, base) for u in legs)
    num = sum(_survival(max(elapsed + u, promise_after_ship), base) for u in legs)
    return num / den if den > 0 else 1.0


def oracle_lead_h(shipped: float, promise: float, base: float, confidence: float) -> float | None:
    t = shipped
    while t < promise:
        if oracle_probability(promise - shipped, t - shipped, base) >= confidence:
            return (promise - t) / H
        t += 600.0
    return None


def run_seed(seed: int, confidence: float, partitions: int = 1) -> dict[str, list[float]]:
    sim, events = scenario(seed)
    cfg = sim.config
    monitors = [DeliveryDelayMonitor(min_confidence=confidence) for _ in range(partitions)]
    notified: dict[str, DelayPredicted] = {}
    for e in events:
        monitor = monitors[zlib.crc32(e.order_id.encode()) % partitions]
        for f in monitor.advance(e.ts) + monitor.process(e):
            if isinstance(f, DelayPredicted):
                notified.setdefault(f.order_id, f)
    shipped = {e.order_id: e.ts for e in events if e.type == "shipped"}
    troubled = {e.order_id for e in events if e.type in ("failed_attempt", "exception")}
    truth = sim.truth()
    affected = set(truth["incidents"][0]["affected_orders"])
    out: dict[str, list[float]] = {"ordinary_monitor": [], "ordinary_oracle": [],
                                   "incident_monitor": []}
    for o in truth["orders"]:
        oid = o["order_id"]
        if not o["late"] or o["created"] < cfg.start + D or oid not in shipped or oid in troubled:
            continue
        note = notified.get(oid)
        lead = note.lead_time_s / H if note is not None and note.lead_time_s > 0 else 0.0
        if oid in affected:
            out["incident_monitor"].append(lead)
            continue
        info = sim.order_info[oid]
        base = sim._transit[(info["carrier"], info["region"])]
        out["ordinary_monitor"].append(lead)
        out["ordinary_oracle"].append(
            oracle_lead_h(shipped[oid], o["promised_by"], base, confidence) or 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--confidence", type=float, default=0.96)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {}
    for seed in args.seeds:
        for k, v in run_seed(seed, args.confidence, args.partitions).items():
            pooled.setdefault(k, []).extend(v)
    print(f"confidence {args.confidence}, seeds {args.seeds}, partitions {args.partitions}; lead time in "
          f"hours (0 = not notified before the promise)")
    for name, leads in pooled.items():
        if leads:
            q = statistics.quantiles(leads, n=4) if len(leads) > 1 else [leads[0]] * 3
            recall = sum(1 for h in leads if h > 0) / len(leads)
            print(f"  {name:18s} n={len(leads):4d} recall={recall:.3f} median={statistics.median(leads):5.1f} "
                  f"q1={q[0]:5.1f} q3={q[2]:5.1f}")


if __name__ == "__main__":
    main()
