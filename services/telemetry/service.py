"""telemetry: every stream in its own group -> Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from services.telemetry import metrics as tm
from shared.bus import Entry, Outbox
from shared.control import ControlCommand
from shared.messages import (
    DLQ,
    FILLS,
    ORDERS,
    POSITIONS,
    REJECTIONS,
    RISK_DECISIONS,
    ROUTER_SWITCHES,
    SIGNALS,
    DeadLetter,
    Fill,
    Order,
    Position,
    Rejection,
    RiskDecision,
    RouterSwitch,
    Signal,
)
from shared.service import Service


class Telemetry(Service):
    name: ClassVar[str] = "telemetry"
    inputs: ClassVar[tuple[str, ...]] = (
        SIGNALS,
        ORDERS,
        FILLS,
        POSITIONS,
        REJECTIONS,
        RISK_DECISIONS,
        ROUTER_SWITCHES,
        DLQ,
    )

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen = 0

    async def on_start(self) -> None:
        self._show_state()

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        self._show_state()

    def _show_state(self) -> None:
        for state in ("ACTIVE", "REDUCING", "HALTED"):
            tm.TRADING_STATE.labels(state).set(1 if self.trading.state == state else 0)

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        self.seen += 1
        if isinstance(msg, Fill):
            tm.FILLS_TOTAL.labels(msg.symbol, msg.side).inc()
            if msg.trace_ts_ns:
                tm.TICK_TO_FILL_SECONDS.observe(max(0.0, (time.time_ns() - msg.trace_ts_ns) / 1e9))
        elif isinstance(msg, Position):
            tm.POSITION_SIZE_USD.labels(msg.symbol).set(msg.position_usd)
            tm.PNL_USD.labels(msg.symbol).set(msg.total_pnl_usd)
        elif isinstance(msg, Order):
            tm.ORDERS_TOTAL.labels(msg.symbol, msg.side).inc()
            tm.VAR_PCT.labels(msg.symbol).set(msg.var_pct)
        elif isinstance(msg, RiskDecision):
            tm.EDGE_BLENDED_BPS.labels(msg.symbol).set(msg.edge_blended_bps)
            tm.RISK_DECISIONS_TOTAL.labels(msg.action, msg.reason.split(":")[0]).inc()
        elif isinstance(msg, Signal):
            tm.SIGNALS_TOTAL.labels(msg.model_id, "1" if msg.shadow else "0").inc()
        elif isinstance(msg, Rejection):
            tm.REJECTIONS_TOTAL.labels(msg.reason).inc()
        elif isinstance(msg, RouterSwitch):
            tm.ROUTER_SWITCHES_TOTAL.labels(msg.symbol).inc()
        elif isinstance(msg, DeadLetter):
            tm.DLQ_ENTRIES_TOTAL.labels(msg.source_stream, msg.service).inc()

    def on_batch_end(self, out: Outbox) -> None:
        self._show_state()

    def health_details(self) -> dict[str, Any]:
        return {"entries_seen": self.seen}


SERVICE = Telemetry
