"""The local broker's secured listener refuses SCRAM users the storage tool would garble."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.exceptions import KafkaRuntimeError
from deploy.local.kafka import SaslSslListener


@pytest.mark.parametrize("password", ["a,b", "a]b", "a=b", 'a"b', "a[b"])
def test_a_password_the_storage_tool_would_cut_short_is_refused(password: str):
    with pytest.raises(KafkaRuntimeError, match="may not contain"):
        SaslSslListener(9094, Path("keystore.pem"), {"cxpulse": password})


def test_every_user_becomes_one_scram_argument_of_the_listener_mechanism():
    listener = SaslSslListener(9094, Path("keystore.pem"), {"a": "pw-1", "b": "pw_2"}, "SCRAM-SHA-256")
    assert listener.scram_arguments() == [
        "--add-scram", "SCRAM-SHA-256=[name=a,password=pw-1]",
        "--add-scram", "SCRAM-SHA-256=[name=b,password=pw_2]",
    ]  # fmt: skip


def test_only_scram_mechanisms_are_offered():
    with pytest.raises(KafkaRuntimeError, match="SCRAM only"):
        SaslSslListener(9094, Path("keystore.pem"), {"a": "b"}, "PLAIN")
