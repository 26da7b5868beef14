"""Telemetry in-process on a real Redis: events, metrics, ledger durability, stream
stats, and the RedisTimeSeries detection with its fallback (the module is not loaded)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.telemetry.service import LEDGER_KEY, Telemetry
from services.telemetry.timeseries import TimeSeriesWriter
from shared.messages import (
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
from tests.support import running, wait_for

pytestmark = [pytest.mark.monitoring, pytest.mark.integration]

SYM = "TEL-TEST"


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def add(r: Redis, msg: object) -> str:
    return await r.xadd(msg.STREAM, msg.to_fields())  # type: ignore[attr-defined]


def order(oid: str, side: str, qty: float, trace: int) -> Order:
    return Order(
        trace_ts_ns=trace,
        order_id=oid,
        symbol=SYM,
        ts_ns=trace,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        position_size_usd=qty * 100,
        edge_blended_bps=6.0,
        var_pct=1.2,
        decision_price=100.0,
    )


def fill(oid: str, side: str, qty: float, price: float, trace: int) -> Fill:
    return Fill(
        trace_ts_ns=trace,
        fill_id=f"f-{oid}",
        order_id=oid,
        symbol=SYM,
        ts_ns=time.time_ns(),
        side=side,  # type: ignore[arg-type]
        qty=qty,
        price=price,
        fee=0.02,
        slippage_bps=1.0,
        venue="paper",
    )


async def events(r: Redis) -> list[Event]:
    return [Event.from_fields(f) for _, f in await r.xrange("events")]


async def test_fills_become_standard_events_with_pnl_on_close(redis_url: str, r: Redis) -> None:
    trace = time.time_ns()
    votes = {"ema": {"edge_bps": 8.0, "confidence": 0.7, "weight": 0.75}, "ob": {"weight": 0.25}}
    await add(
        r,
        Signal(
            trace_ts_ns=trace,
            symbol=SYM,
            ts_ns=trace,
            model_id="consensus",
            horizon="1m",
            edge_bps=6.0,
            confidence=0.7,
            regime="TREND",
            features_hash="abc123",
            consensus_score=0.82,
            votes=votes,
        ),
    )
    await add(r, order("o1", "buy", 2, trace))
    await add(r, fill("o1", "buy", 2, 100.0, trace))
    before = sample("pnl_attributed_usd", engine="ema", regime="TREND", venue="paper") or 0.0
    svc = Telemetry()
    async with running(svc, redis_url):
        await wait_for(lambda: svc.events_written >= 1, what="first event")
        # the position closes: sell 2 @ 110 realizes +20 USD
        await add(r, order("o2", "sell", 2, trace + 1))
        await add(r, fill("o2", "sell", 2, 110.0, trace + 1))
        await wait_for(lambda: svc.events_written >= 2, what="closing event")
        evs = await events(r)
        assert [e.action for e in evs] == ["buy", "sell"]
        opened, closed = evs
        assert opened.realized_pnl_usd is None  # still open
        assert opened.engine_votes == votes and opened.consensus_score == 0.82
        assert (opened.regime, opened.features_hash) == ("TREND", "abc123")
        assert opened.expected_edge_bps == 6.0 and opened.size_usd == pytest.approx(200.0)
        # fee 0.02 on 200 USD = 1 bp, + 1 bp slippage
        assert opened.costs_bps == pytest.approx(2.0)
        assert closed.realized_pnl_usd == pytest.approx(20.0)
        assert closed.trade_id == "o1"
        # attribution by weight: 15 to ema, 5 to ob, under the opening regime
        after = sample("pnl_attributed_usd", engine="ema", regime="TREND", venue="paper")
        assert after == pytest.approx(before + 15.0)
        assert sample("consensus_score", symbol=SYM) == 0.82
        assert sample("model_weight", symbol=SYM, model_id="ema") == 0.75
        assert sample("var_pct", symbol=SYM) == 1.2
        assert (sample("tick_to_fill_seconds_count") or 0) >= 2
        assert (sample("pipeline_hop_seconds_count", hop="order_to_fill") or 0) >= 2
        assert (sample("pipeline_hop_seconds_count", hop="tick_to_signal") or 0) >= 1
    assert await r.hexists(LEDGER_KEY, SYM)


async def test_ledger_survives_a_restart(redis_url: str, r: Redis) -> None:
    trace = time.time_ns()
    await add(r, order("r1", "buy", 1, trace))
    await add(r, fill("r1", "buy", 1, 50.0, trace))
    first = Telemetry()
    async with running(first, redis_url):
        await wait_for(lambda: first.events_written >= 1, what="opening event")
    await add(r, order("r2", "sell", 1, trace + 1))
    await add(r, fill("r2", "sell", 1, 45.0, trace + 1))
    second = Telemetry()
    async with running(second, redis_url):
        await wait_for(lambda: second.events_written >= 1, what="closing event")
    closing = (await events(r))[-1]
    assert closing.realized_pnl_usd == pytest.approx(-5.0)
    assert closing.trade_id == "r1"  # the trade opened before the restart
    assert len(await events(r)) == 2  # nothing re-emitted


async def test_counts_gauges_and_stream_stats(redis_url: str, r: Redis) -> None:
    now = time.time_ns()
    sw0 = sample("router_switches_total", symbol=SYM) or 0.0
    rj0 = sample("rejections_total", reason="stale_quote") or 0.0
    dl0 = sample("dlq_entries_total", source_stream="orders", service="execution") or 0.0
    await add(r, RouterSwitch(symbol=SYM, ts_ns=now, from_model="ema", to_model="ob", reason="x"))
    await add(r, Rejection(order_id="z", symbol=SYM, ts_ns=now, reason="stale_quote: 900 ms"))
    await add(
        r, DeadLetter(source_stream="orders", entry_id="1-0", service="execution", reason="r")
    )
    await add(
        r,
        RiskDecision(
            symbol=SYM,
            ts_ns=now,
            action="halt",
            reason="trading_halted:manual",
            trading_state="HALTED",
            edge_blended_bps=-3.5,
        ),
    )
    await add(
        r,
        Position(
            symbol=SYM,
            ts_ns=now,
            qty=2,
            avg_price=100,
            mark=105,
            position_usd=210,
            realized_pnl_usd=0,
            unrealized_pnl_usd=10,
            fees_usd=1,
            total_pnl_usd=9,
        ),
    )
    await r.xadd("signals", {"symbol": SYM, "edge_bps": "not a number"})  # garbage
    svc = Telemetry()
    async with running(svc, redis_url):
        await wait_for(lambda: svc.seen >= 5, what="entries handled")
        assert sample("router_switches_total", symbol=SYM) == sw0 + 1
        assert sample("active_model", symbol=SYM, model_id="ob") == 1
        assert sample("rejections_total", reason="stale_quote") == rj0 + 1  # detail dropped
        assert sample("dlq_entries_total", source_stream="orders", service="execution") == dl0 + 1
        assert sample("edge_blended_bps", symbol=SYM) == -3.5
        assert sample("trading_state", state="HALTED") == 1
        assert sample("position_size_usd", symbol=SYM) == 210
        assert sample("pnl_usd", symbol="portfolio") == 9
        # the 1 s poll: every stream's length and every group's lag and pending
        await wait_for(
            lambda: sample("stream_length_entries", stream="dlq") == 2, what="dlq length gauge"
        )  # the injected one plus telemetry's own dead letter for the garbage signal
        assert sample("stream_group_pending_entries", stream="signals", group="telemetry") == 0
        assert sample("stream_group_lag_entries", stream="signals", group="telemetry") == 0
        assert sample("telemetry_timeseries_enabled") == 0


async def test_timeseries_detection_and_fallback_on_plain_redis(r: Redis) -> None:
    """This Redis has no RedisTimeSeries: detection says so, and writing is a no-op
    (no TS.ADD sent, which would fail with 'unknown command')."""
    assert [m for m in await r.execute_command("MODULE", "LIST")] == []
    writer = TimeSeriesWriter(retention_ms=1000)
    assert await writer.detect(r) is False
    assert await writer.write(r, [("var_pct", "X", 1, 1.0)]) == 0
    assert await r.keys("edgebus:ts:*") == []
    # forced on against a server without the module: errors are counted, not raised
    writer.enabled = True
    assert await writer.write(r, [("var_pct", "X", 1, 1.0)]) == 0
