"""parameter_server: validated configs from conf/, versioned in Redis, announced on
``param.updated``; refusals on ``param.rejected``; trading control made durable."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, HTTPException

from shared.config import (
    COMPONENTS,
    ConfigError,
    fetch_version,
    history,
    load_file,
    store_version,
)
from shared.messages import PARAM_REJECTED, PARAM_RELOAD, PARAM_UPDATED
from shared.service import Service


class ParameterServer(Service):
    name: ClassVar[str] = "parameter_server"
    channels: ClassVar[tuple[str, ...]] = (PARAM_RELOAD,)
    persists_trading_state: ClassVar[bool] = True

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.accepted = 0
        self.rejected = 0

    async def on_start(self) -> None:
        if not getattr(self.config, "seed_from_files", True):
            return
        for component, spec in COMPONENTS.items():
            if await fetch_version(self.r, component) is not None:
                continue
            try:
                cfg = load_file(component)
            except ConfigError as exc:
                self.log.error("cannot seed %s from %s: %s", component, spec.path, exc)
                continue
            stored = await store_version(self.r, component, cfg, f"seed:{spec.path}", PARAM_UPDATED)
            self.log.info("seeded %s version %d from %s", component, stored.version, spec.path)

    async def on_channel(self, channel: str, data: str) -> None:
        if channel == PARAM_RELOAD:
            await self.reload(data)

    async def reload(self, raw: str) -> dict[str, Any]:
        """Handle one ``param.reload`` request; returns what was announced."""
        component = config_path = None
        try:
            try:
                req = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"message is not JSON ({exc})") from None
            if not isinstance(req, dict):
                raise ConfigError("message must be a JSON object with component and config_path")
            component, config_path = req.get("component"), req.get("config_path")
            if not isinstance(component, str) or component not in COMPONENTS:
                known = ", ".join(sorted(COMPONENTS))
                raise ConfigError(f"component {component!r}: unknown (known: {known})")
            if config_path is None:
                config_path = COMPONENTS[component].path
            if not isinstance(config_path, str):
                raise ConfigError("config_path: must be a string")
            cfg = load_file(component, config_path)
        except ConfigError as exc:
            self.rejected += 1
            note = {"component": component, "config_path": config_path, "reason": str(exc)}
            await self.r.publish(PARAM_REJECTED, orjson.dumps(note))
            self.log.warning("reload rejected: %s", exc)
            return {"rejected": note}
        stored = await store_version(self.r, component, cfg, f"reload:{config_path}", PARAM_UPDATED)
        self.accepted += 1
        self.log.info(
            "%s version %d (hash %s) from %s", component, stored.version, stored.hash, config_path
        )
        return {"component": component, "version": stored.version, "hash": stored.hash}

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/config/{component}")
        async def current(component: str) -> dict[str, Any]:
            stored = await fetch_version(self.r, component)
            if stored is None:
                raise HTTPException(404, f"no stored config for {component!r}")
            return stored.__dict__

        @app.get("/config/{component}/versions/{version}")
        async def version(component: str, version: int) -> dict[str, Any]:
            stored = await fetch_version(self.r, component, version)
            if stored is None:
                raise HTTPException(404, f"{component!r} has no version {version}")
            return stored.__dict__

        @app.get("/config/{component}/history")
        async def hist(component: str) -> list[dict[str, Any]]:
            return [
                {k: v for k, v in s.__dict__.items() if k != "config"}
                for s in await history(self.r, component)
            ]

    def health_details(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected}


SERVICE = ParameterServer
