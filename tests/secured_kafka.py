"""A local broker secured like a managed Kafka: SASL/SCRAM-SHA-512 over TLS, with a throwaway CA.

Certificates are made with ``cryptography``; clients verify the broker as they would a managed
one, against a CA file with host name checking on, so the broker certificate names
``localhost`` and ``127.0.0.1``. The SCRAM password is random per session, so finding it in any
output is a leak, never a coincidence.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from deploy.local.kafka import KafkaBroker, SaslSslListener
from deploy.local.processes import free_port
from streams.settings import Settings
from tests.kafka_harness import isolated_settings

VALIDITY = datetime.timedelta(days=2)
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_USER = "cxpulse-test"


@dataclass(frozen=True)
class BrokerCertificates:
    ca_file: Path  # PEM certificate of the CA: what clients trust (CXPULSE_SSL_CAFILE)
    keystore: Path  # PEM private key (PKCS#8, unencrypted) + certificate chain: what the broker serves


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue_broker_certificates(folder: Path, host: str = "127.0.0.1") -> BrokerCertificates:
    """Create a CA and a broker certificate for ``host`` (and localhost) signed by it, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    # Backdated a little: a clock a few seconds behind must not see a certificate from the future.
    not_before = now - datetime.timedelta(minutes=5)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_subject = _name("cxpulse test CA")
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    broker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alternative_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alternative_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alternative_names.append(x509.DNSName(host))
    broker_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_subject)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_certificate.public_bytes(pem))
    keystore = folder / "broker-keystore.pem"
    keystore.write_bytes(
        broker_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + broker_certificate.public_bytes(pem)
        + ca_certificate.public_bytes(pem)
    )
    keystore.chmod(0o600)
    return BrokerCertificates(ca_file=ca_file, keystore=keystore)


@dataclass
class SecuredKafka:
    broker: KafkaBroker
    ca_file: Path
    username: str
    password: str

    def settings(self, data_dir: Path, **overrides: Any) -> Settings:
        """One test's isolated settings on the SASL_SSL listener, credentials included; topics not created."""
        values: dict[str, Any] = {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_username": self.username,
            "sasl_password": SecretStr(self.password),
            "ssl_cafile": self.ca_file,
        }
        return isolated_settings(self.broker.secured_bootstrap, data_dir, create=False, **(values | overrides))


def start_secured_broker(folder: Path) -> SecuredKafka:
    """A broker whose clients must come over TLS with a SCRAM user (controller traffic stays PLAINTEXT)."""
    certificates = issue_broker_certificates(folder / "tls")
    password = secrets.token_urlsafe(18)
    listener = SaslSslListener(free_port(), certificates.keystore, {SCRAM_USER: password}, SCRAM_MECHANISM)
    broker = KafkaBroker(folder / "kafka", port=free_port(), controller_port=free_port(), secured=listener)
    broker.start()
    return SecuredKafka(broker, certificates.ca_file, SCRAM_USER, password)
