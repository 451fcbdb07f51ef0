"""Cardinality and memory floods: 1M sessions, 1M customers, 1M orders, 100k pages (no Kafka).

Prints figures, asserts nothing. The worker's own handlers run in this process: each message is
JSON bytes handed to ``StreamHandler.handle(value, key, partition)`` exactly as the Faust agents
do, with the partition of its key (crc32 modulo ``CXPULSE_PARTITIONS``, all owned by this one
worker), the stores as in-memory dicts (the worker's are Faust tables: ``memory://`` holds the same
values plus Faust's bookkeeping), and ``cx.signals`` records handed straight to the customers
handler. Kafka is not needed for these bounds: they are the handlers' state and the series on
``/metrics``. Not counted: Faust's consumer and producer buffers, its tables' overhead and its
``faust_*`` metrics.

1. clickstream: 1M sessions within 20 minutes of event time, one message each (a page view, and
   a click for every 10th), over 100k distinct page paths (``/p/<word>/x``, ``/a/b/c<word>``);
2. contacts: 1M customers within 2 hours: a contact opened (10k distinct reasons; a complaint for
   every 5th), resolved 10 minutes later for every 4th, a survey 20 minutes later for every 10th;
3. deliveries: 1M orders within 2 hours, shipped with a promise 15 minutes later (every 10th also
   created a minute before, in the same message); carriers and regions from 10k distinct names
   each. The short promise keeps the monitor's re-checks few (2 before the promise passes, one
   at the horizon; days-long promises take ~25: a matter of throughput, not of memory);
4. event time moves on, one event per stream and partition at each step, past every horizon:
   sessions (30 min) and dedup ids (1 h), frustration scores (~2 days for one complaint) and the
   notification policy (24 h), repeat-contact history and known contacts (7 days), open orders
   (21 days after their last event);
5. the same floods again with a tenth as many new keys: does the freed memory get reused?

Printed: the series on ``/metrics`` (``generate_latest`` sample lines, per family, against the
documented bound of ``streams.bounds``) and the distinct page labels; RSS (``VmRSS``) growth per
flood and per live session, customer and order (it includes that stream's dedup ids and, for
sessions, the route cache); the entries of every state container at the peak and after each step
of event time, with a ``sys.getsizeof`` estimate of its bytes at the peak; RSS after each step
(after ``gc.collect()``) and after glibc's ``malloc_trim(0)``.

Usage: ``.venv/bin/python -m bench.bench_flood [--scale 1.0]`` (``--scale`` multiplies the key
counts, not the page or label counts). The full run takes about 6 minutes of CPU (10 minutes on
the shared 2-core build machine) and peaks at about 3.5 GiB of RSS.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.customer_signal import DueIndex
from streams.bounds import series_bound, series_bounds
from streams.clickstream import ClickstreamHandler
from streams.contacts import ContactsHandler
from streams.customers import CustomersHandler
from streams.deliveries import DeliveriesHandler
from streams.labels import OTHER
from streams.metrics import Metrics
from streams.pipeline import Context, Outputs, StreamHandler
from streams.settings import Settings
from streams.topics import Store, Topic

T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0
PAGES = 100_000
LABELS = 10_000
CHANNELS = ("phone", "chat", "email", "social", "self_service")
FLOOD_END = 3 * HOUR  # every flood's events lie within [-1 min, 3 h) of event time


# -- measuring -------------------------------------------------------------------------------


def rss() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, kb, _ = line.split()
                values[name] = int(kb) * 1024
    return values["VmRSS:"], values["VmHWM:"]


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """``sys.getsizeof`` of ``obj`` and everything it holds (each object once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
        return size
    if isinstance(obj, Mapping):
        return size + sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        return size + sum(deep_size(item, seen) for item in obj)
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                size += deep_size(getattr(obj, slot), seen)
    if hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


def estimate(container: Any, sample: int = 2000) -> int:
    """Bytes of a large container: its own size plus its length times the mean deep size of a
    sample of its entries (objects shared between entries, such as status strings, are counted
    in every entry, and the keys an index shares with its store in both)."""
    if isinstance(container, DueIndex):
        return sum(estimate(getattr(container, name), sample) for name in ("_heap", "_version", "_due"))
    n = len(container)
    if n == 0:
        return sys.getsizeof(container)
    if isinstance(container, Mapping):
        entries = [deep_size(k) + deep_size(v) for k, v in itertools.islice(container.items(), sample)]
    else:
        entries = [deep_size(item) for item in itertools.islice(container, sample)]
    return sys.getsizeof(container) + n * sum(entries) // len(entries)


def count_series(text: str) -> tuple[int, dict[str, int]]:
    """Sample lines of a Prometheus text exposition, in all and per metric family."""
    total = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return total, {family.name: len(family.samples) for family in text_string_to_metric_families(text)}


def malloc_trim() -> bool:
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except OSError:
        return False


# -- the worker's handlers, fed by key and partition -------------------------------------------


class Worker:
    """The worker's handlers, fed message by message with the partition of each key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = Context.create(settings, Metrics(CollectorRegistry()))
        self.clickstream = ClickstreamHandler(self.ctx)
        self.contacts = ContactsHandler(self.ctx)
        self.deliveries = DeliveriesHandler(self.ctx)
        self.customers = CustomersHandler(self.ctx)
        self.partitions = settings.partitions
        for handler in (self.clickstream, self.contacts, self.deliveries):
            handler.event_clock.assign(range(self.partitions))
        self.outputs: dict[Topic, int] = dict.fromkeys(Topic, 0)
        self.tick_keys = [next(k for n in itertools.count() if _partition(k := f"tick-{n}", self.partitions) == p)
                          for p in range(self.partitions)]  # fmt: skip
        self._ticks = itertools.count()

    def send(self, handler: StreamHandler, key: str, events: list[dict[str, Any]]) -> None:
        out = handler.handle(orjson.dumps(events), key.encode(), _partition(key, self.partitions))
        self._route(out)

    def _route(self, out: Outputs) -> None:
        for record in out.records:
            self.outputs[record.topic] += 1
            if record.topic == Topic.SIGNALS:
                self._route(self.customers.handle(record.value, record.key, 0))

    def tick(self, t: float) -> None:
        """One event per stream and partition at ``t``: every watermark moves to ``t``. The
        contact is a complaint (its signal moves the customers agent on too); the delivery is of
        an order never seen (no state stays)."""
        for key in self.tick_keys:
            n = next(self._ticks)
            self.send(self.clickstream, key, [event(f"tick{n}", t, "page_view", session_id=key, page="/tick")])
            self.send(
                self.contacts,
                key,
                [
                    event(
                        f"tick{n}",
                        t,
                        "contact_opened",
                        contact_id=f"tick{n}",
                        customer_id=key,
                        channel="chat",
                        reason="tick",
                        complaint=True,
                    )
                ],
            )
            self.send(self.deliveries, key, [event(f"tick{n}", t, "delivered", order_id=key, customer_id=key,
                                                   carrier="tick", region="tick")])  # fmt: skip

    def state(self) -> dict[str, list[Any]]:
        """Every container of per-key state the handlers keep, by name (a list of its parts)."""
        stores = self.ctx.stores
        monitors = list(self.deliveries.monitors.values())

        def dedup(handler: StreamHandler) -> list[Any]:
            return [d._ids for d in handler._dedup.values()]

        return {
            "sessions (frustration detector)": [self.clickstream.frustration._sessions],
            "clickstream dedup ids": dedup(self.clickstream),
            "route cache (raw path -> label)": [self.ctx.pages._cache],
            "known contacts (contacts handler)": [self.contacts.contacts],
            "repeat-contact history (store)": [stores[Store.CONTACTS]],
            "repeat-contact due index": [self.contacts.repeats._index],
            "contacts dedup ids": dedup(self.contacts),
            "frustration scores (store)": [stores[Store.FRUSTRATION]],
            "frustration due index": [self.customers.scores._index],
            "notification policy (store)": [stores[Store.POLICY]],
            "orders (store)": [stores[Store.ORDERS]],
            "orders due index": [d._index for d in monitors],
            "open orders by lane": [d._by_cr for d in monitors],
            "deliveries dedup ids": dedup(self.deliveries),
        }

    def sizes(self) -> dict[str, int]:
        """Entries of every state container, and the transit model's lanes with statistics."""
        sizes = {name: sum(len(part) for part in parts) for name, parts in self.state().items()}
        # one model per deliveries partition: lanes x partitions in all
        sizes["transit model lanes"] = sum(
            len({key.split("/", 1)[1] for key in d.model.samples if key.count("/") == 2})
            for d in self.deliveries.monitors.values()
        )
        return sizes

    def estimates(self) -> dict[str, int]:
        """``sys.getsizeof`` estimate of every state container (the transit model in full)."""
        bytes_ = {name: sum(estimate(part) for part in parts) for name, parts in self.state().items()}
        bytes_["transit model lanes"] = sum(deep_size(d.model) for d in self.deliveries.monitors.values())
        return bytes_


def _partition(key: str, partitions: int) -> int:
    """A stand-in for Kafka's key partitioner (only the grouping by key matters here)."""
    return zlib.crc32(key.encode()) % partitions


# -- the floods ------------------------------------------------------------------------------

#: "YYYY-MM-DDTHH:MM:SS" of every second of the floods, built before the baseline is measured:
#: strings cached *during* the floods would stay alive among the freed state and keep CPython's
#: allocator from reusing or returning it, which is what this benchmark measures.
_SECONDS = [time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(T0 + s)) for s in range(-60, int(FLOOD_END) + 60)]


