"""Settings that cannot work fail at start-up, saying which variables to set and never echoing a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import Settings


def test_sasl_without_a_user_name_names_the_missing_settings_without_echoing_the_password():
    password = "p4ss-word-that-must-not-appear"
    with pytest.raises(ValidationError) as raised:
        Settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_password=password)
    message = str(raised.value)
    assert "CXPULSE_SECURITY_PROTOCOL=SASL_SSL needs CXPULSE_SASL_USERNAME" in message
    assert "CXPULSE_SASL_PASSWORD" not in message  # it is set
    assert password not in message


def test_sasl_needs_a_mechanism_both_kafka_clients_know():
    with pytest.raises(ValidationError, match="CXPULSE_SASL_MECHANISM"):
        Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    with pytest.raises(ValidationError, match="SCRAM-SHA-512"):
        Settings(security_protocol="SASL_SSL", sasl_mechanism="scram-sha-512", sasl_username="u", sasl_password="p")
