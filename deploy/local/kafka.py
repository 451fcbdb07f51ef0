"""Install, start, probe and stop a local single-node Apache Kafka broker (KRaft mode).

The broker comes from Maven Central: ``deploy/kafka/pom.xml`` pulls ``kafka_2.13`` and its
runtime dependencies, which Maven copies into a cache folder shared by every checkout on the
machine (keyed by the pom's hash), so only the first start downloads anything. The broker
runs on the machine's JDK 17 as a background process whose log and data live in a
project-local folder; a pid file makes ``start`` idempotent and ``stop`` exact. An optional
SASL_SSL listener (:class:`SaslSslListener`) makes it look like a managed Kafka to clients.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

from deploy import DEPLOY_DIR
from deploy.local import system_packages
from deploy.local.exceptions import KafkaRuntimeError, SystemPackageError
from deploy.local.processes import pid_alive, port_open, signal_group

KAFKA_DIR = DEPLOY_DIR / "kafka"
POM = KAFKA_DIR / "pom.xml"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def cache_root() -> Path:
    """Where downloaded artifacts are kept across checkouts (``CXPULSE_CACHE_DIR``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cxpulse"
    return Path(os.environ.get("CXPULSE_CACHE_DIR", default))


def libs_dir() -> Path:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_root() / f"kafka-{digest}" / "libs"


def _require_tools() -> None:
    """Java and Maven come from Debian's packages when missing."""
    try:
        system_packages.ensure(system_packages.KAFKA_TOOLS)
    except SystemPackageError as exc:
        raise KafkaRuntimeError(str(exc)) from exc

def install() -> Path:
    """Resolve the broker's jars once; return the folder holding them."""
    target = libs_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    _require_tools()
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={target}", "-DincludeScope=runtime",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KafkaRuntimeError(f"Maven could not resolve Kafka:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    marker.write_text("ok\n")
    return target


#: SCRAM credentials go to the storage tool as ``[name=...,password=...]``: these would cut a value short.
_SCRAM_UNSAFE = frozenset(',[]="')


@dataclass(frozen=True)
class SaslSslListener:
    """A client listener that speaks SASL/SCRAM over TLS, as managed Kafka services do.

    ``keystore`` is one PEM file holding the broker's unencrypted PKCS#8 private key and its
    certificate chain (read with ``ssl.keystore.type=PEM``). ``users`` maps SCRAM user names to
    passwords; they are written into the cluster metadata when the storage is formatted, so
    they exist before the first client connects (a broker formatted earlier keeps its users).
    """

    port: int
    keystore: Path
    users: Mapping[str, str]
    mechanism: str = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        if self.mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise KafkaRuntimeError(f"the local broker's SASL listener supports SCRAM only, not {self.mechanism}")
        for name, password in self.users.items():
            if _SCRAM_UNSAFE & set(name + password):
                raise KafkaRuntimeError(f"SCRAM user {name!r}: names and passwords may not contain any of , [ ] = \"")

    def scram_arguments(self) -> list[str]:
        """The storage tool's ``--add-scram`` arguments creating every user."""
        arguments: list[str] = []
        for name, password in self.users.items():
            arguments += ["--add-scram", f"{self.mechanism}=[name={name},password={password}]"]
        return arguments

    def config(self) -> str:
        """The broker settings of the ``SASL_SSL`` listener (Kafka names it after the protocol)."""
        mechanism = self.mechanism.lower()
        return "\n".join(
            [
                "# Client listener with SASL/SCRAM over TLS (KafkaBroker(secured=...)).",
                f"listener.name.sasl_ssl.sasl.enabled.mechanisms={self.mechanism}",
                f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.ssl.keystore.type=PEM",
                f"listener.name.sasl_ssl.ssl.keystore.location={self.keystore}",
            ]
        )


@dataclass
class KafkaBroker:
    """One local broker: ``data_dir`` holds its config, log, pid file and partitions."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    secured: SaslSslListener | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secured_bootstrap(self) -> str:
        """Where clients with credentials connect; only for a broker with a secured listener."""
        if self.secured is None:
            raise KafkaRuntimeError("this broker has no SASL_SSL listener")
        return f"{self.host}:{self.secured.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def pid(self) -> int | None:
        """The broker's pid if it is alive, else None (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        return pid

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return "stopped"
        state = "ready" if self.is_ready(timeout=3.0) else "starting"
        return f"{state} (pid {pid}) at {self.bootstrap}, data in {self.data_dir}"

    def is_ready(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request."""
        if not port_open(self.host, self.port):
            return False
        if self.secured is not None and not port_open(self.host, self.secured.port):
            return False
        from confluent_kafka.admin import AdminClient  # imported late: CLI start-up speed

        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=timeout)
        except Exception:  # any client error means "not ready yet"
            return False
        return True

    def _render_config(self) -> Path:
        template = Template((KAFKA_DIR / "server.properties.template").read_text())
        config = self.data_dir / "server.properties"
        secured = self.secured
        config.write_text(
            template.substitute(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.data_dir / "kraft-logs",
                secured_listeners=f",SASL_SSL://{self.host}:{secured.port}" if secured else "",
                secured_protocol_map=",SASL_SSL:SASL_SSL" if secured else "",
                secured_listener_config=secured.config() if secured else "",
            )
        )
        return config

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", "-cp", f"{libs}/*", *args]

    def start(self, wait: bool = True) -> None:
        """Format storage once, launch the broker in the background, wait until ready."""
        if self.pid() is not None:
            if wait:
                self.wait_ready()
            return
        for port in (self.port, self.controller_port, *([self.secured.port] if self.secured else [])):
            if port_open(self.host, port):
                raise KafkaRuntimeError(f"port {self.host}:{port} is taken by another process")
        libs = install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._render_config()
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            cluster_id = _base64_uuid()
            scram = self.secured.scram_arguments() if self.secured else []
            # The arguments carry SCRAM passwords: a failure reports the tool's output, never the command.
            # --cluster-id=ID in one argument: a random id may start with "-", which the tool's
            # argument parser would take for an option ("expected one argument").
            formatted = subprocess.run(
                self._java(
                    libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config), *scram
                ),
                capture_output=True,
                text=True,
            )
            if formatted.returncode != 0:
                output = formatted.stdout + formatted.stderr
                raise KafkaRuntimeError(f"formatting the broker's storage failed:\n{output}")
        heap = os.environ.get("CXPULSE_KAFKA_HEAP", "-Xms256m -Xmx768m").split()
        cmd = self._java(
            libs,
            *heap,
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}",
            "kafka.Kafka",
            str(config),
        )
        cmd.insert(1, "-XX:+UseG1GC")
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                tail = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
                raise KafkaRuntimeError(f"the broker exited during start-up; log tail:\n{tail}")
            if self.is_ready():
                return
            time.sleep(0.5)
        raise KafkaRuntimeError(f"the broker did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        if pid_alive(pid):
            signal_group(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True


def _base64_uuid() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
