"""EpisodeTracker: hysteresis, direction, severity, deterministic ids, explanations."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from detectors.episodes import AlertEvent, EpisodeTracker
from schemas.ids import alert_id

T0 = 1_700_000_040.0  # 22:14 UTC


def run(tr: EpisodeTracker, steps: Sequence[tuple[float, float, float]]) -> list[AlertEvent]:
    out = []
    for i, (obs, exp, score) in enumerate(steps):
        ev = tr.step(T0 + 60 * i, T0 + 60 * i + 60, obs, exp, score)
        if ev is not None:
            out.append(ev)
    return out


def test_one_firing_one_resolved_with_hysteresis() -> None:
    tr = EpisodeTracker("s", {"a": "b"}, clear_steps=3)
    steps = [(1, 1, 0.1), (9, 1, 0.95), (9, 1, 0.95), (1, 1, 0.1), (9, 1, 0.95)]
    steps += [(1, 1, 0.1)] * 2
    evs = run(tr, steps)
    assert [e.kind for e in evs] == ["firing"]  # two normal steps are not enough
    evs = run(tr, [(1, 1, 0.1)])
    assert [e.kind for e in evs] == ["resolved"] and not tr.is_open


def test_ids_deterministic_and_shared() -> None:
    steps = [(9, 1, 0.95), (1, 1, 0.0), (1, 1, 0.0), (1, 1, 0.0), (1, 1, 0.0), (1, 1, 0.0)]
    a = run(EpisodeTracker('x{y="z"}', clear_steps=5), steps)
    b = run(EpisodeTracker('x{y="z"}', clear_steps=5), steps)
    assert [e.alert_id for e in a] == [e.alert_id for e in b]
    assert a[0].alert_id == a[1].alert_id == alert_id('x{y="z"}', T0)
    # A later episode of the same series is another alert.
    later = run(EpisodeTracker('x{y="z"}', clear_steps=5), [(1, 1, 0.0), *steps])
    assert later[0].alert_id == alert_id('x{y="z"}', T0 + 60) != a[0].alert_id


@pytest.mark.parametrize(
    ("direction", "obs", "fires"),
    [
        ("up", 9, True),
        ("up", 0, False),
        ("down", 0, True),
        ("down", 9, False),
        ("both", 0, True),
        ("both", 9, True),
    ],
)
def test_direction(direction: str, obs: float, fires: bool) -> None:
    tr = EpisodeTracker("s", direction=direction)  # type: ignore[arg-type]
    assert bool(run(tr, [(obs, 4, 0.99)])) is fires


def test_invalid_direction() -> None:
    with pytest.raises(ValueError):
        EpisodeTracker("s", direction="sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("obs", "exp", "score", "severity"),
    [(5, 4, 0.95, "warning"), (12, 4, 0.95, "critical"), (5, 4, 0.995, "critical")],
)
def test_severity(obs: float, exp: float, score: float, severity: str) -> None:
    (ev,) = run(EpisodeTracker("s"), [(obs, exp, score)])
    assert ev.severity == severity


def test_explanations() -> None:
    tr = EpisodeTracker(
        'complaints{reason="billing"}',
        {"reason": "billing"},
        alert_type="complaint_spike",
        title="Complaints about billing",
        clear_steps=1,
    )
    fire, res = run(tr, [(42, 9, 0.97), (50, 9, 0.99), (8, 9, 0.1)])
    assert fire.explanation == (
        "Complaints about billing: 42/min vs ~9.0/min expected since 22:14 UTC (score 0.97)"
    )
    assert res.explanation == (
        "Complaints about billing back to normal: 8.0/min vs ~9.0/min expected;"
        " episode 22:14–22:17 UTC, peak 50/min"
    )
    assert fire.alert_type == res.alert_type == "complaint_spike"
    assert fire.labels == {"reason": "billing"}


def test_onset_dates_the_episode() -> None:
    tr = EpisodeTracker("s")
    ev = tr.step(T0 + 300, T0 + 360, 9, 1, 0.99, onset=T0 + 120)
    assert ev is not None and ev.episode_start == T0 + 120
    assert ev.alert_id == alert_id("s", T0 + 120)


def test_clear_threshold_hysteresis() -> None:
    tr = EpisodeTracker("s", threshold=0.9, clear_threshold=0.5, clear_steps=1)
    assert [e.kind for e in run(tr, [(9, 1, 0.95), (9, 1, 0.6), (9, 1, 0.6)])] == ["firing"]
    assert [e.kind for e in run(tr, [(9, 1, 0.4)])] == ["resolved"]
