"""Import the edgebus dashboards into any Grafana over its HTTP API; idempotent.

    GRAFANA_URL=http://127.0.0.1:3000 GRAFANA_TOKEN=glsa_... ./scripts/grafana_import.sh
    GRAFANA_USER=admin GRAFANA_PASSWORD=... ./scripts/grafana_import.sh

Creates the folder (uid ``edgebus``) and the Prometheus datasource (uid
``edgebus-prometheus``, url $PROMETHEUS_URL) when they are missing, then saves each
``dashboards/*.json`` into the folder unless Grafana already holds the same content.
Running it twice changes nothing: the second run only reads. An existing datasource
is left alone (it may have been tuned by hand).

Endpoints used: GET /api/health, GET/POST /api/folders[/:uid],
GET /api/datasources/uid/:uid, POST /api/datasources, GET /api/dashboards/uid/:uid,
POST /api/dashboards/db. Exit codes: 0 done, 2 auth refused, 3 unreachable, 1 other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

FOLDER_UID = "edgebus"
FOLDER_TITLE = "edgebus"
DATASOURCE_UID = "edgebus-prometheus"
ROOT = Path(__file__).resolve().parent.parent
VOLATILE = ("id", "version")  # what Grafana assigns on save; not ours to compare


class ImportFailed(RuntimeError):
    """A failure with a message a person can act on, and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Grafana:
    def __init__(self, url: str, token: str | None, user: str | None, password: str | None):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        elif user and password is not None:
            self.http.auth = (user, password)
        else:
            raise ImportFailed(
                "no credentials: set GRAFANA_TOKEN, or GRAFANA_USER and GRAFANA_PASSWORD", 2
            )

    def call(self, method: str, path: str, body: Any = None, ok404: bool = False) -> Any:
        try:
            resp = self.http.request(method, self.url + path, json=body, timeout=10)
        except requests.ConnectionError as exc:
            raise ImportFailed(f"cannot reach Grafana at {self.url}: {exc}", 3) from None
        except requests.Timeout:
            raise ImportFailed(f"Grafana at {self.url} did not answer within 10 s", 3) from None
        if resp.status_code == 401:
            raise ImportFailed(
                f"Grafana at {self.url} refused the credentials (401 Unauthorized): check "
                "GRAFANA_TOKEN, or GRAFANA_USER/GRAFANA_PASSWORD",
                2,
            )
        if resp.status_code == 403:
            raise ImportFailed(
                f"permission denied for {method} {path} (403): the token or user needs the "
                "Editor role for folders and dashboards, Admin for datasources",
                2,
            )
        if resp.status_code == 404 and ok404:
            return None
        if not resp.ok:
            raise ImportFailed(
                f"Grafana answered {resp.status_code} to {method} {path}: {resp.text[:300]}"
            )
        return resp.json() if resp.content else {}


def comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in VOLATILE}


def ensure_folder(g: Grafana) -> str:
    if g.call("GET", f"/api/folders/{FOLDER_UID}", ok404=True) is not None:
        return "exists"
    g.call("POST", "/api/folders", {"uid": FOLDER_UID, "title": FOLDER_TITLE})
    return "created"


def ensure_datasource(g: Grafana, prometheus_url: str) -> str:
    if g.call("GET", f"/api/datasources/uid/{DATASOURCE_UID}", ok404=True) is not None:
        return "exists"
    g.call(
        "POST",
        "/api/datasources",
        {
            "name": DATASOURCE_UID,
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url,
            "isDefault": False,
            "jsonData": {"timeInterval": "1s"},
        },
    )
    return "created"


def import_dashboard(g: Grafana, dashboard: dict[str, Any]) -> str:
    uid = dashboard["uid"]
    current = g.call("GET", f"/api/dashboards/uid/{uid}", ok404=True)
    if current is not None:
        same = comparable(current.get("dashboard", {})) == comparable(dashboard)
        if same and current.get("meta", {}).get("folderUid") == FOLDER_UID:
            return "unchanged"
    g.call(
        "POST",
        "/api/dashboards/db",
        {
            "dashboard": {**dashboard, "id": None},
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "scripts/grafana_import.sh",
        },
    )
    return "updated" if current is not None else "created"


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not doc.get("uid"):
            raise ImportFailed(f"{path}: a dashboard needs a 'uid'")
        out.append(doc)
    if not out:
        raise ImportFailed(f"no dashboards (*.json) in {directory}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboards", type=Path, default=ROOT / "dashboards")
    args = parser.parse_args(argv)
    env = os.environ
    try:
        dashboards = load_dashboards(args.dashboards)
        g = Grafana(
            env.get("GRAFANA_URL", "http://127.0.0.1:3000"),
            env.get("GRAFANA_TOKEN") or None,
            env.get("GRAFANA_USER") or None,
            env.get("GRAFANA_PASSWORD"),
        )
        g.call("GET", "/api/health")
        print(f"folder {FOLDER_UID}: {ensure_folder(g)}")
        ds = ensure_datasource(g, env.get("PROMETHEUS_URL", "http://prometheus:9090"))
        print(f"datasource {DATASOURCE_UID}: {ds}")
        for dashboard in dashboards:
            print(f"dashboard {dashboard['uid']}: {import_dashboard(g, dashboard)}")
    except ImportFailed as exc:
        print(f"grafana_import: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
