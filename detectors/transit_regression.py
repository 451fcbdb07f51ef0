"""Online regression of transit times (River): when, and with whom, the order shipped.

:class:`TransitRegressor` learns how much longer or shorter than its lane's usual transit an
order takes (shipped -> delivered, in log hours) from what is known the moment it ships: the
weekday and hour of day it shipped (the hour as a cyclic encoding, so 23:00 is next to 00:00),
the carrier and the carrier's weekday (carriers differ in weekend operations). It is a River
pipeline (one-hot and standard scaling into a linear regression) trained one order at a time,
with no training phase.

Why a correction and not the whole transit time: the lane's own running mean (kept by
:class:`detectors.transit_model.TransitModel`) is an exact, cheap location; a weekday or hour the
regression has not seen yet then means "no correction" instead of a biased guess, which matters
in a deployment's first week.

The prediction shifts the *location* of the order's log-normal transit distribution; the spread
is the exponentially weighted variance of the corrected model's prequential residuals (each order
is predicted before it is learnt from). The order's progress so far enters the delay prediction
by conditioning that distribution on what has (not) happened yet: see
:meth:`detectors.transit_model.TransitModel.predict_delivery`.
"""

from __future__ import annotations

import math

from river import compose, linear_model, optim, preprocessing, stats

HOUR = 3600.0
DAY = 86400.0
_NUMERIC = ("hour_sin", "hour_cos")
_CATEGORIES = ("weekday", "carrier", "carrier_weekday")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def ship_features(carrier: str, shipped: float) -> dict[str, float | str]:
    """Features of an order known when it ships (``shipped`` is epoch seconds, UTC).

    Examples
    --------
    >>> f = ship_features("dhl", 0.0)  # 1970-01-01 00:00 UTC, a Thursday
    >>> f["carrier_weekday"], round(f["hour_sin"], 6), round(f["hour_cos"], 6)
    ('dhl/thu', 0.0, 1.0)
    """
    day_angle = 2 * math.pi * ((shipped % DAY) / DAY)
    weekday = _WEEKDAYS[int((shipped // DAY + 3) % 7)]  # 1970-01-01 was a Thursday
    return {
        "weekday": weekday, "carrier": carrier, "carrier_weekday": f"{carrier}/{weekday}",
        "hour_sin": math.sin(day_angle), "hour_cos": math.cos(day_angle),
    }


class TransitRegressor:
    """Online correction of log transit hours by ship weekday, hour and carrier.

    Parameters
    ----------
    warmup : int
        Orders learnt before :meth:`predict_one` answers (until then it returns None and the
        caller uses its lane statistics alone).
    learning_rate : float
        SGD step size of the linear regression.
    l2 : float
        L2 penalty of the regression weights.
    spread_fading : float
        Fading factor of the exponentially weighted residual variance.
    min_sigma : float
        Floor of the returned log-spread.

    Examples
    --------
    Orders shipped on Saturday take a day longer (no line haul on Sunday); the lane's average
    cannot tell, the regression learns it:

    >>> import random
    >>> rng = random.Random(3)
    >>> reg = TransitRegressor(warmup=50)
    >>> lane_mean = math.log(52.0)  # what the lane's running mean settles at
    >>> for i in range(3000):
    ...     shipped = 4 * DAY + i * 7 * HOUR  # from Monday 1970-01-05
    ...     saturday = ship_features("dhl", shipped)["weekday"] == "sat"
    ...     hours = (48 + (24 if saturday else 0)) * rng.lognormvariate(0.0, 0.1)
    ...     reg.learn_one("dhl", shipped, math.log(hours) - lane_mean)
    >>> monday, sigma = reg.predict_one("dhl", 4 * DAY + 12 * HOUR)
    >>> saturday, _ = reg.predict_one("dhl", 9 * DAY + 12 * HOUR)
    >>> round(math.exp(lane_mean + monday) / 4) * 4, round(math.exp(lane_mean + saturday) / 4) * 4
    (48, 72)
    >>> sigma < 0.15
    True
    >>> TransitRegressor().predict_one("dhl", 0.0) is None
    True
    """

    def __init__(
        self,
        warmup: int = 200,
        learning_rate: float = 0.002,
        l2: float = 0.0,
        spread_fading: float = 0.01,
        min_sigma: float = 0.05,
    ) -> None:
        self.warmup = warmup
        self.learning_rate = learning_rate
        self.l2 = l2
        self.spread_fading = spread_fading
        self.min_sigma = min_sigma
        numeric = compose.Select(*_NUMERIC) | preprocessing.StandardScaler()
        categories = compose.Select(*_CATEGORIES) | preprocessing.OneHotEncoder()
        self.model = (numeric + categories) | linear_model.LinearRegression(
            optimizer=optim.SGD(learning_rate), l2=l2, intercept_lr=learning_rate
        )
        self.residuals = stats.EWVar(fading_factor=spread_fading)
        self.n = 0

    def learn_one(self, carrier: str, shipped: float, log_excess: float) -> None:
        """Learn one delivered order: its log transit hours minus its lane's usual (mean)."""
        x = ship_features(carrier, shipped)
        if self.n > 0:  # prequential residual: predicted before learnt from
            self.residuals.update(log_excess - float(self.model.predict_one(x)))
        self.model.learn_one(x, log_excess)
        self.n += 1

    def predict_one(self, carrier: str, shipped: float) -> tuple[float, float] | None:
        """``(correction, sigma)`` in log hours for an order shipped at ``shipped``; None while
        warming up."""
        if self.n < self.warmup:
            return None
        delta = float(self.model.predict_one(ship_features(carrier, shipped)))
        return delta, max(math.sqrt(max(self.residuals.get(), 0.0)), self.min_sigma)
