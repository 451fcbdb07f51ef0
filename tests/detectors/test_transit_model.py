"""Transit model: statistics, silence limit, slowness reaction, prediction calibration."""

import math
import random

import pytest

from detectors.transit_model import LogStat, TransitModel

H = 3600.0


def test_logstat_geometric_mean_and_quantile() -> None:
    s = LogStat(alpha=0.001)
    rng = random.Random(1)
    for _ in range(5000):
        s.update(rng.lognormvariate(math.log(10), 0.5))
    assert math.exp(s.mean) == pytest.approx(10, rel=0.05)
    assert s.quantile(0.5) == pytest.approx(10, rel=0.05)
    assert LogStat.from_dict(s.to_dict()).mean == s.mean


def _train(m: TransitModel, n: int, slow: float = 1.0, t0: float = 0.0, seed: int = 3) -> None:
    rng = random.Random(seed)
    for i in range(n):
        t = t0 + i * 600.0
        legs = [rng.lognormvariate(math.log(10), 0.2) * slow for _ in range(3)]
        m.observe_scan("dhl", "north", "shipped", t, t + legs[0] * H, 1)
        m.observe_scan("dhl", "north", "in_transit", t + legs[0] * H,
                       t + (legs[0] + legs[1]) * H, 2)
        m.observe_delivery("dhl", "north", [("shipped", t), ("in_transit", t + legs[0] * H)],
                           t + sum(legs) * H)


def test_prediction_and_slowness() -> None:
    m = TransitModel()
    _train(m, 300)
    assert m.silence_limit_s("dhl", "north", "shipped", 1) / H == pytest.approx(13.9, rel=0.15)
    order = {"carrier": "dhl", "region": "north", "shipped": 0.0, "last_ts": 0.0,
             "last_status": "shipped", "n_scans": 1, "promised_by": 45 * H}
    p = m.predict_delivery(order, now=1.0)
    assert p.predicted_ts is not None and 25 * H < p.predicted_ts < 35 * H
    assert p.confidence < 0.05
    # silence raises the prediction and the lateness probability (the monitor's silence rule,
    # not this probability, is what notifies a merely silent order)
    q = m.predict_delivery(order, now=30 * H)
    assert q.predicted_ts is not None and q.predicted_ts > p.predicted_ts
    assert q.confidence > p.confidence and any("no scan" in e for e in q.evidence)
    assert q.silence_s > 2 * q.silence_limit_s
    assert m.recent_shift("dhl", "north") == 0.0
    _train(m, 30, slow=2.0, t0=300 * 600.0, seed=4)
    assert m.recent_shift("dhl", "north") > 0.3
    assert m.slowness_factor("dhl", "north") > 1.5


def test_unknown_carrier_region_falls_back_or_abstains() -> None:
    m = TransitModel()
    order = {"carrier": "x", "region": "y", "last_ts": 0.0, "last_status": "shipped",
             "n_scans": 1, "promised_by": 10 * H}
    assert m.predict_delivery(order, 5 * H).predicted_ts is None
    _train(m, 100)
    assert m.predict_delivery(order, 5 * H).predicted_ts is not None


def test_lanes_are_bounded_whatever_the_carriers_and_regions() -> None:
    m = TransitModel(max_carriers=3, max_regions=2, regression_warmup=10)
    for i in range(2000):  # free-text carriers and regions, every order a new pair
        carrier, region, t = f"carrier-{i}", f"region-{i % 977}", i * 600.0
        m.observe_scan(carrier, region, "created", t - H, t, 0)
        m.observe_scan(carrier, region, "shipped", t, t + 10 * H, 1)
        m.mark_silent(carrier, region, f"o{i}", t)
        m.observe_delivery(carrier, region, [("shipped", t), ("out_for_delivery", t + 30 * H)], t + 32 * H)
    lanes = {k for k in m.transit if "/" in k}
    assert len(lanes) <= 4 * 3 and "other/other" in lanes
    assert set(m.transit) - lanes <= {"carrier-0", "carrier-1", "carrier-2", "other", "*"}
    whats = {key.split("/", 1)[0] for key in m.samples}
    assert len(m.samples) <= len(whats) * (4 * 3 + 4 + 1)
    assert len(m.silent) <= 4 * 3 and len(m.slowness) <= 4 * 3
    # the regression's one-hot carriers are the bounded ones too
    weights = m.regressor.model["LinearRegression"].weights if m.regressor else {}
    carriers = {k.split("_", 1)[1] for k in weights if k.startswith("carrier_") and "weekday" not in k}
    assert carriers <= {"carrier-0", "carrier-1", "carrier-2", "other"}
    assert len([k for k in weights if k.startswith("carrier_weekday_")]) <= 4 * 7
    # an unseen carrier past the bound is predicted from the pooled lane
    order = {"carrier": "carrier-new", "region": "region-new", "shipped": 0.0, "last_ts": 0.0,
             "last_status": "shipped", "n_scans": 1, "promised_by": 45 * H}
    assert m.predict_delivery(order, now=1.0).predicted_ts is not None
