"""Upload the generated boards to a Grafana over its HTTP API (``cxpulse grafana push``).

Uses ``grafana-client``. Boards land in the folder "cxpulse" (created if missing) and overwrite
the previous version with the same uid. With ``prometheus_url`` the Prometheus datasource the
boards read (uid ``cxpulse-prometheus``) is created or updated too; otherwise it must exist
(``grafana/provisioning/datasources/prometheus.yaml`` provisions it).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from grafana.generate import DASHBOARDS_DIR
from grafana.panels import DATASOURCE_UID

FOLDER_TITLE = "cxpulse"
FOLDER_UID = "cxpulse"


def _client(url: str, token: str | None, timeout: float):
    from grafana_client import GrafanaApi, TokenAuth

    parsed = urlparse(url)
    auth = TokenAuth(token) if token else None
    return GrafanaApi(
        auth=auth,
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port,
        protocol=parsed.scheme or "http",
        url_path_prefix=parsed.path.strip("/"),
        timeout=timeout,
    )


def push(
    url: str,
    token: str | None,
    dashboards_dir: Path | str = DASHBOARDS_DIR,
    *,
    prometheus_url: str | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Create/overwrite every ``dashboards_dir/*.json`` board in the Grafana at ``url``.

    ``token`` is a service-account token (None: anonymous, e.g. a local Grafana with anonymous
    admin). Returns the uids pushed. Raises on the first API error.
    """
    from grafana_client.client import GrafanaClientError

    api = _client(url, token, timeout)
    if prometheus_url:
        ds = {
            "name": "Prometheus (cxpulse)",
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": True,
            "jsonData": {"timeInterval": "5s"},
        }
        try:
            existing = api.datasource.get_datasource_by_uid(DATASOURCE_UID)
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, {**existing, **ds})
        except GrafanaClientError:
            api.datasource.create_datasource(ds)
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    pushed = []
    for path in sorted(Path(dashboards_dir).glob("*.json")):
        board = json.loads(path.read_text())
        board.pop("id", None)
        api.dashboard.update_dashboard(
            {
                "dashboard": board,
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": f"cxpulse: {path.name}",
            }
        )
        pushed.append(board["uid"])
    return pushed
