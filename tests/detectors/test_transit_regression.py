"""River transit regression: learns ship-time effects the lane statistics cannot, and the delay
model uses it."""

import math
import random

from detectors.transit_model import TransitModel
from detectors.transit_regression import TransitRegressor, ship_features

H = 3600.0
D = 86400.0
MONDAY = 4 * D  # 1970-01-05 00:00 UTC


def _saturday(shipped: float) -> bool:
    return ship_features("dhl", shipped)["weekday"] == "sat"


def _train(model: TransitModel, n: int = 3000, seed: int = 5) -> None:
    """Orders shipped on a Saturday wait a day (no Sunday line haul)."""
    rng = random.Random(seed)
    for i in range(n):
        shipped = MONDAY + i * 2.3 * H
        hours = (40.0 + (24.0 if _saturday(shipped) else 0.0)) * rng.lognormvariate(0.0, 0.1)
        model.observe_delivery("dhl", "north", [("shipped", shipped)], shipped + hours * H)


def _order(shipped: float) -> dict:
    return {"carrier": "dhl", "region": "north", "shipped": shipped, "last_ts": shipped,
            "last_status": "shipped", "n_scans": 1, "promised_by": shipped + 56 * H}


def test_regression_separates_weekdays_the_lane_statistics_cannot() -> None:
    with_reg, lane_only = TransitModel(), TransitModel(regression=False)
    for m in (with_reg, lane_only):
        _train(m)
    monday, saturday = MONDAY + 7 * D + 10 * H, MONDAY + 12 * D + 10 * H
    assert _saturday(saturday) and not _saturday(monday)
    p_mon = with_reg.predict_delivery(_order(monday), monday + 1.0)
    p_sat = with_reg.predict_delivery(_order(saturday), saturday + 1.0)
    # a 56 h promise: safe on Monday, likely missed on Saturday, as the model knows at ship time
    # (its spread is never narrower than the lane's, which the weekday effect widens)
    assert p_mon.confidence < 0.05 and p_sat.confidence > 0.6
    assert p_mon.predicted_ts is not None and p_mon.predicted_ts - monday < 45 * H
    assert p_sat.predicted_ts is not None and p_sat.predicted_ts - saturday > 58 * H
    lane_mon = lane_only.predict_delivery(_order(monday), monday + 1.0)
    lane_sat = lane_only.predict_delivery(_order(saturday), saturday + 1.0)
    assert math.isclose(lane_mon.confidence, lane_sat.confidence)


def test_no_correction_before_warm_up_or_for_an_unseen_weekday() -> None:
    reg = TransitRegressor(warmup=10)
    for i in range(9):
        reg.learn_one("dhl", MONDAY + i * H, 0.5)
    assert reg.predict_one("dhl", MONDAY) is None
    reg.learn_one("dhl", MONDAY + 9 * H, 0.5)
    learnt = reg.predict_one("dhl", MONDAY + 10 * H)
    assert learnt is not None and learnt[0] > 0.0
    # an unseen carrier on an unseen weekday gets only the (small) shared intercept
    other = reg.predict_one("ups", MONDAY + 3 * D)
    assert other is not None and abs(other[0]) < abs(learnt[0])
