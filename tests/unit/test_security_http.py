"""HTTP exposure: services listen on 127.0.0.1 by default, and every route that changes
something (any method but GET/HEAD) answers 401 without the admin bearer token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services import SERVICE_NAMES, service_class
from shared.embedded_redis import free_port
from shared.http import build_app, http_host, require_token
from shared.service import Service

ROOT = Path(__file__).resolve().parents[2]
READ_ONLY = {"GET", "HEAD", "OPTIONS"}
TOKEN = "test-admin-token-0123456789"


def test_http_host_is_loopback_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEBUS_HTTP_HOST", raising=False)
    assert http_host() == "127.0.0.1"
    monkeypatch.setenv("EDGEBUS_HTTP_HOST", "0.0.0.0")
    assert http_host() == "0.0.0.0"


def test_a_service_process_listens_on_loopback_only(tmp_path: Path) -> None:
    """The real CLI entry point, as compose and the launcher run it. Redis is not needed
    for this: HTTP is served before the service waits for Redis (it reports redis_down)."""
    port = free_port()  # a port known free now, rather than a guessed offset
    env = {k: v for k, v in os.environ.items() if k != "EDGEBUS_HTTP_HOST"}
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        EDGEBUS_HTTP_PORT=str(port),
        EDGEBUS_HOME=str(ROOT),
        EDGEBUS_LOG_LEVEL="WARNING",
    )
    with open(tmp_path / "telemetry.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "run", "telemetry"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        listening = _wait_listening(proc, port, timeout_s=60)
        assert listening, (tmp_path / "telemetry.log").read_text()[-2000:]
        assert {addr for addr, _ in listening} == {"127.0.0.1"}, listening
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _wait_listening(
    proc: subprocess.Popen[bytes], port: int, timeout_s: float
) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        conns = psutil.Process(proc.pid).net_connections(kind="inet")
        found = [
            (c.laddr.ip, c.laddr.port)
            for c in conns
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
        if found:
            return found
        time.sleep(0.1)
    return []


# ---- admin routes --------------------------------------------------------------------


def write_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every route that is not read-only."""
    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        path = re.sub(r"{[^}]+}", "1", route.path)  # "1" fits str and int parameters
        for method in sorted(route.methods - READ_ONLY):
            out.append((method, path))
    return out


def refused_without_token(app: FastAPI) -> dict[tuple[str, str], list[int]]:
    """Status codes of each write route called with no token and with a wrong one."""
    client = TestClient(app, raise_server_exceptions=False)
    codes = {}
    for method, path in write_routes(app):
        codes[(method, path)] = [
            client.request(method, path, json={}).status_code,
            client.request(
                method, path, json={}, headers={"Authorization": "Bearer wrong"}
            ).status_code,
        ]
    return codes


@pytest.fixture
def admin_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("EDGEBUS_ADMIN_TOKEN", TOKEN)
    yield TOKEN


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_write_route_answers_401_without_the_token(name: str, admin_token: str) -> None:
    app = build_app(service_class(name)())
    assert any(isinstance(r, APIRoute) and r.path == "/health" for r in app.routes)
    codes = refused_without_token(app)
    bad = {route: c for route, c in codes.items() if c != [401, 401]}
    assert not bad, f"{name}: write routes reachable without the bearer token: {bad}"


def test_without_a_configured_token_every_write_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDGEBUS_ADMIN_TOKEN", raising=False)
    app = FastAPI()

    @app.post("/admin", dependencies=[Depends(require_token)])
    async def admin() -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(app)
    assert client.post("/admin").status_code == 401
    assert client.post("/admin", headers={"Authorization": "Bearer "}).status_code == 401


class _Leaky(Service):
    name: ClassVar[str] = "leaky"

    def add_routes(self, app: Any) -> None:
        @app.post("/open")
        async def open_route() -> dict[str, str]:
            return {"ok": "yes"}

        @app.delete("/closed/{key}", dependencies=[Depends(require_token)])
        async def closed(key: str) -> dict[str, str]:
            return {"deleted": key}


def test_the_route_walk_finds_an_unprotected_write(admin_token: str) -> None:
    """The check above can fail: an unprotected POST is found, a protected DELETE passes."""
    from services.telemetry.config import TelemetryConfig

    app = build_app(_Leaky(TelemetryConfig()))
    codes = refused_without_token(app)
    assert codes[("POST", "/open")] == [200, 200]
    assert codes[("DELETE", "/closed/1")] == [401, 401]
    client = TestClient(app)
    ok = client.delete("/closed/1", headers={"Authorization": f"Bearer {admin_token}"})
    assert ok.status_code == 200
