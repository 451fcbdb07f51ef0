"""The latency bench's traffic: copies of simulated traffic must stay valid, distinct and paced."""

from __future__ import annotations

from bench.bench_latency import _newest_ts, tile
from deploy.simulator.simulation import SimulationConfig, iter_encoded
from schemas import Stream, parse_message

START = 1_800_000_000.0


def _base() -> list[tuple[str, bytes, bytes]]:
    config = SimulationConfig(seed=3, start=START, sim_seconds=60, events_per_sim_second=40)
    return list(iter_encoded(config, batch_size=20, max_delay=30.0))


def test_copies_are_valid_distinct_and_run_with_the_wall_clock() -> None:
    base = _base()
    span = max(_newest_ts(value) for _, _, value in base) - START
    rate = 3 * len(base) / span  # three copies
    to = START + 1000.0
    tiled = tile(base, START, rate, to)

    assert len(tiled) == 3 * len(base)
    ids: list[str] = []
    for stream, _key, value in tiled:
        result = parse_message(Stream(stream), value)
        assert not result.rejections, result.rejections
        ids.extend(event.event_id for event in result.events)
    assert len(ids) == len(set(ids)), "an event id repeats across copies"
    newest = [_newest_ts(value) for _, _, value in tiled]
    # Event time starts at ``to`` and its span equals the time the messages take at ``rate``.
    assert min(newest) >= to
    assert abs((max(newest) - to) - len(tiled) / rate) < 0.05 * len(tiled) / rate
    # Each copy is its own population: a copy's keys never meet the base's.
    assert {key for _, key, _ in tiled}.isdisjoint({key for _, key, _ in base})


def test_a_lower_rate_stretches_event_time() -> None:
    base = _base()
    span = max(_newest_ts(value) for _, _, value in base) - START
    tiled = tile(base, START, 0.5 * len(base) / span, START)
    assert len(tiled) == len(base)
    assert abs((max(_newest_ts(v) for _, _, v in tiled) - START) - 2 * span) < 0.01 * span
