"""Run Prometheus and Alertmanager locally for cxpulse (Debian packages, loopback, project data).

Used by the CLI (``cxpulse prometheus|alertmanager start|stop``) and by the tests. Every process
started here:

* listens on 127.0.0.1 on the port it is given (Prometheus 9090 and Alertmanager 9093 by
  default), so it never collides with a system service as long as the ports differ;
* keeps its data, rendered config, log and pid file in a project-local data dir
  (default ``<CXPULSE_DATA_DIR>/prometheus`` and ``<CXPULSE_DATA_DIR>/alertmanager``);
* runs in its own session / process group, so :func:`stop` ends it and every child with it.

The committed configs (``deploy/prometheus/prometheus.yml`` and
``deploy/alertmanager/alertmanager.yml``) are the templates: they are loaded as YAML, the parts
that depend on the run (targets, ports, webhook URLs, rule file paths) are replaced, and the
result is written into the data dir.

Typical use::

    from deploy.local import monitoring as ops
    ops.ensure_installed()
    am = ops.start_alertmanager(port=ops.free_port(), data_dir=tmp / "am",
                                oncall_url="http://127.0.0.1:8001/oncall")
    prom = ops.start_prometheus(port=ops.free_port(), data_dir=tmp / "prom",
                                targets=["127.0.0.1:6066"], alertmanagers=[am.address])
    ...
    ops.stop(prom)
    ops.stop(am)
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deploy import DEPLOY_DIR
from deploy.local import system_packages
from deploy.local.exceptions import OpsError, SystemPackageError
from deploy.local.processes import free_port as free_port  # re-exported: callers use ops.free_port
from deploy.local.processes import pid_alive, port_open, signal_group

PROMETHEUS_DIR = DEPLOY_DIR / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_RULES = (
    PROMETHEUS_DIR / "rules" / "recording.yml",
    PROMETHEUS_DIR / "rules" / "alerts.yml",
)
ALERTMANAGER_CONFIG = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"

DEFAULT_HOST = "127.0.0.1"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
WORKER_JOB = "cxpulse"



@dataclass
class ManagedProcess:
    """A Prometheus or Alertmanager process started by this module."""

    name: str
    pid: int
    host: str
    port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """``host:port``, e.g. for an ``alertmanagers`` target list."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9090``."""
        return f"http://{self.address}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / f"{self.name}.pid"

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self)


# --------------------------------------------------------------------------- installation


def find_binary(tool: str) -> str | None:
    """Path of prometheus, promtool, alertmanager or amtool, or None."""
    return system_packages.find(tool)


def ensure_installed(*, install: bool = True) -> dict[str, str]:
    """Make sure prometheus, promtool, alertmanager and amtool exist; return tool -> path.

    Debian's maintainer scripts may try to start the system services; that is harmless for
    cxpulse, whose processes use their own ports and data dirs.
    """
    try:
        return system_packages.ensure(system_packages.MONITORING_TOOLS, install=install)
    except SystemPackageError as exc:
        raise OpsError(str(exc)) from exc


# --------------------------------------------------------------------------- helpers


