"""The worker's Faust ``Worker``: how it sets up logging."""

from __future__ import annotations

import logging

import faust
import pytest

from streams.app import faust_worker


@pytest.mark.parametrize("loglevel", ["warning", "info", "error"])
def test_the_worker_does_not_turn_debug_logging_on(loglevel: str) -> None:
    # Stock Faust sets the root logger to DEBUG for its terminal spinner at warning and above:
    # every debug call of aiokafka then builds a record per message. Ours keeps the level asked for.
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    try:
        worker = faust_worker(faust.App("cxpulse-test-logging"), loglevel)
        worker._setup_logging()
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
        assert root.getEffectiveLevel() == logging.getLevelName(loglevel.upper())
    finally:
        root.setLevel(saved_level)
        root.handlers[:] = saved_handlers
