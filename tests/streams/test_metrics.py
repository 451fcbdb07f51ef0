"""Tallies: counters and histograms counted in plain numbers and synced at collection."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.metrics import LAG_BUCKETS, Metrics, TallyBook


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name.replace(name, ""), tuple(sorted((k, v) for k, v in s.labels.items() if k != "stream"))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(name)
    }


def test_a_histogram_tally_exports_what_observe_would() -> None:
    registry = CollectorRegistry()
    book = TallyBook()
    registry.register(book)
    tallied = Histogram("tallied", "t", ["stream"], buckets=LAG_BUCKETS, registry=registry)
    direct = Histogram("direct", "d", ["stream"], buckets=LAG_BUCKETS, registry=registry)
    tally = book.histogram(tallied.labels("clickstream"))
    child = direct.labels("clickstream")
    rng = random.Random(7)
    # Bucket bounds exactly (le is inclusive), zero, values between bounds and past the last one.
    values = [*LAG_BUCKETS, 0.0, 1e9, *(rng.expovariate(0.5) for _ in range(2000))]
    for i, value in enumerate(values):
        tally.observe(value)
        child.observe(value)
        if i % 500 == 0:  # syncing several times adds only what is new
            assert _samples(registry, "tallied") == _samples(registry, "direct")
    tallied_samples, direct_samples = _samples(registry, "tallied"), _samples(registry, "direct")
    assert tallied_samples.keys() == direct_samples.keys()
    for key, value in direct_samples.items():
        assert abs(tallied_samples[key] - value) <= 1e-9 * max(1.0, abs(value)), key
    assert registry.get_sample_value("tallied_count", {"stream": "clickstream"}) == len(values)


def test_counter_tallies_sync_at_each_collection() -> None:
    registry = CollectorRegistry()
    book = TallyBook()
    registry.register(book)
    views = book.tally(Counter("views", "v", registry=registry))
    views.inc()
    views.inc(2)
    assert registry.get_sample_value("views_total") == 3.0
    views.inc()
    assert registry.get_sample_value("views_total") == 4.0


def test_the_event_delay_histogram_is_tallied_and_read_at_scrape() -> None:
    from streams.clickstream import ClickstreamHandler
    from streams.pipeline import Context
    from streams.settings import Settings

    registry = CollectorRegistry()
    ctx = Context.create(Settings(), Metrics(registry))
    ctx.clock = lambda: 1_800_000_000.5
    handler = ClickstreamHandler(ctx)
    event = b'{"event_id":"e1","ts":"2027-01-15T08:00:00Z","type":"page_view","session_id":"s1","page":"/"}'
    handler.handle(event, b"s1", 0, 0)
    labels = {"stream": "clickstream"}
    assert registry.get_sample_value("cxpulse_event_delay_seconds_count", labels) == 1.0
    assert registry.get_sample_value("cxpulse_event_delay_seconds_bucket", {**labels, "le": "0.25"}) == 0.0
    assert registry.get_sample_value("cxpulse_event_delay_seconds_bucket", {**labels, "le": "0.5"}) == 1.0
    assert registry.get_sample_value("cxpulse_event_delay_seconds_sum", labels) == 0.5
