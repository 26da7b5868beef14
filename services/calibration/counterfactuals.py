"""Gate counterfactuals: what the trades a gate blocked would have made (seed 002,
``gate_counterfactuals.py``: "tracks what would have happened for blocked trades",
"per-gate value attribution (saved $ vs missed $)", "auto-tune threshold suggestions").

A blocked trade is recorded with its gate, event time, symbol, direction d (+1 long, -1
short), size S (USD) and entry price P0. Once a mark P1 at or after ts_ns + horizon_ns
arrives for its symbol (``mark``), or its exit price is given (``resolve``), its
counterfactual PnL is

    pnl_usd = d * S * (P1 / P0 - 1) - S * cost_bps / 1e4

(cost_bps: the round trip's cost the trade would have paid, 0 by default). Per gate:

    saved_usd  = sum over resolved blocked trades of max(-pnl_usd, 0)   losses avoided
    missed_usd = sum of max(pnl_usd, 0)                                 gains forgone
    net_usd    = saved_usd - missed_usd                                 the gate's value

``suggest(gate)``: "loosen" when net_usd < 0 (the gate blocked net winners), "tighten" when
net_usd > 0 and saved_usd >= tighten_ratio * missed_usd (it blocks almost only losers, so
the trades just past it are likely losers too), else "keep"; "keep" too below
min_resolved resolved trades. Seed 002 gives the idea, the rule and its numbers are ours.

Bounded memory: at most ``max_pending`` unresolved trades (the oldest is dropped and
counted as ``expired`` of its gate); per gate, running sums only. Pure: event time in,
no clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BlockedTrade:
    trade_id: int
    gate: str
    ts_ns: int
    symbol: str
    direction: int  # +1 long, -1 short
    size_usd: float
    entry_price: float


@dataclass
class GateValue:
    """One gate's running counterfactual sums (USD)."""

    blocked: int = 0
    resolved: int = 0
    expired: int = 0  # dropped unresolved (max_pending)
    would_win: int = 0
    would_lose: int = 0
    saved_usd: float = 0.0
    missed_usd: float = 0.0

    @property
    def net_usd(self) -> float:
        return self.saved_usd - self.missed_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocked": self.blocked,
            "resolved": self.resolved,
            "expired": self.expired,
            "would_win": self.would_win,
            "would_lose": self.would_lose,
            "saved_usd": self.saved_usd,
            "missed_usd": self.missed_usd,
            "net_usd": self.net_usd,
        }


def _direction(direction: int | str) -> int:
    if direction in (1, "long", "buy"):
        return 1
    if direction in (-1, "short", "sell"):
        return -1
    raise ValueError(f"direction must be +1/-1, long/short or buy/sell, not {direction!r}")