def iso(t: float) -> str:
    """RFC 3339 of ``T0 + t`` with milliseconds."""
    s = int(t // 1)
    millis = int((t - s) * 1000)
    if -60 <= s < FLOOD_END:
        return f"{_SECONDS[s + 60]}.{millis:03d}Z"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(T0 + s))}.{millis:03d}Z"


def word(i: int) -> str:
    """Seven letters, distinct for distinct ``i`` below 26**7 (no digits: never read as an id)."""
    x = i * 2_654_435_761 % 26**7
    letters = []
    for _ in range(7):
        x, d = divmod(x, 26)
        letters.append(chr(97 + d))
    return "".join(letters)


def event(event_id: str, t: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "ts": iso(t), "type": kind, **fields}


Messages = Iterator[tuple[str, list[dict[str, Any]]]]


def sessions(keys: range, start: float = 0.0) -> Messages:
    """A page view per session, and a click for every 10th, within 20 minutes; 100k distinct pages."""
    for i in keys:
        sid, t, k = f"s{i:07d}", start + (i - keys.start) * 20 * MIN / len(keys), i % PAGES
        page = f"/p/{word(k)}/x" if k % 2 else f"/a/b/c{word(k)}"
        events = [event(f"{sid}v", t, "page_view", session_id=sid, page=page)]
        if i % 10 == 0:
            events.append(event(f"{sid}c", t + 2, "click", session_id=sid, page=page, element="a#buy", x=10, y=20))
        yield sid, events


