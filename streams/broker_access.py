"""Telling a broker that refuses us from one that is not there, for both Kafka clients.

librdkafka (confluent-kafka) and aiokafka treat a failed SASL handshake or TLS verification
like a broker that is down: they log it and retry, so ``cxpulse topics create``, ``tail`` and
``simulate`` would wait out their timeouts and the worker would die with "Unable to
bootstrap". Wrong credentials and untrusted certificates are settings to fix, not outages to
wait out: here they become one :class:`BrokerAccessError` that says which settings to check
and never contains a secret.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

from streams.exceptions import BrokerAccessError
from streams.settings import Settings

WORKER_CHECK_TIMEOUT_S = 10.0
#: How long one metadata request may wait before a refusal gets a chance to surface.
METADATA_STEP_S = 1.0


def authentication_failed(settings: Settings, detail: str) -> BrokerAccessError:
    return BrokerAccessError(
        f"Kafka authentication failed: {settings.bootstrap_servers} refused SASL user {settings.sasl_username!r} "
        f"({settings.sasl_mechanism}). Check CXPULSE_SASL_USERNAME, CXPULSE_SASL_PASSWORD and "
        f"CXPULSE_SASL_MECHANISM. [{detail}]"
    )


def tls_failed(settings: Settings, detail: str) -> BrokerAccessError:
    trusted = settings.ssl_cafile or "the system's CA certificates"
    return BrokerAccessError(
        f"Kafka TLS handshake failed with {settings.bootstrap_servers} (trusting {trusted}). Check "
        "CXPULSE_SSL_CAFILE (the CA that signed the broker's certificate), that CXPULSE_BOOTSTRAP_SERVERS "
        f"uses a host name the certificate names, and that the port speaks TLS. [{detail}]"
    )


def librdkafka_error_callback(settings: Settings) -> Callable[[Any], None]:
    """An ``error_cb`` for confluent-kafka clients: raise on refusal, leave the rest to librdkafka.

    The exception comes out of the client's next ``poll``/``flush``/``list_topics`` call.
    """
    from confluent_kafka import KafkaError

    def raise_on_refusal(error: Any) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            raise authentication_failed(settings, error.str())
        if error.code() == KafkaError._SSL:
            raise tls_failed(settings, error.str())
        # Anything else (a broker restarting, a network blip) librdkafka retries and logs itself.

    return raise_on_refusal


def cluster_metadata(client: Any, timeout: float) -> Any:
    """``client.list_topics()`` of an admin client or producer made with :func:`librdkafka_error_callback`.

    Asked in short steps with ``poll`` in between: librdkafka hands a refusal only to the error
    callback, which runs in ``poll``, never during the request, so one long request would wait
    out ``timeout`` instead of raising :class:`BrokerAccessError`. (Not for a consumer: its
    ``poll`` consumes.)
    """
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.list_topics(timeout=max(0.1, min(METADATA_STEP_S, deadline - time.monotonic())))
        except KafkaException:
            client.poll(0)  # raises BrokerAccessError when the broker refused us
            if time.monotonic() >= deadline:
                raise


def check_worker_access(settings: Settings, timeout: float = WORKER_CHECK_TIMEOUT_S) -> None:
    """Connect once the way the worker's Kafka client (aiokafka, through Faust) will; raise if refused.

    A broker that cannot be reached passes: the worker's own start-up handles that as before.
    """
    if settings.security_protocol == "PLAINTEXT":
        return  # nothing to refuse
    # The worker's own stack, imported here: the confluent-kafka commands never need it.
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app import broker_credentials

    auth = credentials_to_aiokafka_auth(broker_credentials(settings))

    async def connect_to_first_reachable() -> None:
        for server in settings.bootstrap_servers.split(","):
            address = server.strip()
            host, _, port = address.rpartition(":") if ":" in address else (address, "", "9092")
            try:
                connection = await create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **auth)
            except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
                raise authentication_failed(settings, str(exc)) from None
            except ssl.SSLError as exc:  # before OSError, which it is
                raise tls_failed(settings, str(exc)) from None
            except (OSError, TimeoutError, KafkaError):
                continue  # not reachable: try the next one
            connection.close()
            return

    # A loop of its own: Faust's worker sets up the process's event loop afterwards.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(connect_to_first_reachable())
    finally:
        loop.close()
