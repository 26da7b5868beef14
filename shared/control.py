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
    # A halt that lifts itself at this time (ns since the epoch; 0 = until resumed),
    # e.g. the daily drawdown breaker halts until 00:00 UTC.
    until_ns: int = Field(default=0, ge=0)


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
    until_ns: int = 0

    @property
    def halted(self) -> bool:
        return self.state == "HALTED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "ts_ns": self.ts_ns,
            "until_ns": self.until_ns,
        }


def state_after(cmd: ControlCommand) -> TradingState:
    """halt and flatten halt; reduce allows only exposure-reducing orders; resume re-opens."""
    state: TradingStateName = {
        "halt": "HALTED",
        "flatten": "HALTED",
        "reduce": "REDUCING",
        "resume": "ACTIVE",
    }[cmd.action]  # type: ignore[assignment]
    if cmd.action == "resume":
        return TradingState(state, "", time.time_ns())
    return TradingState(state, cmd.reason, time.time_ns(), cmd.until_ns)


# Seed 001 §2 risk levels onto the three trading states (and the control action that
# puts a service there): WARNING changes no state (breakers shrink sizes instead).
LEVELS: dict[str, tuple[TradingStateName, str]] = {
    "WARNING": ("ACTIVE", ""),
    "REDUCE_RISK": ("REDUCING", "reduce"),
    "HALT_NEW_POSITIONS": ("REDUCING", "reduce"),
    "HALT_ALL_TRADING": ("HALTED", "halt"),
    "EMERGENCY_CLOSE": ("HALTED", "flatten"),
}


def level_command(
    level: str, reason: str, until_ns: int = 0, source: str = ""
) -> ControlCommand | None:
    """The trading.control command for a seed 001 level (None for WARNING; KeyError
    for an unknown level)."""
    _, action = LEVELS[level]
    if not action:
        return None
    return ControlCommand.model_validate(
        {"action": action, "reason": reason, "until_ns": until_ns, "source": source or level}
    )


async def load_state(r: Redis) -> TradingState:
    raw = await r.hgetall(TRADING_KEY)  # type: ignore[misc]
    if not raw or raw.get("state") not in ("ACTIVE", "REDUCING", "HALTED"):
        return TradingState()
    state = cast(TradingStateName, str(raw["state"]))
    return TradingState(
        state,
        str(raw.get("reason", "")),
        int(raw.get("ts_ns", 0) or 0),
        int(raw.get("until_ns", 0) or 0),
    )


async def save_state(r: Redis, st: TradingState) -> None:
    await r.hset(TRADING_KEY, mapping=st.as_dict())  # type: ignore[misc,arg-type]
