"""scripts/grafana_import.sh against a small in-test HTTP server.

This is a CONTRACT TEST of the Grafana HTTP API endpoints the script calls (GET
/api/health; GET /api/folders/:uid, POST /api/folders; GET /api/datasources/uid/:uid,
POST /api/datasources; GET /api/dashboards/uid/:uid, POST /api/dashboards/db), as
Grafana documents them: 404 for a missing object, 401 for bad credentials, the saved
dashboard returned under "dashboard" with "meta.folderUid". It is not a Grafana: it
proves the script's idempotency and error handling against that contract.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.embedded_redis import free_port

pytestmark = pytest.mark.monitoring

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "grafana_import.sh"
TOKEN = "glsa_test_token"
USER, PASSWORD = "admin", "s3cret"


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return auth in (f"Bearer {TOKEN}", basic)

    def do_GET(self) -> None:
        s, path = self.server, self.path
        if path == "/api/health":
            return self._send(200, {"database": "ok", "version": "10.4.0"})
        if not self._authorized():
            return self._send(401, {"message": "invalid username or password"})
        for prefix, store in (
            ("/api/folders/", s.folders),
            ("/api/datasources/uid/", s.datasources),
        ):
            if path.startswith(prefix):
                item = store.get(path.removeprefix(prefix))
                return self._send(200, item) if item else self._send(404, {"message": "not found"})
        if path.startswith("/api/dashboards/uid/"):
            item = s.dashboards.get(path.removeprefix("/api/dashboards/uid/"))
            if item is None:
                return self._send(404, {"message": "Dashboard not found"})
            return self._send(200, item)
        self._send(404, {"message": "no such endpoint"})

    def do_POST(self) -> None:
        s, path = self.server, self.path
        if not self._authorized():
            return self._send(401, {"message": "invalid username or password"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        s.writes.append(path)
        if path == "/api/folders":
            if body["uid"] in s.folders:
                return self._send(409, {"message": "a folder with the same uid already exists"})
            s.folders[body["uid"]] = {"id": len(s.folders) + 1, **body}
            return self._send(200, s.folders[body["uid"]])
        if path == "/api/datasources":
            s.datasources[body["uid"]] = {"id": len(s.datasources) + 1, **body}
            return self._send(200, {"message": "Datasource added", "id": 1})
        if path == "/api/dashboards/db":
            dash = body["dashboard"]
            old = s.dashboards.get(dash["uid"])
            version = old["dashboard"]["version"] + 1 if old else 1
            saved = {**dash, "id": 7, "version": version}
            s.dashboards[dash["uid"]] = {
                "dashboard": saved,
                "meta": {"folderUid": body["folderUid"]},
            }
            return self._send(200, {"status": "success", "uid": dash["uid"], "version": version})
        self._send(404, {"message": "no such endpoint"})


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**clean, "GRAFANA_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_creates_everything_then_changes_nothing(grafana: FakeGrafana) -> None:
    url = f"http://127.0.0.1:{grafana.server_port}"
    first = run(url, GRAFANA_TOKEN=TOKEN, PROMETHEUS_URL="http://prom:9090")
    assert first.returncode == 0, first.stderr
    assert "folder edgebus: created" in first.stdout
    assert "datasource edgebus-prometheus: created" in first.stdout
    assert set(grafana.dashboards) == {"edge-risk", "model-router", "pnl-attribution"}
    assert grafana.datasources["edgebus-prometheus"]["url"] == "http://prom:9090"
    writes = len(grafana.writes)
    assert writes == 5  # folder + datasource + three dashboards
    state = json.dumps([grafana.folders, grafana.datasources, grafana.dashboards], sort_keys=True)
    # basic auth works the same; the second run only reads
    second = run(url, GRAFANA_USER=USER, GRAFANA_PASSWORD=PASSWORD)
    assert second.returncode == 0, second.stderr
    assert len(grafana.writes) == writes, grafana.writes[writes:]
    assert second.stdout.count(": unchanged") == 3 and "folder edgebus: exists" in second.stdout
    assert (
        json.dumps([grafana.folders, grafana.datasources, grafana.dashboards], sort_keys=True)
        == state
    )
    # a dashboard edited in Grafana is put back, as an update
    grafana.dashboards["edge-risk"]["dashboard"]["title"] = "edited by hand"
    third = run(url, GRAFANA_TOKEN=TOKEN)
    assert "dashboard edge-risk: updated" in third.stdout
    assert grafana.dashboards["edge-risk"]["dashboard"]["title"] == "edgebus / Edge & Risk"


def test_wrong_password_is_a_clear_error(grafana: FakeGrafana) -> None:
    out = run(f"http://127.0.0.1:{grafana.server_port}", GRAFANA_USER=USER, GRAFANA_PASSWORD="no")
    assert out.returncode == 2
    assert "refused the credentials (401" in out.stderr and "GRAFANA_PASSWORD" in out.stderr
    assert "Traceback" not in out.stderr and grafana.writes == []


def test_unreachable_grafana_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = run(url, GRAFANA_TOKEN=TOKEN)
    assert out.returncode == 3
    assert f"cannot reach Grafana at {url}" in out.stderr and "Traceback" not in out.stderr


def test_missing_credentials_are_named() -> None:
    out = run("http://127.0.0.1:9", GRAFANA_USER="")
    assert out.returncode == 2 and "set GRAFANA_TOKEN" in out.stderr
