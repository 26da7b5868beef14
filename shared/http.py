"""Each service's HTTP app (/health, /ready, /metrics), served by uvicorn in the
service's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from shared.service import Service

DEFAULT_PORTS: dict[str, int] = {
    "parameter_server": 8001,
    "feature_bus": 8002,
    "model_router": 8003,
    "risk_harmoniser": 8004,
    "execution": 8005,
    "telemetry": 8006,
}


def http_host() -> str:
    """127.0.0.1 unless configured otherwise (least exposure by default)."""
    return os.environ.get("EDGEBUS_HTTP_HOST", "127.0.0.1")


def http_port(service: str) -> int:
    """$EDGEBUS_HTTP_PORT, else the default port plus $EDGEBUS_PORT_OFFSET."""
    explicit = os.environ.get("EDGEBUS_HTTP_PORT")
    if explicit:
        return int(explicit)
    return DEFAULT_PORTS.get(service, 8000) + int(os.environ.get("EDGEBUS_PORT_OFFSET", "0"))


def require_token(authorization: str | None = Header(default=None)) -> None:
    """Bearer token from $EDGEBUS_ADMIN_TOKEN; without one configured, writes are refused."""
    expected = os.environ.get("EDGEBUS_ADMIN_TOKEN", "")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not expected or not given or not secrets.compare_digest(given, expected):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def build_app(svc: Service) -> FastAPI:
    app = FastAPI(title=f"edgebus {svc.name}", version="0.1.0")

    @app.get("/health")
    async def health() -> JSONResponse:
        ok, body = svc.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/ready")
    async def ready() -> JSONResponse:
        ok = svc.ready.is_set() and svc.redis_ok and not svc.stopping
        return JSONResponse({"ready": ok, "service": svc.name}, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    svc.add_routes(app)
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM/SIGINT."""

    edgebus_task: asyncio.Task[Any]

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(svc: Service) -> _Server:
    config = uvicorn.Config(
        build_app(svc),
        host=http_host(),
        port=http_port(svc.name),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="none",
    )
    server = _Server(config)
    server.edgebus_task = asyncio.ensure_future(server.serve())
    # Surface a bind failure (port taken) at once instead of running blind.
    for _ in range(100):
        if server.started or server.edgebus_task.done():
            break
        await asyncio.sleep(0.01)
    if server.edgebus_task.done() and not server.started:
        raise SystemExit(f"{svc.name}: cannot serve HTTP on {config.host}:{config.port}")
    return server
