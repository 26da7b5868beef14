"""Trading control: the ``trading.control`` commands and the durable trading state.

``redis-cli PUBLISH trading.control '{"action": "halt", "reason": "manual"}'`` halts
every new order at once. The state lives in the Redis hash ``edgebus:trading`` so a
service restarted while halted stays halted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

from shared.config import KEY_PREFIX

TRADING_KEY = f"{KEY_PREFIX}:trading"

TradingStateName = Literal["ACTIVE", "REDUCING", "HALTED"]


class ControlCommand(BaseModel):
    """One message on ``trading.control``."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["halt", "resume", "flatten", "reduce"]
    reason: str = Field(default="manual", max_length=500)
    source: str = "redis-cli"


def parse_command(raw: str | bytes) -> ControlCommand:
    """Parse a control message; ValueError says what is wrong."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("must be a JSON object")
    try:
        return ControlCommand.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "message"
        raise ValueError(f"{key}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class TradingState:
    state: TradingStateName = "ACTIVE"
    reason: str = ""
    ts_ns: int = 0

    @property
    def halted(self) -> bool:
        return self.state == "HALTED"

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "ts_ns": self.ts_ns}


def state_after(cmd: ControlCommand) -> TradingState:
    """halt and flatten halt; reduce allows only exposure-reducing orders; resume re-opens."""
    state: TradingStateName = {
        "halt": "HALTED",
        "flatten": "HALTED",
        "reduce": "REDUCING",
        "resume": "ACTIVE",
    }[cmd.action]  # type: ignore[assignment]
    return TradingState(state, cmd.reason if cmd.action != "resume" else "", time.time_ns())


async def load_state(r: Redis) -> TradingState:
    raw = await r.hgetall(TRADING_KEY)  # type: ignore[misc]
    if not raw or raw.get("state") not in ("ACTIVE", "REDUCING", "HALTED"):
        return TradingState()
    state = cast(TradingStateName, str(raw["state"]))
    return TradingState(state, str(raw.get("reason", "")), int(raw.get("ts_ns", 0) or 0))


async def save_state(r: Redis, st: TradingState) -> None:
    await r.hset(TRADING_KEY, mapping=st.as_dict())  # type: ignore[misc,arg-type]
