"""``cxpulse tail``: print output events as they arrive, for people and demos."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import orjson

from streams.settings import Settings
from streams.topics import Topic, client_config, topic_names

#: What can be tailed: the output topics.
TAILABLE = (Topic.NOTIFICATIONS, Topic.ALERTS, Topic.DEADLETTER)


def format_record(what: str, value: bytes, headers: dict[str, bytes]) -> str:
    """One line a person can read: CloudEvents by type/subject/data, dead letters by reason."""
    if what == "deadletter":
        reason = headers.get("cxpulse-reason", b"?").decode()
        error = headers.get("cxpulse-error", b"").decode(errors="replace")
        return f"{reason}: {error} | {value[:200]!r}"
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"(undecodable) {value[:200]!r}"
    data = event.get("data") or {}
    summary = data.get("explanation") or data.get("summary") or ""
    return (
        f"{event.get('time', '?')} {event.get('type', '?')} subject={event.get('subject')} "
        f"id={event.get('id')} {summary}\n    {orjson.dumps(data).decode()[:600]}"
    )


def tail_topic(settings: Settings, what: str, from_beginning: bool = False, limit: int = 0) -> int:
    from confluent_kafka import Consumer

    if what not in TAILABLE:
        raise SystemExit(f"unknown stream {what!r}; choose one of {', '.join(TAILABLE)}")
    topic = topic_names(settings)[Topic(what)]
    consumer = Consumer(
        client_config(settings)
        | {
            # A throwaway group: tailing never moves a real consumer's offsets.
            "group.id": f"cxpulse-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    shown = 0
    try:
        while not limit or shown < limit:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            pairs: list[tuple[str, Any]] = list(msg.headers() or [])  # type: ignore[arg-type]
            headers = {key: value for key, value in pairs if isinstance(value, bytes)}
            print(format_record(what, msg.value() or b"", headers), flush=True)
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    sys.stdout.flush()
    return shown
