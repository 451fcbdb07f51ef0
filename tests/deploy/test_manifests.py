"""Structure of deploy/compose.yaml, deploy/Dockerfile and the Kubernetes manifests (no Docker
engine or cluster here: the files are parsed and cross-checked)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from streams.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"


def _k8s() -> dict[str, dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                docs[doc["kind"]] = doc
    return docs


def test_compose_services_healthchecks_and_dependencies() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"kafka", "topics", "worker", "prometheus", "alertmanager", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("kafka", "worker", "prometheus", "alertmanager", "grafana"):
        assert "healthcheck" in services[name], name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == ("service_completed_successfully")
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"
    assert services["topics"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume


def test_compose_prometheus_config(binaries: dict[str, str]) -> None:
    result = subprocess.run(
        [binaries["promtool"], "check", "config", "--syntax-only",
         str(DEPLOY / "prometheus" / "compose" / "prometheus.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install ." in text
    assert 'ENTRYPOINT ["cxpulse"]' in text and 'CMD ["worker"]' in text
    assert "USER cxpulse" in text


def test_k8s_worker_deployment() -> None:
    docs = _k8s()
    deployment, service, pdb, config = (
        docs["Deployment"],
        docs["Service"],
        docs["PodDisruptionBudget"],
        docs["ConfigMap"],
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["clusterIP"] == "None"
    partitions = int(config["data"]["CXPULSE_PARTITIONS"])
    assert 1 <= deployment["spec"]["replicas"] <= partitions
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    port = int(config["data"]["CXPULSE_WEB_PORT"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port == container["ports"][0]["containerPort"]
    assert {"configMapRef", "secretRef"} <= {k for ref in container["envFrom"] for k in ref}
    assert config["data"]["CXPULSE_WEB_HOST"] == "0.0.0.0"
    # every ConfigMap key is a real setting
    fields = {f"CXPULSE_{name.upper()}" for name in Settings.model_fields}
    assert set(config["data"]) <= fields
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert set(secret["stringData"]) <= fields
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).exists() for r in kustomization["resources"])
