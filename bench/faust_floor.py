"""Faust's own floor: a worker whose agents do nothing, draining the bench's input topics.

Started by :mod:`bench.bench_pipeline` as ``python -m bench.faust_floor worker``; configured by
environment (``FLOOR_TOPICS``, ``FLOOR_TARGET``, ``FLOOR_APP_ID``, ``FLOOR_BOOTSTRAP``,
``FLOOR_WEB_PORT``, ``FLOOR_DATADIR``). It prints one ``FLOOR <messages> <seconds> <CPU seconds>`` line when
``FLOOR_TARGET`` messages were consumed (timed from the first) and exits. Configured like the
real worker (raw bytes, earliest offsets, the pinned Faust patches, uvloop, the worker's stream
buffer, its scrape-time Prometheus monitor and its Faust ``Worker`` without the terminal spinner:
``streams.app``); ``FLOOR_STOCK=1`` runs stock
Faust instead (asyncio loop, Faust's defaults and its per-message Prometheus monitor), the
"before" of the README's performance table.
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry

STOCK = os.environ.get("FLOOR_STOCK") == "1"
#: Ablation: leave out some of the worker's tuning (comma-separated: patch, uvloop, buffer, monitor, spinner).
WITHOUT = (
    set(os.environ.get("FLOOR_WITHOUT", "").split(","))
    if not STOCK
    else {"patch", "uvloop", "buffer", "monitor", "spinner"}
)
_tuning: dict[str, Any] = {}
if not STOCK:  # imported only when used, so a stock run works on a checkout without them
    from streams.app import faust_tuning, use_uvloop
    from streams.faust_patches import apply as patch_faust

    if "patch" not in WITHOUT:
        patch_faust()
    if "uvloop" not in WITHOUT:
        use_uvloop()
    if "buffer" not in WITHOUT:
        _tuning = faust_tuning()

app = faust.App(
    os.environ.get("FLOOR_APP_ID", "cxpulse-floor"),
    broker=f"kafka://{os.environ.get('FLOOR_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    web_port=int(os.environ.get("FLOOR_WEB_PORT", "6099")),
    datadir=os.environ.get("FLOOR_DATADIR", "var/faust-floor"),
    consumer_auto_offset_reset="earliest",
    **_tuning,
)
_metrics = FaustMetrics.create(CollectorRegistry(), "faust")
if "monitor" in WITHOUT:
    app.monitor = PrometheusMonitor(metrics=_metrics)
else:
    from streams.faust_monitor import ScrapeTimeMonitor

    app.monitor = ScrapeTimeMonitor(metrics=_metrics)
_TARGET = int(os.environ.get("FLOOR_TARGET", "0"))
_seen = {"n": 0, "t0": 0.0, "cpu0": 0.0}


async def _count(stream: Any) -> None:
    async for _event in stream.events():
        if _seen["n"] == 0:
            _seen["t0"] = time.perf_counter()
            _seen["cpu0"] = time.process_time()
        _seen["n"] += 1
        if _seen["n"] >= _TARGET:
            cpu = time.process_time() - _seen["cpu0"]
            print(f"FLOOR {_seen['n']} {time.perf_counter() - _seen['t0']:.3f} {cpu:.3f}", flush=True)
            os._exit(0)  # the measurement is all we came for


for _name in filter(None, os.environ.get("FLOOR_TOPICS", "").split(",")):
    _topic = app.topic(_name, key_serializer="raw", value_serializer="raw")
    app.agent(_topic, name=f"floor.{_name}")(_count)

if __name__ == "__main__":
    if "spinner" in WITHOUT:
        app.main()  # Faust's command line (``worker -l warn``): its spinner sets the root logger to DEBUG
    else:
        from streams.app import faust_worker

        faust_worker(app, "warning").execute_from_commandline()
