"""Behaviour of MetricAnomalyDetector on synthetic series."""

from __future__ import annotations

import math
import random

import pytest

from detectors import DetectorError, MetricAnomalyDetector

T0 = 1_600_000_000.0  # a Sunday; 5-minute steps below
STEP = 300.0


def noisy(n: int, seed: int, level: float = 10.0, sd: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sd) for _ in range(n)]


def run(values: list[float], with_time: bool = False) -> list[float]:
    detector = MetricAnomalyDetector()
    return [
        detector.update(v, T0 + STEP * i if with_time else None) for i, v in enumerate(values)
    ]


def test_grace_period_scores_zero() -> None:
    values = noisy(400, seed=1)
    values[50] = 1000.0  # would be an anomaly, but the model is still warming up
    scores = run(values)
    assert scores[: MetricAnomalyDetector().grace_period] == [0.0] * 150


@pytest.mark.parametrize("with_time", [False, True])
def test_spike_after_warm_up_scores_higher_than_normal_points(with_time: bool) -> None:
    values = noisy(1500, seed=2)
    values[1200] = 25.0
    scores = run(values, with_time)
    normal = scores[300:1200]
    assert scores[1200] >= 0.5
    assert scores[1200] > max(normal)
    assert max(normal) < 0.5  # and the quiet part raised no alarm


def test_level_shift_is_flagged() -> None:
    values = noisy(1500, seed=3) + noisy(300, seed=4, level=20.0)
    scores = run(values)
    assert max(scores[1500:1510]) >= 0.5
    assert max(scores[1500:1510]) > max(scores[300:1500])
    assert sum(s >= 0.5 for s in scores[300:1500]) <= 1  # Gaussian noise: at most a stray alarm


def test_downward_level_shift_is_flagged() -> None:
    values = noisy(1500, seed=5, level=100.0, sd=2.0) + noisy(300, seed=6, level=60.0, sd=2.0)
    scores = run(values)
    assert max(scores[1500:1510]) >= 0.5


def test_trend_alone_does_not_keep_firing() -> None:
    rng = random.Random(7)
    values = [0.05 * i + rng.gauss(0.0, 1.0) for i in range(3000)]
    scores = run(values)
    # A rising series keeps setting new maxima, but only by tiny margins: no alarm storm.
    assert sum(s >= 0.5 for s in scores[300:]) <= 3


def test_strong_daily_seasonality_alone_does_not_keep_firing() -> None:
    rng = random.Random(8)
    per_day = 288
    values = [
        50.0 + 20.0 * math.sin(2 * math.pi * i / per_day) + rng.gauss(0.0, 1.0)
        for i in range(14 * per_day)
    ]
    scores = run(values, with_time=True)
    alarms = sum(s >= 0.5 for s in scores[3 * per_day :])
    assert alarms <= 3  # 11 days of the same daily wave: at most a stray alarm or two


def test_daily_square_wave_with_time_is_learnt() -> None:
    rng = random.Random(9)
    per_day = 288
    values = [
        (80.0 if i % per_day > per_day // 2 else 20.0) + rng.gauss(0.0, 1.0)
        for i in range(14 * per_day)
    ]
    scores = run(values, with_time=True)
    assert sum(s >= 0.5 for s in scores[3 * per_day :]) <= 2


@pytest.mark.parametrize(
    "values",
    [
        [5.0] * 2000 + [6.0] + [5.0] * 100,  # flat line, then a blip
        [0.0] * 500 + [1e12] * 10 + [-1e12] * 10 + [0.0] * 200,
        [random.Random(10).paretovariate(1.0) for _ in range(3000)],  # heavy tails
        [(-1.0) ** i * 1e-9 for i in range(1000)],  # tiny values
    ],
)
def test_scores_always_in_unit_interval(values: list[float]) -> None:
    for with_time in (False, True):
        scores = run(values, with_time)
        assert len(scores) == len(values)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert all(math.isfinite(s) for s in scores)


def test_flat_line_blip_is_flagged() -> None:
    scores = run([5.0] * 2000 + [6.0] + [5.0] * 100)
    assert scores[2000] >= 0.5
    assert max(scores[:2000]) < 0.1


def test_reproducible_with_the_same_input() -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(0.0, 1.0) for _ in range(3000)]
    assert run(values, with_time=True) == run(values, with_time=True)


def test_score_one_does_not_learn_and_update_scores_first() -> None:
    detector = MetricAnomalyDetector()
    for i, v in enumerate(noisy(600, seed=12)):
        detector.learn_one(v, T0 + STEP * i)
    t = T0 + STEP * 600
    first = detector.score_one(30.0, t)
    assert detector.score_one(30.0, t) == first
    assert detector.update(30.0, t) == first
    assert first >= 0.5


def test_detection_suppresses_repeated_alarms() -> None:
    values = noisy(1500, seed=13)
    for i in range(1200, 1260):  # a burst of noise right after a clear spike
        values[i] = 10.0 + random.Random(i).gauss(0.0, 4.0)
    values[1200] = 40.0
    scores = run(values)
    assert scores[1200] >= 0.5
    assert sum(s >= 0.5 for s in scores[1201:1300]) <= 2  # the burst stays mostly quiet


def test_state_stays_bounded() -> None:
    detector = MetricAnomalyDetector(window=200, history=300, range_window=400)
    rng = random.Random(14)
    for i in range(20_000):
        detector.update(rng.gauss(0.0, 1.0) + i * 0.01, T0 + STEP * i)
    assert len(detector._values._sorted) == 200
    assert len(detector._likelihood._means) == 300
    assert len(detector._range._highs) <= 400
    assert len(detector._range._lows) <= 400
    assert len(detector._season) <= 168 + 24


def test_constructor_stores_parameters_under_their_names() -> None:
    detector = MetricAnomalyDetector(grace_period=7, alpha=0.2, suppress=9, tolerance=0.1)
    assert (detector.grace_period, detector.alpha, detector.suppress) == (7, 0.2, 9)
    assert detector.tolerance == 0.1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected_without_corrupting_state(bad: float) -> None:
    detector = MetricAnomalyDetector()
    for v in noisy(300, seed=15):
        detector.update(v)
    before = detector.score_one(10.0)
    with pytest.raises(DetectorError):
        detector.update(bad)
    with pytest.raises(DetectorError):
        detector.score_one(bad)
    assert detector.score_one(10.0) == before
