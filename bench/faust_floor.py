"""Faust's own floor: a worker whose agents do nothing, draining the bench's input topics.

Started by :mod:`bench.bench_pipeline` as ``python -m bench.faust_floor worker``; configured by
environment (``FLOOR_TOPICS``, ``FLOOR_TARGET``, ``FLOOR_APP_ID``, ``FLOOR_BOOTSTRAP``,
``FLOOR_WEB_PORT``, ``FLOOR_DATADIR``). It prints one ``FLOOR <messages> <seconds>`` line when
``FLOOR_TARGET`` messages were consumed (timed from the first) and exits. Same Faust settings
as the real worker for consumption (raw bytes, earliest offsets, Faust's default sensors).
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust

app = faust.App(
    os.environ.get("FLOOR_APP_ID", "cxpulse-floor"),
    broker=f"kafka://{os.environ.get('FLOOR_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    web_port=int(os.environ.get("FLOOR_WEB_PORT", "6099")),
    datadir=os.environ.get("FLOOR_DATADIR", "var/faust-floor"),
    consumer_auto_offset_reset="earliest",
)
_TARGET = int(os.environ.get("FLOOR_TARGET", "0"))
_seen = {"n": 0, "t0": 0.0}


async def _count(stream: Any) -> None:
    async for _event in stream.events():
        if _seen["n"] == 0:
            _seen["t0"] = time.perf_counter()
        _seen["n"] += 1
        if _seen["n"] >= _TARGET:
            print(f"FLOOR {_seen['n']} {time.perf_counter() - _seen['t0']:.3f}", flush=True)
            os._exit(0)  # the measurement is all we came for


for _name in filter(None, os.environ.get("FLOOR_TOPICS", "").split(",")):
    _topic = app.topic(_name, key_serializer="raw", value_serializer="raw")
    app.agent(_topic, name=f"floor.{_name}")(_count)

if __name__ == "__main__":
    app.main()
