"""Example downstream consumer of ``cx.notifications`` (confluent-kafka).

Delivery is at-least-once: after a crash or rebalance the same CloudEvent can arrive again.
Every cxpulse notification id is derived from its cause, so deduplicating on ``id`` (here a
bounded LRU; use a database unique key in production) gives effectively-once handling. Offsets
are committed only *after* a message was handled, so nothing is lost.

Run: ``python examples/notification_consumer.py --bootstrap 127.0.0.1:9092``.
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from typing import Any

from confluent_kafka import Consumer, KafkaError

from schemas.cloudevents import CloudEventError, decode


class SeenIds:
    """Bounded LRU of event ids already handled."""

    def __init__(self, max_ids: int = 100_000) -> None:
        self.max_ids = max_ids
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; return False when it was already seen."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        return True


def handle(event: dict[str, Any]) -> None:
    """Your side effect: send the e-mail/push/ticket. Must be safe to retry."""
    print(event["type"], event["id"], event.get("subject"), event["data"].get("customer_id"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="cx.notifications")
    ap.add_argument("--group", default="cx-notification-example")
    args = ap.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([args.topic])
    seen = SeenIds()
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print("kafka error:", msg.error())
                continue
            try:
                event = decode(msg.value() or b"")
            except CloudEventError as exc:
                print("skipping invalid event:", exc)
            else:
                if seen.add(event["id"]):
                    handle(event)
            consumer.commit(message=msg, asynchronous=False)  # after handling
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
