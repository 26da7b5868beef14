"""The parameter server's REST API (mounted on its FastAPI app, port 8001).

Reads are open; writes (PUT a config, POST a rollback, POST trading control) need
``Authorization: Bearer $EDGEBUS_ADMIN_TOKEN`` (``shared.http.require_token``) and
answer 401 without it. Every write goes through the same path as ``param.reload``:
validated, stored as a new version, announced on ``param.updated`` (or refused on
``param.rejected`` with the reason, 422 here). The OpenAPI page is ``/docs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request
from pydantic import BaseModel, Field

from shared.config import COMPONENTS, ConfigError, StoredConfig, fetch_version, history, parse_yaml
from shared.control import ControlCommand, load_state, parse_command
from shared.http import require_token
from shared.service import APPLIED_KEY

if TYPE_CHECKING:
    from services.parameter_server.service import ParameterServer


class Problem(BaseModel):
    detail: str = Field(description="what is wrong, naming the key and the rule")


class VersionInfo(BaseModel):
    """One stored version, without its content."""

    component: str
    version: int = Field(description="1, 2, ... per component; never reused")
    hash: str = Field(description="sha256 of the canonical JSON of the config, 16 hex")
    ts_ns: int = Field(description="when it was stored, ns since the epoch")
    source: str = Field(description="reload:<path>, http:put, rollback:<N> or seed:<path>")


class VersionOut(VersionInfo):
    """One stored version with its validated content."""

    config: dict[str, Any]


class AppliedOut(BaseModel):
    """What one service runs, as it last reported on ``param.applied``."""

    service: str
    component: str
    version: int
    hash: str
    applied_ts_ns: int


class ComponentStatus(BaseModel):
    component: str
    config_path: str = Field(description="its file under conf/")
    current: VersionInfo | None = Field(description="None until the first version is stored")
    applied: list[AppliedOut] = Field(description="services running this component's config")
    consistent: bool = Field(description="every service listed runs the current version")


class RollbackRequest(BaseModel):
    version: int = Field(ge=1, description="the version whose content becomes current again")


class TradingStateOut(BaseModel):
    state: str = Field(description="ACTIVE, REDUCING or HALTED")
    reason: str
    ts_ns: int


_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    404: {"model": Problem, "description": "unknown component or version"},
    422: {"model": Problem, "description": "refused; also announced on param.rejected"},
}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown component or version"}
}

_CONFIG_BODY = {
    "requestBody": {
        "required": True,
        "description": "the whole config document, as JSON (or YAML with "
        "Content-Type: application/yaml); unknown keys are refused",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
_CONTROL_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ControlCommand.model_json_schema()}},
    }
}

ComponentName = Path(description=f"one of: {', '.join(COMPONENTS)}")


def _known(component: str) -> str:
    if component not in COMPONENTS:
        raise HTTPException(
            404, f"component {component!r}: unknown (known: {', '.join(sorted(COMPONENTS))})"
        )
    return component


def _info(s: StoredConfig) -> VersionInfo:
    return VersionInfo(
        component=s.component, version=s.version, hash=s.hash, ts_ns=s.ts_ns, source=s.source
    )


def _out(s: StoredConfig) -> VersionOut:
    return VersionOut(**_info(s).model_dump(), config=s.config)


async def _config_body(request: Request) -> Any:
    """The document in a PUT body: JSON, or YAML when the content type says so."""
    raw = await request.body()
    if "yaml" in request.headers.get("content-type", ""):
        return parse_yaml(raw.decode("utf-8", "replace"), "body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"body is not JSON ({exc})") from None


def add_routes(app: FastAPI, ps: ParameterServer) -> None:
    api = APIRouter(tags=["config"])
    admin = [Depends(require_token)]

    @api.get("/config", summary="Every component: current version and what each service runs")
    async def components() -> list[ComponentStatus]:
        applied: dict[str, list[AppliedOut]] = {}
        for blob in (await ps.r.hgetall(APPLIED_KEY)).values():  # type: ignore[misc]
            note = AppliedOut.model_validate_json(blob)
            applied.setdefault(note.component, []).append(note)
        out = []
        for component, spec in COMPONENTS.items():
            cur = await fetch_version(ps.r, component)
            running = sorted(applied.get(component, []), key=lambda a: a.service)
            out.append(
                ComponentStatus(
                    component=component,
                    config_path=spec.path,
                    current=_info(cur) if cur else None,
                    applied=running,
                    consistent=cur is not None and all(a.version == cur.version for a in running),
                )
            )
        return out

    @api.get("/config/{component}", summary="The current config", responses=_READ_ERRORS)
    async def current(component: str = ComponentName) -> VersionOut:
        stored = await fetch_version(ps.r, _known(component))
        if stored is None:
            raise HTTPException(404, f"no stored config for {component!r} yet")
        return _out(stored)

    @api.get(
        "/config/{component}/versions/{version}",
        summary="Any stored version",
        responses=_READ_ERRORS,
    )
    async def version(version: int, component: str = ComponentName) -> VersionOut:
        stored = await fetch_version(ps.r, _known(component), version)
        if stored is None:
            raise HTTPException(404, f"{component!r} has no version {version}")
        return _out(stored)

    @api.get(
        "/config/{component}/history",
        summary="Every stored version, oldest first (kept for audit)",
        responses=_READ_ERRORS,
    )
    async def versions(component: str = ComponentName) -> list[VersionInfo]:
        return [_info(s) for s in await history(ps.r, _known(component))]

    @api.put(
        "/config/{component}",
        summary="Store a new config (validated) as the next version and announce it",
        dependencies=admin,
        responses=_WRITE_ERRORS,
        openapi_extra=_CONFIG_BODY,
    )
    async def put(request: Request, component: str = ComponentName) -> VersionInfo:
        _known(component)
        try:
            doc = await _config_body(request)
        except ConfigError as exc:
            await ps.reject(component, str(exc), source="http:put")
            raise HTTPException(422, str(exc)) from None
        try:
            return _info(await ps.put(component, doc))
        except ConfigError as exc:  # already announced on param.rejected
            raise HTTPException(422, str(exc)) from None

    @api.post(
        "/config/{component}/rollback",
        summary="Make version N's content current again, as a new version",
        dependencies=admin,
        responses=_WRITE_ERRORS,
    )
    async def rollback(body: RollbackRequest, component: str = ComponentName) -> VersionInfo:
        try:
            stored = await ps.rollback(_known(component), body.version)
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        if stored is None:
            raise HTTPException(404, f"{component!r} has no version {body.version}")
        return _info(stored)

    control = APIRouter(tags=["trading"])

    @control.get("/trading", summary="The durable trading state")
    async def trading() -> TradingStateOut:
        return TradingStateOut(**(await load_state(ps.r)).as_dict())

    @control.post(
        "/trading/control",
        summary="halt / resume / flatten / reduce: persisted, then sent on trading.control",
        dependencies=admin,
        responses=_WRITE_ERRORS,
        openapi_extra=_CONTROL_BODY,
    )
    async def command(request: Request) -> TradingStateOut:
        try:
            cmd = parse_command(await request.body())
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if "source" not in cmd.model_fields_set:
            cmd = cmd.model_copy(update={"source": "http"})
        return TradingStateOut(**(await ps.control(cmd)).as_dict())

    app.include_router(api)
    app.include_router(control)
