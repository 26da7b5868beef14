"""parameter_server: validated configs from conf/, versioned in Redis, announced on
``param.updated``; refusals on ``param.rejected``; trading control made durable.

Four ways in, one way through: a ``param.reload`` message, ``PUT /config/{c}``,
``POST /config/{c}/rollback`` and a proposal on the ``param.proposals`` stream (a
service's own daily review: model_router's validation results and promotions) all end
in ``accept`` (validated config -> new version,
stored, made current and announced atomically by ``shared.config.store_version``) or
``reject`` (nothing stored; the reason goes out on ``param.rejected``). Every service
then applies the new version between two batches (``Service._sync_config``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson

from services.parameter_server.config import ParameterServerConfig
from services.parameter_server.reload import ReloadRequest, parse_request, read_request
from shared.bus import Entry, Outbox, dead_letter
from shared.config import (
    COMPONENTS,
    ComponentConfig,
    ConfigError,
    StoredConfig,
    fetch_version,
    load_file,
    seed_version,
    store_op,
    store_version,
    validate,
)
from shared.control import ControlCommand, TradingState, save_state, state_after
from shared.messages import (
    PARAM_PROPOSALS,
    PARAM_REJECTED,
    PARAM_RELOAD,
    PARAM_UPDATED,
    TRADING_CONTROL,
    ConfigProposal,
)
from shared.service import Service


class ParameterServer(Service[ParameterServerConfig]):
    name: ClassVar[str] = "parameter_server"
    channels: ClassVar[tuple[str, ...]] = (PARAM_RELOAD,)
    inputs: ClassVar[tuple[str, ...]] = (PARAM_PROPOSALS,)
    persists_trading_state: ClassVar[bool] = True

    def __init__(self, config: ParameterServerConfig | None = None) -> None:
        super().__init__(config)
        self.accepted = 0
        self.rejected = 0
        self.proposals = 0

    async def on_start(self) -> None:
        """Store each conf/*.yml as version 1 where Redis has no version yet."""
        if not self.config.seed_from_files:
            return
        for component, spec in COMPONENTS.items():
            try:
                cfg = load_file(component)
            except ConfigError as exc:
                self.log.error("cannot seed %s from %s: %s", component, spec.path, exc)
                continue
            stored = await seed_version(self.r, component, cfg, f"seed:{spec.path}", PARAM_UPDATED)
            if stored is not None:
                self.log.info("seeded %s version %d from %s", component, stored.version, spec.path)

    async def on_channel(self, channel: str, data: str) -> None:
        if channel == PARAM_RELOAD:
            await self.reload(data)

    # ---- the three ways in ---------------------------------------------------------

    async def reload(self, raw: str | bytes) -> StoredConfig | None:
        """One ``param.reload`` message: the stored version, or None if rejected."""
        req: ReloadRequest | None = None
        try:
            req = parse_request(raw)
            cfg = read_request(req)
        except ConfigError as exc:
            await self.reject(
                req.component if req else _component_hint(raw),
                str(exc),
                source=PARAM_RELOAD,
                config_path=req.config_path if req else None,
            )
            return None
        return await self.accept(req.component, cfg, f"reload:{req.config_path}")

    async def put(self, component: str, doc: Any, source: str = "http:put") -> StoredConfig:
        """A whole config document (``PUT /config/{component}``); ConfigError if invalid."""
        try:
            cfg = validate(component, doc)
        except ConfigError as exc:
            await self.reject(component, str(exc), source=source)
            raise
        return await self.accept(component, cfg, source)

    async def rollback(self, component: str, version: int) -> StoredConfig | None:
        """A new version whose content is version ``version``'s; None if there is no such
        version. ConfigError if that content no longer passes today's schema."""
        old = await fetch_version(self.r, component, version)
        if old is None:
            return None
        return await self.put(component, old.config, source=f"rollback:{version}")

    def on_message(self, entry: Entry, out: Outbox) -> None:
        """A proposal (``param.proposals``): validated, then stored as a version in the
        batch's transaction, so it is stored once however often it is read. A refused
        one goes to the dlq with the reason and is announced on ``param.rejected``."""
        prop = entry.message
        assert isinstance(prop, ConfigProposal)
        try:
            if prop.component not in COMPONENTS:
                raise ConfigError(f"component: unknown component {prop.component!r}")
            cfg = validate(prop.component, prop.config)
        except ConfigError as exc:
            self.rejected += 1
            out.dead.append(dead_letter(self.name, entry, f"refused: {exc}"))
            note = orjson.dumps(
                {
                    "component": prop.component,
                    "reason": str(exc),
                    "source": f"proposal:{prop.source}",
                    "ts_ns": time.time_ns(),
                }
            )
            out.call(lambda pipe: pipe.publish(PARAM_REJECTED, note))
            return
        self.accepted += 1
        self.proposals += 1
        out.call(store_op(prop.component, cfg, prop.source, PARAM_UPDATED))
        self.log.info("%s: proposal from %s stored", prop.component, prop.source)

    # ---- the way through -----------------------------------------------------------

    async def accept(self, component: str, cfg: ComponentConfig, source: str) -> StoredConfig:
        stored = await store_version(self.r, component, cfg, source, PARAM_UPDATED)
        self.accepted += 1
        self.log.info(
            "%s version %d (hash %s) from %s", component, stored.version, stored.hash, source
        )
        return stored

    async def reject(
        self, component: str | None, reason: str, *, source: str, config_path: str | None = None
    ) -> dict[str, Any]:
        """Announce a refused change on ``param.rejected``; nothing is stored."""
        note = {
            "component": component,
            "config_path": config_path,
            "reason": reason,
            "source": source,
            "ts_ns": time.time_ns(),
        }
        self.rejected += 1
        await self.r.publish(PARAM_REJECTED, orjson.dumps(note))
        self.log.warning("change to %s rejected: %s", component, reason)
        return note

    # ---- trading control -----------------------------------------------------------

    async def control(self, cmd: ControlCommand) -> TradingState:
        """Persist the new trading state first (a service starting now reads it), then
        announce the command on ``trading.control`` for the running ones."""
        st = state_after(cmd)
        await save_state(self.r, st)
        await self.r.publish(TRADING_CONTROL, cmd.model_dump_json())
        return st

    # ---- HTTP and health -----------------------------------------------------------

    def add_routes(self, app: Any) -> None:
        from services.parameter_server.api import add_routes

        add_routes(app, self)

    def health_details(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected, "proposals": self.proposals}


def _component_hint(raw: str | bytes) -> str | None:
    """The component a malformed request was about, if it says, for the rejection note."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    comp = doc.get("component") if isinstance(doc, dict) else None
    return comp[:100] if isinstance(comp, str) else None


SERVICE = ParameterServer