@dataclass
class GateCounterfactuals:
    """Blocked trades per gate and what they would have made (formulas above)."""

    horizon_ns: int = (
        60 * 10**9
    )  # a scalp's horizon; seed 002: scalps hold 5-15 s, runners 5-60 min
    cost_bps: float = 0.0
    max_pending: int = 10_000
    min_resolved: int = 20
    tighten_ratio: float = 3.0
    gates: dict[str, GateValue] = field(default_factory=dict)
    _pending: OrderedDict[int, BlockedTrade] = field(default_factory=OrderedDict, repr=False)
    _by_symbol: dict[str, deque[int]] = field(default_factory=dict, repr=False)
    _next_id: int = 0

    def __post_init__(self) -> None:
        if self.horizon_ns < 0 or self.max_pending < 1 or self.min_resolved < 0:
            raise ValueError("need horizon_ns >= 0, max_pending >= 1 and min_resolved >= 0")
        if not (math.isfinite(self.cost_bps) and self.cost_bps >= 0.0):
            raise ValueError(f"cost_bps must be finite and >= 0, not {self.cost_bps!r}")
        if not self.tighten_ratio >= 1.0:
            raise ValueError(f"tighten_ratio must be >= 1, not {self.tighten_ratio!r}")

    def record_blocked(
        self,
        gate: str,
        ts_ns: int,
        symbol: str,
        direction: int | str,
        size_usd: float,
        entry_price: float,
    ) -> int:
        """A trade ``gate`` blocked; returns its id (for ``resolve``)."""
        if not (math.isfinite(size_usd) and size_usd >= 0.0):
            raise ValueError(f"size_usd must be finite and >= 0, not {size_usd!r}")
        if not (math.isfinite(entry_price) and entry_price > 0.0):
            raise ValueError(f"entry_price must be finite and > 0, not {entry_price!r}")
        trade = BlockedTrade(
            self._next_id, gate, int(ts_ns), symbol, _direction(direction), size_usd, entry_price
        )
        self._next_id += 1
        self.gates.setdefault(gate, GateValue()).blocked += 1
        self._pending[trade.trade_id] = trade
        self._by_symbol.setdefault(symbol, deque()).append(trade.trade_id)
        while len(self._pending) > self.max_pending:
            _, old = self._pending.popitem(last=False)
            self.gates[old.gate].expired += 1
        return trade.trade_id

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pnl_usd(self, trade: BlockedTrade, exit_price: float) -> float:
        """d * S * (P1 / P0 - 1) - S * cost_bps / 1e4."""
        move = trade.direction * trade.size_usd * (exit_price / trade.entry_price - 1.0)
        return move - trade.size_usd * self.cost_bps / 1e4

    def resolve(self, trade_id: int, exit_price: float) -> float | None:
        """The blocked trade's outcome at ``exit_price``: its counterfactual PnL (None if it
        is not pending: unknown, already resolved or expired)."""
        if not (math.isfinite(exit_price) and exit_price > 0.0):
            raise ValueError(f"exit_price must be finite and > 0, not {exit_price!r}")
        trade = self._pending.pop(trade_id, None)
        if trade is None:
            return None
        pnl = self.pnl_usd(trade, exit_price)
        g = self.gates[trade.gate]
        g.resolved += 1
        if pnl > 0.0:
            g.would_win += 1
            g.missed_usd += pnl
        else:
            g.would_lose += 1
            g.saved_usd += -pnl
        return pnl

    def mark(self, symbol: str, ts_ns: int, price: float) -> int:
        """A price of ``symbol`` at ``ts_ns``: resolves its pending trades blocked at or before
        ts_ns - horizon_ns (in the order they were recorded); returns how many."""
        ids = self._by_symbol.get(symbol)
        done = 0
        while ids:
            trade = self._pending.get(ids[0])
            if trade is None:  # resolved explicitly or expired
                ids.popleft()
                continue
            if trade.ts_ns + self.horizon_ns > ts_ns:
                break
            ids.popleft()
            self.resolve(trade.trade_id, price)
            done += 1
        if ids is not None and not ids:
            del self._by_symbol[symbol]
        return done

    def value(self, gate: str) -> GateValue:
        return self.gates.get(gate, GateValue())

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per gate: blocked, resolved, expired, would_win, would_lose, saved/missed/net_usd."""
        return {gate: self.gates[gate].to_dict() for gate in sorted(self.gates)}

    def suggest(self, gate: str) -> str:
        """ "loosen", "tighten" or "keep", then the gate's name and numbers (rule above)."""
        g = self.value(gate)
        numbers = (
            f"{g.blocked} blocked, {g.resolved} resolved ({g.would_win} would have won),"
            f" saved ${g.saved_usd:.2f}, missed ${g.missed_usd:.2f}, net ${g.net_usd:.2f}"
        )
        if g.resolved < self.min_resolved:
            return f"keep {gate}: {numbers}; fewer than {self.min_resolved} resolved"
        if g.net_usd < 0.0:
            return f"loosen {gate}: {numbers}; it blocked net winners"
        if g.net_usd > 0.0 and g.saved_usd >= self.tighten_ratio * g.missed_usd:
            return (
                f"tighten {gate}: {numbers}; saved >= {self.tighten_ratio:g}x missed,"
                " it blocks almost only losers"
            )
        return f"keep {gate}: {numbers}"
