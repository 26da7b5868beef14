"""risk_harmoniser: ``signals`` (+ ``fills``, ``md.ticks``) in, ``orders`` and
``risk.decisions`` out."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import orjson

from services.risk_harmoniser.blend import blend
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.sizing import target_position_usd, var_pct
from shared.bus import Entry, Outbox
from shared.config import KEY_PREFIX
from shared.messages import (
    FILLS,
    MD_TICKS,
    REJECTIONS,
    SIGNALS,
    Fill,
    Order,
    Rejection,
    RiskDecision,
    Signal,
    Tick,
)
from shared.service import Service

POSITIONS_KEY = f"{KEY_PREFIX}:execution:positions"


def order_id_for(entry_id: str, symbol: str) -> str:
    """Deterministic: the same input entry always gives the same order id."""
    return hashlib.sha256(f"{SIGNALS}:{entry_id}:{symbol}".encode()).hexdigest()[:24]


class RiskHarmoniser(Service):
    name: ClassVar[str] = "risk_harmoniser"
    inputs: ClassVar[tuple[str, ...]] = (SIGNALS, FILLS, REJECTIONS, MD_TICKS)
    persists_trading_state: ClassVar[bool] = True

    config: RiskParams

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.latest: dict[str, dict[str, Signal]] = {}  # symbol -> model -> latest signal
        self.position_qty: dict[str, float] = {}
        self.working_qty: dict[str, float] = {}  # signed qty of orders sent, not yet filled
        self.working: dict[str, tuple[str, float]] = {}  # order_id -> (symbol, signed qty)
        self.marks: dict[str, float] = {}
        self.seen_fills: set[str] = set()
        self.orders_sent = 0

    async def on_start(self) -> None:
        # Positions survive restarts: the execution service keeps them in Redis.
        raw = await self.r.hgetall(POSITIONS_KEY)  # type: ignore[misc]
        for symbol, blob in raw.items():
            self.position_qty[symbol] = float(orjson.loads(blob).get("qty", 0.0))

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        if isinstance(msg, Tick):
            self.marks[msg.symbol] = (msg.bid + msg.ask) / 2
        elif isinstance(msg, Fill):
            self._on_fill(msg)
        elif isinstance(msg, Signal):
            self._on_signal(entry.entry_id, msg, out)
        elif isinstance(msg, Rejection):
            working = self.working.pop(msg.order_id, None)
            if working is not None:
                symbol, qty = working
                self.working_qty[symbol] = self.working_qty.get(symbol, 0.0) - qty

    def _on_fill(self, fill: Fill) -> None:
        if fill.fill_id in self.seen_fills:
            return
        self.seen_fills.add(fill.fill_id)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        self.position_qty[fill.symbol] = self.position_qty.get(fill.symbol, 0.0) + signed
        working = self.working.get(fill.order_id)
        if working is not None:
            symbol, qty = working
            left = qty - signed
            self.working_qty[symbol] = self.working_qty.get(symbol, 0.0) - signed
            if abs(left) < 1e-12 or left * qty <= 0:
                del self.working[fill.order_id]
            else:
                self.working[fill.order_id] = (symbol, left)

    def _on_signal(self, entry_id: str, sig: Signal, out: Outbox) -> None:
        if sig.shadow:
            return
        p = self.config
        per_model = self.latest.setdefault(sig.symbol, {})
        per_model[sig.model_id] = sig
        edge_bps, _ = blend(per_model.values(), sig.ts_ns, int(p.max_signal_age_ms * 1e6))
        mark = self.marks.get(sig.symbol) or sig.mid
        state = self.trading.state

        def decide(
            action: str, reason: str, size_usd: float = 0.0, var: float = 0.0, order_id: str = ""
        ) -> None:
            out.emit(
                RiskDecision(
                    trace_ts_ns=sig.trace_ts_ns,
                    symbol=sig.symbol,
                    ts_ns=sig.ts_ns,
                    action=action,
                    reason=reason,
                    trading_state=state,  # type: ignore[arg-type]
                    edge_blended_bps=edge_bps,
                    position_size_usd=size_usd,
                    var_pct=var,
                    order_id=order_id,
                )
            )

        if self.trading.halted:
            decide("halt", f"trading_halted:{self.trading.reason}")
            return
        if not mark:
            decide("reject", "no_mark")
            return
        if abs(edge_bps) < p.min_edge_bps:
            decide("reject", "edge_below_threshold")
            return
        target_usd = target_position_usd(edge_bps, p)
        current_qty = self.position_qty.get(sig.symbol, 0.0) + self.working_qty.get(sig.symbol, 0.0)
        delta_usd = target_usd - current_qty * mark
        if state == "REDUCING" and abs(target_usd) >= abs(current_qty * mark):
            decide("reject", "reducing_only")
            return
        if abs(delta_usd) < p.min_order_usd:
            decide("reject", "below_min_order")
            return
        qty = abs(delta_usd) / mark
        side = "buy" if delta_usd > 0 else "sell"
        order_id = order_id_for(entry_id, sig.symbol)
        var = var_pct(target_usd, p)
        out.emit(
            Order(
                trace_ts_ns=sig.trace_ts_ns,
                order_id=order_id,
                symbol=sig.symbol,
                ts_ns=sig.ts_ns,
                side=side,
                qty=qty,
                position_size_usd=target_usd,
                edge_blended_bps=edge_bps,
                var_pct=var,
                decision_price=mark,
            )
        )
        signed = qty if side == "buy" else -qty
        self.working[order_id] = (sig.symbol, signed)
        self.working_qty[sig.symbol] = self.working_qty.get(sig.symbol, 0.0) + signed
        self.orders_sent += 1
        decide("order", "edge", target_usd, var, order_id)

    def health_details(self) -> dict[str, Any]:
        return {"orders_sent": self.orders_sent, "positions": dict(self.position_qty)}


SERVICE = RiskHarmoniser
