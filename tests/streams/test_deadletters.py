"""Dead letters always fit what the producer sends, with the size budget behind them (no Kafka)."""

from __future__ import annotations

import hashlib

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from schemas import Rejection
from schemas.parsing import REASONS
from streams.deadletters import DeadLetter, Source, dead_letter, deadletter_headers, fit, processing_error
from streams.size_budget import DEADLETTER_HEADERS_BYTES, DEFAULT_BUDGET, SizeBudget, record_bytes

LONGEST_TOPIC = "t" * 249  # Kafka's longest topic name


def producer_estimate(letter: DeadLetter) -> int:
    """What aiokafka (Faust's producer) compares to ``max_request_size``."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(letter.key, letter.value, letter.headers)


def test_the_default_budget_numbers():
    budget = DEFAULT_BUDGET
    assert (budget.max_message_bytes, budget.input_record_bytes, budget.output_record_bytes) == (
        1_048_576,
        1_064_960,
        1_073_152,
    )
    assert SizeBudget.from_max_message_bytes(10_000).output_record_bytes == 10_000 + 16_384 + 8_192


def test_our_size_bound_is_at_least_the_producers_own_estimate():
    for key, value, headers in [
        (None, b"", []),
        (b"k" * 300, b"v" * 200_000, [("cxpulse-reason", b"too_large"), ("h", b"x" * 130)]),
    ]:
        assert record_bytes(key, len(value), headers) >= DefaultRecordBatchBuilder.estimate_size_in_bytes(
            key, value, headers
        )


def test_the_longest_possible_headers_fit_their_budget():
    rejection = Rejection("processing_error", "é" * 5000, b"", index=999_999)
    headers = deadletter_headers(rejection, "clickstream", LONGEST_TOPIC, 2**31 - 1, 2**63 - 1, "x." * 500)
    letter = fit(DeadLetter(b"k", b"v" * 2_000_000, headers, "processing_error"), 1_000_000)
    assert record_bytes(None, 0, letter.headers) <= DEADLETTER_HEADERS_BYTES


def test_a_dead_letter_of_any_record_the_input_topic_accepts_is_sent_whole():
    budget = DEFAULT_BUDGET
    key = b"customer-1"
    # The largest value an input topic takes with this key and no producer headers.
    value = b"x" * (budget.input_record_bytes - record_bytes(key, 0, []))
    source = Source("contacts", LONGEST_TOPIC, key, value, 3, 10**12)
    letter = dead_letter(
        Rejection("too_large", "message of 1064826 bytes exceeds 1048576", value), source, budget.output_record_bytes
    )
    assert (letter.reason, letter.value) == ("too_large", value)
    assert producer_estimate(letter) <= budget.output_record_bytes


def test_a_dead_letter_that_cannot_fit_is_truncated_with_size_and_digest():
    original = orjson.dumps({"event_id": "e" * 3_000_000})  # a compressed batch can carry this
    source = Source("contacts", "cx.contacts", b"c-1", original, 0, 42)
    limit = DEFAULT_BUDGET.output_record_bytes
    letter = dead_letter(Rejection("schema_violation", "event_id too long", original), source, limit)
    headers = dict(letter.headers)
    assert letter.reason == "too_large" and headers["cxpulse-reason"] == b"too_large"
    assert headers["cxpulse-original-size"] == str(len(original)).encode()
    assert headers["cxpulse-original-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert b"was schema_violation: event_id too long" in headers["cxpulse-error"]
    assert headers["cxpulse-source-offset"] == b"42" and letter.key == b"c-1"
    assert original.startswith(letter.value) and len(letter.value) > limit - DEADLETTER_HEADERS_BYTES
    assert producer_estimate(letter) <= record_bytes(letter.key, len(letter.value), letter.headers) <= limit


def test_truncating_again_keeps_the_first_size_and_digest():
    original = b"y" * 500_000
    letter = fit(DeadLetter(None, original, [("cxpulse-reason", b"invalid_json")], "invalid_json"), 100_000)
    again = fit(letter, 10_000)
    assert dict(again.headers)["cxpulse-original-sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert [name for name, _ in again.headers].count("cxpulse-original-size") == 1
    assert record_bytes(None, len(again.value), again.headers) <= 10_000


def test_processing_errors_name_the_exception_type():
    class DetectorBug(Exception):
        pass

    rejection = processing_error(DetectorBug("boom"), "processing created event", b"{}", 2)
    assert rejection.reason == "processing_error" in REASONS
    assert rejection.detail == f"processing created event: {__name__}.{DetectorBug.__qualname__}: boom"
    source = Source("deliveries", "cx.deliveries", b"o-1", b"[{}]", 1, 7)
    letter = dead_letter(rejection, source, DEFAULT_BUDGET.output_record_bytes, KeyError("x"))
    headers = dict(letter.headers)
    assert headers["cxpulse-exception-type"] == b"KeyError"
    assert headers["cxpulse-batch-index"] == b"2"
