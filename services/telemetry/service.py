"""telemetry: every stream in its own group -> Prometheus metrics, standard events,
RedisTimeSeries (when loaded), stream stats. See docs/telemetry.md.

``md.ticks`` and ``features`` are not consumed: they are the high-rate streams, and
everything telemetry needs from them travels on: ``trace_ts_ns`` (the tick time) and
the signal's regime and features_hash. Their length and every group's lag still come
from the 1 s XINFO poll.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any, ClassVar

import orjson

from services.execution.positions import PositionBook
from services.telemetry import metrics as tm
from services.telemetry.config import TelemetryConfig
from services.telemetry.daily import DAY_NS, DailyMetricsBook
from services.telemetry.latency import entry_ms, hops_s
from services.telemetry.stream_stats import poll
from services.telemetry.timeseries import Sample, TimeSeriesWriter
from services.telemetry.trades import (
    Bounded,
    DecisionContext,
    Drawdown,
    Trade,
    TradeLedger,
    costs_bps,
    split_by_votes,
)
from shared.bus import Entry, Outbox, dead_letter
from shared.config import KEY_PREFIX, project_root
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
    STREAMS,
    DeadLetter,
    Event,
    Fill,
    Order,
    Position,
    Rejection,
    RiskDecision,
    RouterSwitch,
    Signal,
)
from shared.service import Service

# Telemetry's own trade ledger, written with the acks of the fills that changed it, so
# a restart neither loses nor double-counts a fill.
LEDGER_KEY = f"{KEY_PREFIX}:telemetry:ledger"
PORTFOLIO = tm.PORTFOLIO
TS_METRICS = ("edge_blended_bps", "position_size_usd", "var_pct", "pnl_usd")
# A day of event time closes once an entry 5 min (event time) into the next day has come:
# the streams are read side by side, so the last entries of a day on one stream can come
# a little after the first of the next on another (docs/telemetry.md, "Daily metrics").
DAILY_CLOSE_GRACE_NS = 300 * 10**9
MAX_OPEN_DAYS = 8  # days of PnL kept for the daily report before their day closes


def _empty_day() -> dict[str, Any]:
    return {
        "fills": 0,
        "realized_usd": 0.0,
        "by_engine_usd": {},
        "costs_usd": {"fee": 0.0, "slippage": 0.0, "funding": 0.0},
    }


DAILY_INPUT_CAP = 100_000  # per kind and day, oldest dropped first


def reason_label(reason: str) -> str:
    """A bounded label: the reason code before any ':' detail, at most 40 characters;
    for an exit or a breaker, its kind too (``exit:stop_loss``, ``breaker:daily_loss``)."""
    head, _, rest = reason.partition(":")
    if head in ("exit", "breaker", "breaker_lifted") and rest:
        kind = rest.split()[0] if rest.split() else ""
        return f"{head}:{kind}"[:40]
    return (head.strip() or "unknown")[:40]


class Telemetry(Service[TelemetryConfig]):
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

    def __init__(self, config: TelemetryConfig | None = None) -> None:
        super().__init__(config)
        cap = self.config.context_cap
        self.seen = 0
        self.events_written = 0
        self.ledger = TradeLedger()
        self.drawdown: dict[str, Drawdown] = {}
        self.positions: dict[str, Position] = {}
        self.var_by_symbol: dict[str, float] = {}
        self.portfolio_var_pct: float | None = None
        # (symbol, trace_ts_ns) -> (first signal write ms, decision context)
        self.traces: Bounded[tuple[str, int], tuple[int | None, DecisionContext]] = Bounded(cap)
        self.latest_ctx: dict[str, DecisionContext] = {}
        self.symbols: set[str] = set()
        # order_id -> (context, signal ms, order ms)
        self.orders: Bounded[str, tuple[DecisionContext, int | None, int | None]] = Bounded(cap)
        self.gauges: dict[tuple[str, str], float] = {}  # what the time-series writer samples
        self.ts = TimeSeriesWriter(self.config.timeseries_retention_ms)
        self.child = tm.LabelCache()  # metric.labels(...) bound once per label values
        self.writes = tm.BatchWrites(self.child)  # gauge sets and counts, per batch
        self._state_shown: str | None = None  # what the trading_state gauges show
        self.daily = DailyMetricsBook(DAILY_INPUT_CAP, DAILY_CLOSE_GRACE_NS)
        self._daily_dropped_shown = (0, 0)  # (cap, late) counted into the counter
        self.daily_last: dict[str, float | int] = {}  # the last closed day's metrics
        # UTC day of event time -> its PnL by engine and its costs (the daily report)
        self.day_pnl: dict[int, dict[str, Any]] = {}
        self._reports: list[tuple[str, bytes]] = []  # written once the batch is committed

    def on_config(self, config: TelemetryConfig) -> None:
        self.ts.retention_ms = config.timeseries_retention_ms
        for d in self.drawdown.values():
            d.equity_usd = config.equity_usd

    async def on_start(self) -> None:
        raw = await self.r.hgetall(LEDGER_KEY)  # type: ignore[misc]
        for key, blob in raw.items():
            symbol = str(key)
            doc = orjson.loads(blob)
            self.ledger.books[symbol] = PositionBook(**doc["book"])
            if doc.get("trade"):
                t = doc["trade"]
                self.ledger.open[symbol] = Trade(
                    t["trade_id"], symbol, DecisionContext(**t["context"]), t["realized_pnl_usd"]
                )
        tm.TIMESERIES_ENABLED.set(1 if await self.ts.detect(self.r) else 0)
        self._state_shown = None  # written at start whatever was shown before
        self._show_state(self.trading.state)

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        self._show_state(self.trading.state)

    def _show_state(self, state: str) -> None:
        # Every risk decision carries the state: write the gauges only when it changes.
        if state == self._state_shown:
            return
        for s in ("ACTIVE", "REDUCING", "HALTED"):
            self.child(tm.TRADING_STATE, s).set(1 if state == s else 0)
        self._state_shown = state

    def _gauge(self, gauge: Any, metric: str, symbol: str, value: float) -> None:
        self.writes.set(gauge, value, symbol)
        self.gauges[(metric, symbol)] = value

    # ---- handling ----------------------------------------------------------------------

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        self.seen += 1
        if isinstance(msg, Signal):
            self.daily.add_signal(msg)
            self._on_signal(entry, msg)
        elif isinstance(msg, Order):
            self._on_order(entry, msg)
        elif isinstance(msg, Fill):
            self._on_fill(entry, msg, out)
        elif isinstance(msg, Position):
            if msg.equity_usd is not None:
                self.daily.add_equity(msg.ts_ns, msg.equity_usd)
            self._on_position(msg)
        elif isinstance(msg, RiskDecision):
            self.daily.add_decision(msg)
            self._on_decision(msg, out)
        elif isinstance(msg, Rejection):
            self.writes.count(tm.REJECTIONS_TOTAL, reason_label(msg.reason))
        elif isinstance(msg, RouterSwitch):
            self.writes.count(tm.ROUTER_SWITCHES_TOTAL, msg.symbol)
            self.writes.set(tm.ACTIVE_MODEL, 0, msg.symbol, msg.from_model)
            self.writes.set(tm.ACTIVE_MODEL, 1, msg.symbol, msg.to_model)
        elif isinstance(msg, DeadLetter):
            self.writes.count(tm.DLQ_ENTRIES_TOTAL, msg.source_stream, msg.service)

    def _on_signal(self, entry: Entry, sig: Signal) -> None:
        if sig.symbol not in self.symbols:  # a zero series, so the first switch counts
            self.symbols.add(sig.symbol)
            self.child(tm.ROUTER_SWITCHES_TOTAL, sig.symbol)
        self.writes.count(tm.SIGNALS_TOTAL, sig.model_id, "1" if sig.shadow else "0")
        if sig.shadow:
            return
        votes = sig.votes
        score = sig.consensus_score
        ctx = DecisionContext(
            expected_edge_bps=sig.edge_bps,
            consensus_score=score,
            engine_votes=votes,
            regime=sig.regime or "",
            features_hash=sig.features_hash,
            model_id=sig.model_id,
        )
        key = (sig.symbol, sig.trace_ts_ns)
        prev = self.traces.get(key)
        if prev is None:
            self.traces[key] = (entry_ms(entry.entry_id), ctx)
        elif votes or sig.model_id == "consensus":  # the consensus explains the decision
            self.traces[key] = (prev[0], ctx)
        if prev is None or votes or sig.model_id == "consensus":
            self.latest_ctx[sig.symbol] = ctx
        if score is not None:
            self.writes.set(tm.CONSENSUS_SCORE, score, sig.symbol)
        for model_id, vote in (votes or {}).items():
            w = vote.get("weight") if isinstance(vote, dict) else None
            if isinstance(w, (int, float)):
                self.writes.set(tm.MODEL_WEIGHT, w, sig.symbol, str(model_id))

    def _on_order(self, entry: Entry, order: Order) -> None:
        self.writes.count(tm.ORDERS_TOTAL, order.symbol, order.side)
        known = self.traces.get((order.symbol, order.trace_ts_ns))
        signal_ms, ctx = known if known else (None, self.latest_ctx.get(order.symbol))
        base = ctx or DecisionContext()
        ctx = DecisionContext(
            order.edge_blended_bps,
            base.consensus_score,
            base.engine_votes,
            base.regime,
            base.features_hash,
            base.model_id,
        )
        self.orders[order.order_id] = (ctx, signal_ms, entry_ms(entry.entry_id))
        self._gauge(tm.VAR_PCT, "var_pct", order.symbol, order.var_pct)
        self.var_by_symbol[order.symbol] = order.var_pct
        self._portfolio_var()

    def _on_decision(self, d: RiskDecision, out: Outbox) -> None:
        self.writes.count(tm.RISK_DECISIONS_TOTAL, d.action, reason_label(d.reason))
        if d.action == "breaker":  # a breaker tripped or lifted: a standard event of its own
            self._show_state(d.trading_state)
            out.emit(
                Event.checked(
                    {
                        "trace_ts_ns": d.trace_ts_ns,
                        "symbol": d.symbol,
                        "ts_ns": d.ts_ns,
                        "timestamp": dt.datetime.fromtimestamp(d.ts_ns / 1e9, dt.UTC).isoformat(),
                        "action": "breaker",
                        "size_usd": 0.0,
                        "price": 0.0,
                        "reason": d.reason,
                    }
                )
            )
            self.events_written += 1
            return
        self._gauge(tm.EDGE_BLENDED_BPS, "edge_blended_bps", d.symbol, d.edge_blended_bps)
        self._show_state(d.trading_state)
        self.portfolio_var_pct = d.portfolio_var_pct
        self._portfolio_var()

    def _portfolio_var(self) -> None:
        """Risk's portfolio VaR when it reports one; else the sum of the per-symbol VaRs
        (perfect correlation: an upper bound)."""
        value = self.portfolio_var_pct
        if value is None:
            value = sum(self.var_by_symbol.values())
        self._gauge(tm.VAR_PCT, "var_pct", PORTFOLIO, value)

    def _on_fill(self, entry: Entry, fill: Fill, out: Outbox) -> None:
        notional_usd = fill.qty * fill.price
        cost_bps = costs_bps(fill.qty, fill.price, fill.fee, fill.slippage_bps)
        if not (math.isfinite(notional_usd) and math.isfinite(cost_bps)):
            # Decodable but out of any range (1e308 units, a 5e-324 price): no trade to
            # record; the dlq says why instead of the batch failing on it.
            reason = f"fill out of range: notional {notional_usd} USD, costs {cost_bps} bps"
            out.dead.append(dead_letter(self.name, entry, reason))
            return
        self.daily.add_fill(fill)
        now_ns = time.time_ns()
        self.writes.count(tm.FILLS_TOTAL, fill.symbol, fill.side, fill.venue)
        self.child(tm.FILLED_USD_TOTAL, fill.symbol).inc(fill.qty * fill.price)
        ctx, signal_ms, order_ms = self.orders.get(fill.order_id, (None, None, None))
        ctx = ctx or self.latest_ctx.get(fill.symbol) or DecisionContext()
        if fill.trace_ts_ns:
            fill_ms = entry_ms(entry.entry_id)
            # until the fill was written (its entry id), not until telemetry read it
            written_ns = fill_ms * 1_000_000 if fill_ms is not None else now_ns
            tm.TICK_TO_FILL_SECONDS.observe(max(0.0, (written_ns - fill.trace_ts_ns) / 1e9))
            hops = hops_s(fill.trace_ts_ns, signal_ms, order_ms, fill_ms, now_ns)
            for hop, seconds in hops.items():
                self.child(tm.HOP_SECONDS, hop).observe(seconds)
        signed = fill.qty if fill.side == "buy" else -fill.qty
        result = self.ledger.on_fill(fill.symbol, signed, fill.price, fill.fee, fill.order_id, ctx)
        slippage_usd = fill.slippage_bps * fill.qty * fill.price / 1e4
        self.child(tm.COSTS_USD, "fee", fill.venue).inc(fill.fee)
        self.child(tm.COSTS_USD, "slippage", fill.venue).inc(slippage_usd)
        self.child(tm.COSTS_USD, "funding", fill.venue).inc(fill.funding_usd)
        day = self._day_pnl(fill.ts_ns)
        day["fills"] += 1
        costs = day["costs_usd"]
        costs["fee"] += fill.fee
        costs["slippage"] += slippage_usd
        costs["funding"] += fill.funding_usd
        if result.realized_usd:
            opening = result.trade.context if result.closed is None else result.closed.context
            split = split_by_votes(result.realized_usd, opening.engine_votes, opening.model_id)
            day["realized_usd"] += result.realized_usd
            by_engine = day["by_engine_usd"]
            for engine, usd in split.items():
                by_engine[engine] = by_engine.get(engine, 0.0) + usd
            for engine, usd in split.items():
                self.child(
                    tm.PNL_ATTRIBUTED_USD, engine, opening.regime or "unknown", fill.venue
                ).inc(usd)
        if result.closed is not None:
            self.writes.count(tm.TRADES_CLOSED_TOTAL, fill.symbol)
        event = Event.checked(
            {
                "trace_ts_ns": fill.trace_ts_ns,
                "symbol": fill.symbol,
                "ts_ns": fill.ts_ns,
                "timestamp": dt.datetime.fromtimestamp(fill.ts_ns / 1e9, dt.UTC).isoformat(),
                "action": fill.side,
                "size_usd": fill.qty * fill.price,
                "price": fill.price,
                "expected_edge_bps": ctx.expected_edge_bps,
                "consensus_score": ctx.consensus_score,
                "engine_votes": dict(ctx.engine_votes) if ctx.engine_votes else None,
                "regime": ctx.regime,
                "features_hash": ctx.features_hash,
                "costs_bps": cost_bps,
                "realized_pnl_usd": result.closed.realized_pnl_usd if result.closed else None,
                "trade_id": (result.closed or result.trade).trade_id,
                "order_id": fill.order_id,
                "fill_id": fill.fill_id,
                "venue": fill.venue,
            }
        )
        out.emit(event)
        self.writes.count(tm.EVENTS_TOTAL, fill.side)
        self.events_written += 1
        blob = self._ledger_blob(fill.symbol)
        out.call(lambda pipe: pipe.hset(LEDGER_KEY, fill.symbol, blob))

    def _ledger_blob(self, symbol: str) -> bytes:
        book = self.ledger.books[symbol]
        trade = self.ledger.open.get(symbol)
        doc: dict[str, Any] = {"book": book.as_dict(), "trade": None}
        if trade is not None:
            c = trade.context
            doc["trade"] = {
                "trade_id": trade.trade_id,
                "realized_pnl_usd": trade.realized_pnl_usd,
                "context": {
                    "expected_edge_bps": c.expected_edge_bps,
                    "consensus_score": c.consensus_score,
                    "engine_votes": dict(c.engine_votes) if c.engine_votes else None,
                    "regime": c.regime,
                    "features_hash": c.features_hash,
                    "model_id": c.model_id,
                },
            }
        return orjson.dumps(doc)

    def _on_position(self, p: Position) -> None:
        self.positions[p.symbol] = p
        equity = self.config.equity_usd
        for symbol, value, realized, unrealized, fees, total in (
            (
                p.symbol,
                p.position_usd,
                p.realized_pnl_usd,
                p.unrealized_pnl_usd,
                p.fees_usd,
                p.total_pnl_usd,
            ),
            (PORTFOLIO, *self._portfolio_sums()),
        ):
            self._gauge(tm.POSITION_SIZE_USD, "position_size_usd", symbol, value)
            self._gauge(tm.PNL_USD, "pnl_usd", symbol, total)
            self.writes.set(tm.PNL_REALIZED_USD, realized, symbol)
            self.writes.set(tm.PNL_UNREALIZED_USD, unrealized, symbol)
            self.writes.set(tm.FEES_USD, fees, symbol)
            dd_usd, dd_pct = self.drawdown.setdefault(symbol, Drawdown(equity)).update(total)
            self.writes.set(tm.DRAWDOWN_USD, dd_usd, symbol)
            self.writes.set(tm.DRAWDOWN_PCT, dd_pct, symbol)
        tm.GROSS_EXPOSURE_USD.set(sum(abs(x.position_usd) for x in self.positions.values()))

    def _portfolio_sums(self) -> tuple[float, float, float, float, float]:
        ps = self.positions.values()
        return (
            sum(x.position_usd for x in ps),
            sum(x.realized_pnl_usd for x in ps),
            sum(x.unrealized_pnl_usd for x in ps),
            sum(x.fees_usd for x in ps),
            sum(x.total_pnl_usd for x in ps),
        )

    def on_batch_end(self, out: Outbox) -> None:
        self._close_days()
        self.writes.flush()

    def _day_pnl(self, ts_ns: int) -> dict[str, Any]:
        day = ts_ns // DAY_NS
        got = self.day_pnl.get(day)
        if got is None:
            got = self.day_pnl[day] = _empty_day()
            while len(self.day_pnl) > MAX_OPEN_DAYS:  # bounded: the oldest goes
                self.day_pnl.pop(min(self.day_pnl))
        return got

    def _report(self, day_start_ns: int, metrics: dict[str, float | int]) -> None:
        """Seed 003's 23:55 snapshot: the day's PnL attribution by engine and by cost,
        and its daily metrics, as ``<reports_dir>/pnl-YYYY-MM-DD.json`` (written when the
        day closes in event time: docs/daily.md)."""
        pnl = self.day_pnl.pop(day_start_ns // DAY_NS, None) or _empty_day()
        if not self.config.reports_dir:
            return
        date = dt.datetime.fromtimestamp(day_start_ns / 1e9, dt.UTC).date().isoformat()
        doc = {
            "day": date,
            "day_start_ns": day_start_ns,
            "fills": pnl["fills"],
            "realized_pnl_usd": pnl["realized_usd"],
            "pnl_by_engine_usd": pnl["by_engine_usd"],
            "costs_usd": pnl["costs_usd"],
            "daily_metrics": {
                k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in metrics.items()
            },
        }
        blob = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        self._reports.append((f"pnl-{date}.json", blob))

    def on_committed(self) -> None:
        super().on_committed()
        if not self._reports:
            return
        reports, self._reports = self._reports, []
        folder = project_root() / self.config.reports_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, blob in reports:
                (folder / name).write_bytes(blob)
                self.log.info("daily report %s", folder / name)
        except OSError as exc:  # a full or read-only disk never stops telemetry
            self.log.error("daily report not written to %s: %s", folder, exc)

    def _close_days(self) -> None:
        """The daily gauges of every day of event time that closed in this batch (set at
        once, not with the batch's writes: a closed day is not closed again)."""
        for day in self.daily.days_due():
            metrics = self.daily.close_day(day)
            self.daily_last = metrics
            self._report(int(metrics["day_start_ns"]), metrics)
            for stat in tm.SLIPPAGE_STATS:
                self.child(tm.DAILY_SLIPPAGE_ERROR_BPS, stat).set(metrics[f"slippage_{stat}_bps"])
            for stat in tm.WARNING_STATS:
                self.child(tm.DAILY_EARLY_WARNING_RATIO, stat).set(metrics[f"early_warning_{stat}"])
            tm.DAILY_CONSENSUS_DIVERSITY_RATIO.set(metrics["consensus_diversity"])
            for kind, key in (
                ("fills", "slippage_n"),
                ("warnings", "early_warning_n"),
                ("drawdowns", "early_warning_drawdowns_n"),
                ("consensus", "consensus_diversity_n"),
            ):
                self.child(tm.DAILY_INPUTS, kind).set(metrics[key])
            tm.DAILY_DAY_START_SECONDS.set(metrics["day_start_ns"] / 1e9)
        cap, late = sum(self.daily.dropped.values()), self.daily.late
        shown_cap, shown_late = self._daily_dropped_shown
        if cap > shown_cap:
            self.child(tm.DAILY_INPUTS_DROPPED_TOTAL, "cap").inc(cap - shown_cap)
        if late > shown_late:
            self.child(tm.DAILY_INPUTS_DROPPED_TOTAL, "late").inc(late - shown_late)
        self._daily_dropped_shown = (cap, late)

    async def on_batch_failed(self) -> None:
        # The batch is handled again: its writes come again then (counted once).
        self.writes.discard()

    # ---- the 1 s poll (the runtime's observe pass) --------------------------------------

    def observe_interval_s(self) -> float:
        return float(self.config.poll_interval_s)

    async def on_observe(self) -> None:
        """Stream lengths and group lags (XINFO), then the time-series samples."""
        lengths, groups = await poll(self.r, tuple(STREAMS))
        for stream, n in lengths.items():
            self.child(tm.STREAM_LENGTH, stream).set(n)
        for g in groups:
            if g.lag is not None:
                self.child(tm.STREAM_GROUP_LAG, g.stream, g.group).set(g.lag)
            self.child(tm.STREAM_GROUP_PENDING, g.stream, g.group).set(g.pending)
        if self.ts.enabled:
            now_ms = time.time_ns() // 1_000_000  # monitoring samples: wall clock
            samples: list[Sample] = [(m, s, now_ms, v) for (m, s), v in self.gauges.items()]
            await self.ts.write(self.r, samples)

    def health_details(self) -> dict[str, Any]:
        return {
            "entries_seen": self.seen,
            "events_written": self.events_written,
            "timeseries": self.ts.enabled,
            "open_trades": len(self.ledger.open),
            "daily_metrics": {
                k: (v if math.isfinite(v) else None) for k, v in self.daily_last.items()
            },
        }


SERVICE = Telemetry
