"""`make bench`: every benchmark, one after the other, figures printed (no assertions).

Each benchmark reports medians of repeated runs; the worker-versus-ceiling ratio is measured
in one run on the same broker, so it is the figure to compare across machines.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

#: bench_pipeline's figures, read by bench_latency (50% of the measured maximum).
RESULTS = Path(tempfile.gettempdir()) / "cxpulse-bench-pipeline.json"

BENCHMARKS = (
    ("frustration signals, metric detector, series watcher, handler paths", ["-m", "bench.bench_detectors"]),
    ("metric anomaly detector (updates/s per series)", ["-m", "bench.bench_detectors_metric"]),
    ("delay notification lead time: monitor vs oracle", ["-m", "bench.bench_delay_lead"]),
    ("cardinality and memory floods: 1M sessions, customers, orders (in-process)", ["-m", "bench.bench_flood"]),
    (
        "worker end to end vs raw consumer ceiling, 1-3 processes (real Kafka)",
        ["-m", "bench.bench_pipeline", "--results", str(RESULTS)],
    ),
    (
        "append -> notification latency at 200 messages/s and at 50% of the maximum (real Kafka)",
        ["-m", "bench.bench_latency", "--max-from", str(RESULTS)],
    ),
)


def main() -> int:
    failed = 0
    for title, args in BENCHMARKS:
        print(f"\n=== {title}", flush=True)
        failed += subprocess.run([sys.executable, *args]).returncode != 0
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
