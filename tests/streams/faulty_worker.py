"""``cxpulse`` with one bug planted in a detector of each input stream, for the hostile-input test.

``python -m tests.streams.faulty_worker worker ...`` runs the real worker, except that the
clickstream frustration detectors, the contacts detractor rule and the delivery delay monitor
raise :class:`PlantedBug` on an event whose ``event_id`` starts with :data:`TRIGGER`, and the
customers handler raises on a ``cx.signals`` record that mentions it (a complaint whose
``contact_id`` starts with it). That is how the test proves, on a real worker process, that a
bug of ours on one event dead-letters that event (reason ``processing_error``) and the agent
goes on, both where a handler catches it and where only the agent loop does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TRIGGER = "raise-in-detector"


class PlantedBug(RuntimeError):
    """The exception the planted bug raises."""


def _raising_on_trigger(method: Callable[..., Any]) -> Callable[..., Any]:
    def planted(self: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if event.event_id.startswith(TRIGGER):
            raise PlantedBug(f"planted bug on {event.event_id}")
        return method(self, event, *args, **kwargs)

    return planted


def _raising_on_mention(handle: Callable[..., Any]) -> Callable[..., Any]:
    def planted(self: Any, raw: bytes, *args: Any, **kwargs: Any) -> Any:
        if TRIGGER.encode() in raw:
            raise PlantedBug("planted bug on a signal")
        return handle(self, raw, *args, **kwargs)

    return planted


def plant_bugs() -> None:
    from detectors.contact_rules import DetractorRule
    from detectors.delivery_delay import DeliveryDelayMonitor
    from detectors.frustration import FrustrationSignals
    from streams.customers import CustomersHandler

    for cls in (FrustrationSignals, DetractorRule, DeliveryDelayMonitor):
        cls.process = _raising_on_trigger(cls.process)  # type: ignore[method-assign]
    CustomersHandler.handle = _raising_on_mention(CustomersHandler.handle)  # type: ignore[method-assign]


if __name__ == "__main__":
    # Imported by name, so the exception's type reads tests.streams.faulty_worker.PlantedBug.
    from streams.cli import main
    from tests.streams.faulty_worker import plant_bugs as plant

    plant()
    main()