def customers(keys: range, start: float = 0.0) -> Messages:
    """A contact per customer within 2 hours (10k distinct reasons, every 5th a complaint); every
    4th resolved after 10 minutes, every 10th answers a survey after 20 (csat 1-5: 2 in 5 detractors)."""
    for i in keys:
        cid, kid, t = f"c{i:07d}", f"k{i:07d}", start + (i - keys.start) * 2 * HOUR / len(keys)
        ids = {"contact_id": kid, "customer_id": cid}
        reason = f"reason-{word(i % LABELS)}"
        events = [event(f"{kid}o", t, "contact_opened", **ids, channel=CHANNELS[i % 5], reason=reason,
                        complaint=i % 5 == 0)]  # fmt: skip
        if i % 4 == 0:
            events.append(
                event(f"{kid}r", t + 10 * MIN, "contact_resolved", **ids, first_contact_resolution=i % 8 == 0)
            )
        if i % 10 == 1:
            events.append(event(f"{kid}s", t + 20 * MIN, "survey_response", **ids, csat=1 + i // 10 % 5))
        yield cid, events


def orders(keys: range, start: float = 0.0) -> Messages:
    """An order shipped with a promise 15 minutes later, within 2 hours; every 10th also created a
    minute before (the transit model learns its handling time). Carriers and regions from 10k
    distinct names each."""
    for i in keys:
        oid, t = f"o{i:07d}", start + (i - keys.start) * 2 * HOUR / len(keys)
        order = {"order_id": oid, "customer_id": f"c{i:07d}", "carrier": f"carrier-{word(i % LABELS)}",
                 "region": f"region-{word(i * 7919 % LABELS)}", "promised_by": iso(t + 15 * MIN)}  # fmt: skip
        shipped = event(f"{oid}s", t, "shipped", **order)
        yield oid, [event(f"{oid}c", t - MIN, "created", **order), shipped] if i % 10 == 0 else [shipped]


def flood(w: Worker, keys: range, start: float = 0.0) -> dict[str, int]:
    """Every stream's flood over ``keys``; prints a line per stream; returns RSS growth per stream."""
    growth = {}
    streams: tuple[tuple[str, StreamHandler, Messages, Callable[[], int]], ...] = (
        ("sessions", w.clickstream, sessions(keys, start), lambda: w.clickstream.frustration.active_sessions),
        ("customers", w.contacts, customers(keys, start), lambda: len(w.ctx.stores[Store.CONTACTS])),
        ("orders", w.deliveries, orders(keys, start), lambda: len(w.ctx.stores[Store.ORDERS])),
    )
    for name, handler, messages, live in streams:
        gc.collect()
        before, _ = rss()
        started, cpu = time.perf_counter(), time.process_time()
        events = 0
        for key, batch in messages:
            w.send(handler, key, batch)
            events += len(batch)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        gc.collect()
        after, _ = rss()
        growth[name] = after - before
        print(
            f"  {len(keys):,} {name}, {events:,} events: {elapsed:.0f}s ({cpu:.0f}s CPU, generation included); "
            f"RSS +{mib(after - before)} = {(after - before) / max(live(), 1):,.0f} bytes per live key "
            f"({live():,} live)"
        )
    return growth


# -- reporting -------------------------------------------------------------------------------


def print_series(w: Worker, label: str) -> None:
    text = generate_latest(w.ctx.metrics.registry).decode()
    total, per_family = count_series(text)
    bounds = series_bounds(w.settings)
    pages = {
        line.split('page="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("cxpulse_page_views_total{")
    }
    over = [family for family, n in per_family.items() if n > bounds.get(family, 0)]
    print(
        f"\nseries on /metrics {label}: {total:,} samples, documented bound {series_bound(w.settings):,}; "
        f"families over their own bound: {over or 'none'}; distinct page labels {len(pages)} "
        f"(bound {w.settings.max_pages} + 'other'{', other among them' if OTHER in pages else ''})"
    )
    top = sorted(per_family.items(), key=lambda kv: -kv[1])
    print("  samples/bound: " + ", ".join(f"{f.removeprefix('cxpulse_')} {n}/{bounds.get(f, 0)}" for f, n in top[:10]))
    print(f"  {len(top) - 10} more families: {sum(n for _, n in top[10:])} samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the session, customer and order counts")
    n = int(1_000_000 * parser.parse_args().scale)
    started = time.perf_counter()
    settings = Settings()
    w = Worker(settings)
    gc.collect()
    base, _ = rss()
    print(
        f"one worker in-process, {settings.partitions} partitions per stream; caps {settings.max_pages} pages, "
        f"{settings.max_label_values} label values; dedup {settings.dedup_max_ids:,} ids per partition; "
        f"baseline RSS {mib(base)}\n"
    )
    growth = flood(w, range(n))
    gc.collect()
    peak, _ = rss()
    print(
        f"  all three: RSS {mib(peak)}, +{mib(peak - base)} over the baseline; outputs "
        + ", ".join(f"{topic.value} {count:,}" for topic, count in w.outputs.items() if count)
    )
    print_series(w, "at the peak")

    steps = (
        ("+35 min", 35 * MIN, "sessions (30 min idle), dedup ids (1 h)"),
        ("+2 d", 2 * DAY, "frustration scores, notification policy (24 h)"),
        ("+8 d", 8 * DAY, "repeat-contact history, known contacts (7 d)"),
        ("+22 d", 22 * DAY, "open orders (21 d after their last event)"),
    )
    sizes, estimates, memory = [w.sizes()], w.estimates(), [rss()[0]]
    for _, offset, _ in steps:
        w.tick(FLOOD_END + offset)
        w.tick(FLOOD_END + offset + HOUR)  # the policy store is swept once per event-time hour
        gc.collect()
        sizes.append(w.sizes())
        memory.append(rss()[0])
    print("\nstate at the peak and as event time moves past the end of the floods (gc.collect() before each RSS):")
    for label, _, expiring in steps:
        print(f"  {label:>8}: {expiring}")
    header = "".join(f"{label:>10}" for label in ("peak", *(s[0] for s in steps)))
    print(f"  {'entries':<36}{header}  ~size at the peak")
    for name in sizes[0]:
        counts = "".join(f"{s[name]:>10,}" for s in sizes)
        print(f"  {name:<36}{counts}  ~{mib(estimates[name])}")
    print(f"  {'RSS':<36}" + "".join(f"{mib(m):>10}" for m in memory))

    trimmed = malloc_trim()
    after_trim, _ = rss()
    print(
        f"\nafter expiry: RSS {mib(memory[-1])} (+{mib(memory[-1] - base)} over the baseline; the peak added "
        f"+{mib(peak - base)}); after malloc_trim(0): {mib(after_trim)}"
        f"{'' if trimmed else ' (nothing to release)'}"
    )
    tenth = max(n // 10, 1)
    print(f"\nthe same floods again with {tenth:,} new keys each, after expiry (is the freed memory reused?):")
    again = flood(w, range(n, n + tenth), FLOOD_END + 23 * DAY)
    print(
        "  RSS growth now vs the first time for as many keys: "
        + ", ".join(f"{name} +{mib(again[name])} vs +{mib(growth[name] * tenth / n)}" for name in growth)
    )
    print_series(w, "at the end")
    print(f"\ntotal {time.perf_counter() - started:.0f}s ({time.process_time():.0f}s CPU)")


if __name__ == "__main__":
    main()
