"""``cxpulse replay``: reprocess history into a fresh consumer group.

When to use it: after a fix to a rule or a detector (the outputs of the past are recomputed
with the fixed code), for a backfill into a new output topic or a new downstream consumer, or
to check that a deployment gives the outputs of the live run. Alert and notification ids are
functions of their causes, so the replay's outputs carry the same ids as the live run's for the
same causes, and downstream consumers that deduplicate by id see nothing new unless the fix
changed an outcome.

How it works: the replay is an ordinary worker in a *new* consumer group (so the live group's
offsets and tables are untouched), with its own changelog topics (Faust names them after the
group) and its own internal signals and series topics ``<CXPULSE_TOPIC_SIGNALS>.<group>`` and
``<CXPULSE_TOPIC_SERIES>.<group>`` (so the live customers agent never sees replayed candidates,
nor the live series owners replayed partials). Before it starts, the group's start offsets
on the input topics are committed: the oldest retained record (``--from-beginning``) or the
first record at or after a time (``--from``). A replay ``--from`` a time starts without the
state of the events before it (open orders, contact histories, learned baselines): outputs
that depend on that history can differ from the live run, so use ``--from-beginning`` when the
ids must match, and ``--from`` for backfills where the recent past is what matters.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from streams.exceptions import ConfigurationError
from streams.settings import Settings
from streams.topics import INPUT_TOPICS, client_config, create_topics, topic_names

#: Kafka group ids and topic names allow letters, digits, ``.``, ``_`` and ``-``.
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def default_group(settings: Settings, now: float | None = None) -> str:
    """``<app_id>-replay-<UTC time>``: a new group per replay."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{settings.app_id}-replay-{stamp}"


def replay_settings(settings: Settings, group: str) -> Settings:
    """The worker settings of a replay into ``group``: its own group, signals and series topics."""
    if not _NAME.match(group):
        raise ConfigurationError(f"replay group {group!r}: use letters, digits, '.', '_' or '-' (at most 200)")
    if group == settings.app_id:
        raise ConfigurationError(f"replay group {group!r} is the live group (CXPULSE_APP_ID): choose a new name")
    return settings.model_copy(
        update={
            "app_id": group,
            "topic_signals": f"{settings.topic_signals}.{group}",
            "topic_series": f"{settings.topic_series}.{group}",
        }
    )


def prepare(settings: Settings, group: str, since: float | None, timeout: float = 30.0) -> Settings:
    """Check ``group`` is new, create its topics, commit its start offsets; return its settings.

    ``since`` None starts at the oldest retained record of every input partition.
    """
    from confluent_kafka import Consumer, TopicPartition

    replay = replay_settings(settings, group)
    names = topic_names(settings)
    inputs = [names[topic] for topic in INPUT_TOPICS]
    consumer = Consumer(client_config(replay) | {"group.id": group, "enable.auto.commit": False})
    try:
        partitions = [
            TopicPartition(name, p)
            for name in inputs
            for p in consumer.list_topics(name, timeout=timeout).topics[name].partitions
        ]
        committed = [tp for tp in consumer.committed(partitions, timeout=timeout) if tp.offset >= 0]
        if committed:
            raise ConfigurationError(
                f"consumer group {group!r} already has committed offsets: a replay needs a new group name"
            )
        if since is None:
            starts = [
                TopicPartition(tp.topic, tp.partition, consumer.get_watermark_offsets(tp, timeout=timeout)[0])
                for tp in partitions
            ]
        else:
            wanted = [TopicPartition(tp.topic, tp.partition, int(since * 1000)) for tp in partitions]
            starts = []
            for tp in consumer.offsets_for_times(wanted, timeout=timeout):
                # -1: nothing at or after the time in this partition; start at its end.
                offset = tp.offset if tp.offset >= 0 else consumer.get_watermark_offsets(tp, timeout=timeout)[1]
                starts.append(TopicPartition(tp.topic, tp.partition, offset))
        create_topics(replay, timeout=timeout)
        consumer.commit(offsets=starts, asynchronous=False)
    finally:
        consumer.close()
    return replay