def _default_data_dir(name: str) -> Path:
    from streams.settings import get_settings

    return Path(get_settings().data_dir) / name


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url``; (status, body). Status 0 when the server cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_ready(proc: ManagedProcess, timeout: float = 30.0) -> None:
    """Wait until ``proc`` answers ``/-/ready`` with 200; raise :class:`OpsError` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise OpsError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
        status, _ = http_get(f"{proc.url}/-/ready", timeout=1.0)
        if status == 200:
            return
        time.sleep(0.1)
    stop(proc)
    raise OpsError(f"{proc.name} not ready on {proc.url} after {timeout:.0f}s:\n{proc.log_tail()}")


def _spawn(
    name: str, argv: list[str], *, host: str, port: int, data_dir: Path, config_path: Path
) -> ManagedProcess:
    if port_open(host, port):
        raise OpsError(f"{host}:{port} is already in use; pick another port for {name}")
    log_path = data_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # own process group: stop() kills it whole
        )
    proc = ManagedProcess(name, popen.pid, host, port, data_dir, config_path, log_path, popen)
    proc.pid_file.write_text(f"{popen.pid}\n{host}\n{port}\n")
    return proc


# --------------------------------------------------------------------------- Prometheus


def render_prometheus_config(
    targets: Iterable[str] = (f"{DEFAULT_HOST}:6066",),
    *,
    template: Path | str = PROMETHEUS_CONFIG,
    alertmanagers: Iterable[str] = (f"{DEFAULT_HOST}:{ALERTMANAGER_PORT}",),
    rule_files: Iterable[Path | str] | None = None,
    scrape_interval: str = "5s",
    evaluation_interval: str = "5s",
    self_address: str | None = None,
) -> str:
    """The Prometheus config for a run, rendered from ``template`` (a Prometheus YAML config).

    ``targets`` replace the static targets of the ``cxpulse`` job, ``alertmanagers`` the
    Alertmanager list (empty: no alerting), ``rule_files`` the rule files (default: the
    template's, resolved against the template's folder; all paths are made absolute), and
    ``self_address`` the target of the ``prometheus`` self-scrape job.
    """
    template = Path(template)
    config = yaml.safe_load(template.read_text())
    config.setdefault("global", {})
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = evaluation_interval
    if rule_files is None:
        rule_files = [template.parent / p for p in config.get("rule_files", [])]
    config["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
    ams = list(alertmanagers)
    if ams:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": ams}]}]}
    else:
        config.pop("alerting", None)
    jobs = config.setdefault("scrape_configs", [])
    worker_job = next((j for j in jobs if j.get("job_name") == WORKER_JOB), None)
    if worker_job is None:
        worker_job = {"job_name": WORKER_JOB, "metrics_path": "/metrics"}
        jobs.insert(0, worker_job)
    worker_job.pop("kubernetes_sd_configs", None)
    worker_job.pop("relabel_configs", None)
    worker_job["static_configs"] = [{"targets": list(targets)}]
    for job in jobs:
        if job.get("job_name") == "prometheus" and self_address:
            job["static_configs"] = [{"targets": [self_address]}]
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(
    config_path: Path | str | None = None,
    port: int = PROMETHEUS_PORT,
    data_dir: Path | str | None = None,
    targets: Iterable[str] = (f"{DEFAULT_HOST}:6066",),
    *,
    host: str = DEFAULT_HOST,
    alertmanagers: Iterable[str] = (f"{DEFAULT_HOST}:{ALERTMANAGER_PORT}",),
    rule_files: Iterable[Path | str] | None = None,
    scrape_interval: str = "5s",
    evaluation_interval: str = "5s",
    retention: str = "2d",
    wait: bool = True,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start Prometheus on ``host:port`` scraping ``targets`` (job ``cxpulse``).

    ``config_path`` is the template (default ``deploy/prometheus/prometheus.yml``); the rendered
    config goes to ``<data_dir>/prometheus.yml``, the TSDB to ``<data_dir>/data``, output to
    ``<data_dir>/prometheus.log``, the pid to ``<data_dir>/prometheus.pid``. ``data_dir``
    defaults to ``<CXPULSE_DATA_DIR>/prometheus`` (``var/prometheus``). The recording and alert
    rules of the template are loaded unless ``rule_files`` is given. ``--web.enable-lifecycle``
    is on (``POST /-/reload``). Returns once ``/-/ready`` answers (``wait=True``).
    """
    binaries = ensure_installed()
    data = Path(data_dir) if data_dir is not None else _default_data_dir("prometheus")
    data.mkdir(parents=True, exist_ok=True)
    rendered = data / "prometheus.yml"
    rendered.write_text(
        render_prometheus_config(
            targets,
            template=Path(config_path) if config_path is not None else PROMETHEUS_CONFIG,
            alertmanagers=alertmanagers,
            rule_files=rule_files,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            self_address=f"{host}:{port}",
        )
    )
    argv = [
        binaries["prometheus"],
        f"--config.file={rendered}",
        f"--storage.tsdb.path={data / 'data'}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={host}:{port}",
        f"--web.external-url=http://{host}:{port}/",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    proc = _spawn("prometheus", argv, host=host, port=port, data_dir=data, config_path=rendered)
    if wait:
        wait_ready(proc, timeout)
    return proc


# --------------------------------------------------------------------------- Alertmanager


def render_alertmanager_config(
    *,
    template: Path | str = ALERTMANAGER_CONFIG,
    oncall_url: str | None = None,
    ticket_url: str | None = None,
    webhook_urls: Mapping[str, str] | None = None,
    group_wait: str | None = None,
    group_interval: str | None = None,
) -> str:
    """The Alertmanager config for a run, rendered from ``template``.

    ``oncall_url`` / ``ticket_url`` replace the webhook URL of the ``oncall`` / ``ticket``
    receivers; ``webhook_urls`` maps any receiver name to its webhook URL. ``group_wait`` and
    ``group_interval`` override the routing tree's timers on every route (tests use ``1s``).
    """
    config = yaml.safe_load(Path(template).read_text())
    urls = dict(webhook_urls or {})
    if oncall_url:
        urls["oncall"] = oncall_url
    if ticket_url:
        urls["ticket"] = ticket_url
    for receiver in config.get("receivers", []):
        url = urls.get(receiver["name"])
        if url:
            hooks = receiver.get("webhook_configs") or [{}]
            for hook in hooks:
                hook["url"] = url
            receiver["webhook_configs"] = hooks

    def _timers(route: dict[str, object]) -> None:
        if group_wait is not None and "group_wait" in route:
            route["group_wait"] = group_wait
        if group_interval is not None and "group_interval" in route:
            route["group_interval"] = group_interval
        for child in route.get("routes", []) or []:  # type: ignore[attr-defined]
            _timers(child)

    route = config.get("route", {})
    if group_wait is not None:
        route["group_wait"] = group_wait
    if group_interval is not None:
        route["group_interval"] = group_interval
    _timers(route)
    return yaml.safe_dump(config, sort_keys=False)


def start_alertmanager(
    config_path: Path | str | None = None,
    port: int = ALERTMANAGER_PORT,
    data_dir: Path | str | None = None,
    *,
    host: str = DEFAULT_HOST,
    oncall_url: str | None = None,
    ticket_url: str | None = None,
    webhook_urls: Mapping[str, str] | None = None,
    group_wait: str | None = None,
    group_interval: str | None = None,
    wait: bool = True,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start Alertmanager on ``host:port`` with clustering off.

    ``config_path`` is the template (default ``deploy/alertmanager/alertmanager.yml``); the
    rendered config goes to ``<data_dir>/alertmanager.yml``, silences and notification log to
    ``<data_dir>/data``; ``data_dir`` defaults to ``<CXPULSE_DATA_DIR>/alertmanager``. See
    :func:`render_alertmanager_config` for the webhook and timer overrides.
    """
    binaries = ensure_installed()
    data = Path(data_dir) if data_dir is not None else _default_data_dir("alertmanager")
    (data / "data").mkdir(parents=True, exist_ok=True)
    rendered = data / "alertmanager.yml"
    rendered.write_text(
        render_alertmanager_config(
            template=Path(config_path) if config_path is not None else ALERTMANAGER_CONFIG,
            oncall_url=oncall_url,
            ticket_url=ticket_url,
            webhook_urls=webhook_urls,
            group_wait=group_wait,
            group_interval=group_interval,
        )
    )
    argv = [
        binaries["alertmanager"],
        f"--config.file={rendered}",
        f"--storage.path={data / 'data'}",
        f"--web.listen-address={host}:{port}",
        f"--web.external-url=http://{host}:{port}/",
        "--cluster.listen-address=",  # no gossip port (would bind 0.0.0.0:9094)
        "--log.level=warn",
    ]
    proc = _spawn("alertmanager", argv, host=host, port=port, data_dir=data, config_path=rendered)
    if wait:
        wait_ready(proc, timeout)
    return proc


# --------------------------------------------------------------------------- stopping


def _from_pid_file(target: Path) -> ManagedProcess | None:
    pid_files = [target] if target.is_file() else sorted(target.glob("*.pid"))
    for pid_file in pid_files:
        try:
            pid_s, host, port_s = pid_file.read_text().split()[:3]
        except (OSError, ValueError):
            continue
        name = pid_file.stem
        data = pid_file.parent
        return ManagedProcess(
            name, int(pid_s), host, int(port_s), data, data / f"{name}.yml", data / f"{name}.log"
        )
    return None


def stop(target: ManagedProcess | Path | str, timeout: float = 10.0) -> bool:
    """Stop a process from :func:`start_prometheus` / :func:`start_alertmanager`.

    ``target`` is the :class:`ManagedProcess`, or its data dir / pid file (for a process
    started by another command, e.g. ``cxpulse prometheus stop``). SIGTERM goes to the whole
    process group, SIGKILL after ``timeout`` seconds. Returns True if something was stopped.
    Removes the pid file. Safe to call twice.
    """
    proc = target if isinstance(target, ManagedProcess) else _from_pid_file(Path(target))
    if proc is None:
        return False
    stopped = False
    if proc.running():
        stopped = True
        if proc.popen is None and not _is_our_process(proc):
            raise OpsError(f"pid {proc.pid} in {proc.pid_file} is not a {proc.name} process")
        signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.running() and time.monotonic() < deadline:
            _reap(proc)
            time.sleep(0.05)
        if proc.running():
            signal_group(proc.pid, signal.SIGKILL)
            while proc.running() and time.monotonic() < deadline + 5:
                _reap(proc)
                time.sleep(0.05)
    _reap(proc)
    with contextlib.suppress(OSError):
        if proc.pid_file.read_text().split()[0] == str(proc.pid):
            proc.pid_file.unlink()
    return stopped


def _is_our_process(proc: ManagedProcess) -> bool:
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return True  # no /proc: trust the pid file
    return str(proc.data_dir) in cmdline


def _reap(proc: ManagedProcess) -> None:
    if proc.popen is not None:
        with contextlib.suppress(Exception):
            proc.popen.poll()


def status(data_dir: Path | str) -> ManagedProcess | None:
    """The process recorded in ``data_dir`` if it is running, else None."""
    proc = _from_pid_file(Path(data_dir))
    return proc if proc is not None and proc.running() else None
