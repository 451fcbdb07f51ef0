"""Throughput of MetricAnomalyDetector.update for one series (updates per second).

Run: .venv/bin/python bench/bench_detectors_metric.py [n]
"""

from __future__ import annotations

import math
import random
import sys
import time

from detectors.metric_anomaly import MetricAnomalyDetector


def bench(n: int = 200_000, with_time: bool = True) -> float:
    rng = random.Random(0)
    values = [50 + 10 * math.sin(i / 40) + rng.gauss(0, 2) for i in range(n)]
    detector = MetricAnomalyDetector()
    started = time.perf_counter()
    for i, v in enumerate(values):
        detector.update(v, 1_700_000_000.0 + 300.0 * i if with_time else None)
    return n / (time.perf_counter() - started)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for with_time in (False, True):
        print(f"with_time={with_time}: {bench(n, with_time):,.0f} updates/s per series")
