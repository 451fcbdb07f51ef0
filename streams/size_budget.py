"""The one size budget of cxpulse, derived from ``CXPULSE_MAX_MESSAGE_BYTES``.

Every byte limit on the path of a record is computed here from that one setting, so they agree:
anything the broker accepts on an input topic can be dead-lettered whole, with its headers.

With the default ``CXPULSE_MAX_MESSAGE_BYTES`` = 1,048,576 (1 MiB):

=========================  ==========  ==========================================================
limit                      bytes       what it bounds
=========================  ==========  ==========================================================
``max_message_bytes``      1,048,576   the largest input value the worker parses; a larger value
                                       is dead-lettered as ``too_large``
``input_record_bytes``     1,064,960   = max_message_bytes + 16 KiB (the key, the producer's
                                       headers and the record-batch framing): ``max.message.bytes``
                                       of the input topics, and librdkafka's ``message.max.bytes``
                                       of cxpulse's own input producers (the simulator)
``output_record_bytes``    1,073,152   = input_record_bytes + 8 KiB (the dead-letter headers):
                                       ``max.message.bytes`` of every topic the worker writes
                                       (dead letters, signals, alerts, notifications), Faust's
                                       ``producer_max_request_size`` and its per-partition fetch
                                       size ``consumer_max_fetch_size``
=========================  ==========  ==========================================================

Why it holds: a dead letter is the input record's key and value (never its producer's headers)
plus cxpulse's own headers, which are bounded by construction (:mod:`streams.deadletters`) to
well under :data:`DEADLETTER_HEADERS_BYTES`. An input record the broker accepted uncompressed
is at most ``input_record_bytes`` with its framing, so its dead letter is at most
``output_record_bytes``: the worker's producer takes it and the dead-letter topic stores it.

What the budget cannot bound: a *compressed* input batch is checked by the broker after
compression, so a value of many megabytes that compresses well is accepted. Its dead letter
would not fit; it is written truncated to fit ``output_record_bytes``, with reason
``too_large``, its original size and the SHA-256 of the original bytes in headers
(:func:`streams.deadletters.fit`). Dead letters are never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.settings import Settings

#: Room in an input record beyond its value: key, the producer's own headers, record-batch framing.
INPUT_ENVELOPE_BYTES = 16 * 1024
#: Room for cxpulse's dead-letter headers (bounded well below this by streams.deadletters).
DEADLETTER_HEADERS_BYTES = 8 * 1024

#: Upper bounds of the record-batch framing of a one-record batch (Kafka record format v2), as the
#: producer estimates it: the 61-byte batch header, 21 bytes of record overhead, and a 5-byte varint
#: for each length (key, value, header count; a header's name and value).
_BATCH_HEADER_BYTES = 61
_RECORD_OVERHEAD_BYTES = 21
_VARINT_BYTES = 5


@dataclass(frozen=True, slots=True)
class SizeBudget:
    """The byte limits derived from ``max_message_bytes`` (see the module docstring)."""

    max_message_bytes: int
    input_record_bytes: int
    output_record_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> SizeBudget:
        return cls.from_max_message_bytes(settings.max_message_bytes)

    @classmethod
    def from_max_message_bytes(cls, max_message_bytes: int) -> SizeBudget:
        input_record_bytes = max_message_bytes + INPUT_ENVELOPE_BYTES
        return cls(max_message_bytes, input_record_bytes, input_record_bytes + DEADLETTER_HEADERS_BYTES)


#: The budget of the default ``CXPULSE_MAX_MESSAGE_BYTES``, for clients built without settings.
DEFAULT_BUDGET = SizeBudget.from_max_message_bytes(Settings.model_fields["max_message_bytes"].default)


def record_bytes(key: bytes | None, value_bytes: int, headers: Sequence[tuple[str, bytes]]) -> int:
    """Upper bound of the size of a one-record batch: what the producer and the broker compare to
    their limits (at least aiokafka's own estimate, which its ``max_request_size`` check uses)."""
    size = _BATCH_HEADER_BYTES + _RECORD_OVERHEAD_BYTES + 3 * _VARINT_BYTES + len(key or b"") + value_bytes
    for name, value in headers:
        size += 2 * _VARINT_BYTES + len(name.encode()) + len(value)
    return size
