"""risk_harmoniser in-process on a real Redis: orders and decisions, halt, restart."""

from __future__ import annotations

import time

import orjson
import pytest
from redis.asyncio import Redis

from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.service import FILLS_KEY, STATE_KEY, RiskHarmoniser
from shared.bus import Bus
from shared.config import BusSettings
from shared.control import TRADING_KEY
from shared.messages import (
    DLQ,
    MD_TICKS,
    ORDERS,
    RISK_DECISIONS,
    SIGNALS,
    TRADING_CONTROL,
    Fill,
    Signal,
    Tick,
)
from tests.support import running, wait_for, watermark

pytestmark = [pytest.mark.integration, pytest.mark.risk]


def _svc() -> RiskHarmoniser:
    return RiskHarmoniser(RiskParams(bus=BusSettings(block_ms=20)))


async def _feed(r: Redis, edge_bps: float) -> None:
    bus = Bus(r, "test", (), BusSettings())
    now = time.time_ns()
    await bus.publish(
        [
            Tick(
                trace_ts_ns=now,
                symbol="BTC-USD",
                ts_ns=now,
                bid=64_999.0,
                ask=65_001.0,
                bid_size=3.0,
                ask_size=3.0,
                volume=1.0,
            )
        ]
    )
    await bus.publish(
        [
            Signal(
                trace_ts_ns=now,
                symbol="BTC-USD",
                ts_ns=now + 1,
                model_id="consensus",
                horizon="1m",
                edge_bps=edge_bps,
                confidence=1.0,
                mid=65_000.0,
            )
        ]
    )
    # the producers say their streams are complete (as live ones would)
    await watermark(r, "feature_bus", now)
    await watermark(r, "model_router", now + 1)


async def test_signal_gives_order_and_decision_and_state_survives_restart(
    r: Redis, redis_url: str
) -> None:
    async with running(_svc(), redis_url):
        await _feed(r, 150.0)
        orders = await wait_for(lambda: r.xrange(ORDERS), what="an order")
        decisions = await wait_for(lambda: r.xrange(RISK_DECISIONS), what="a decision")
    order = orders[0][1]
    assert order["side"] == "buy" and float(order["position_size_usd"]) > 0
    assert decisions[0][1]["action"] == "order"
    assert decisions[0][1]["order_id"] == order["order_id"]
    assert float(decisions[0][1]["portfolio_var_pct"]) > 0
    # the working order was saved with the ack; a fill after a restart lands on it
    state = orjson.loads(await r.get(STATE_KEY))
    assert order["order_id"] in state["portfolio"]["working"]
    svc = _svc()
    async with running(svc, redis_url):
        assert svc.engine.portfolio.exposure_qty("BTC-USD") == pytest.approx(float(order["qty"]))
        bus = Bus(r, "test", (), BusSettings())
        now = time.time_ns()
        await bus.publish(
            [
                Fill(
                    fill_id="f1",
                    order_id=order["order_id"],
                    symbol="BTC-USD",
                    ts_ns=now,
                    side="buy",
                    qty=float(order["qty"]),
                    price=65_001.0,
                    fee=1.0,
                    slippage_bps=0.1,
                )
            ]
        )
        for producer in ("execution", "feature_bus", "model_router"):
            await watermark(r, producer, now)
        await wait_for(lambda: not svc.engine.portfolio.working, what="order filled")
        assert svc.engine.portfolio.exposure_qty("BTC-USD") == pytest.approx(float(order["qty"]))


async def test_halt_stops_orders_and_is_reported_on_every_decision(
    r: Redis, redis_url: str
) -> None:
    svc = _svc()
    async with running(svc, redis_url):

        async def subscribed() -> bool:
            return dict(await r.pubsub_numsub(TRADING_CONTROL)).get(TRADING_CONTROL, 0) > 0

        await wait_for(subscribed, what="the service listening on trading.control")
        await r.publish(TRADING_CONTROL, orjson.dumps({"action": "halt", "reason": "manual"}))
        await wait_for(lambda: svc.trading.halted, what="halted")
        await _feed(r, 150.0)
        decisions = await wait_for(lambda: r.xrange(RISK_DECISIONS), what="a decision")
        assert decisions[0][1]["action"] == "halt"
        assert decisions[0][1]["trading_state"] == "HALTED"
        assert await r.xlen(ORDERS) == 0
        assert (await r.hgetall(TRADING_KEY))["state"] == "HALTED"
        # a malformed signal goes to the dlq with a reason, the service keeps going
        await r.xadd(SIGNALS, {"symbol": "BTC-USD", "edge_bps": "lots"})
        dead = await wait_for(lambda: r.xrange(DLQ), what="dlq entry")
        assert dead[0][1]["source_stream"] == SIGNALS and "edge_bps" in dead[0][1]["reason"]
    svc = _svc()
    async with running(svc, redis_url):
        assert svc.trading.halted  # restarted while halted: stays halted
    assert await r.xlen(MD_TICKS) == 1


def _fill(fill_id: str, order_id: str, qty: float) -> Fill:
    return Fill(
        fill_id=fill_id,
        order_id=order_id,
        symbol="BTC-USD",
        ts_ns=time.time_ns(),
        side="buy",
        qty=qty,
        price=65_001.0,
        fee=1.0,
        slippage_bps=0.1,
    )


async def test_fill_ids_are_appended_to_their_list_and_dedupe_after_a_restart(
    r: Redis, redis_url: str
) -> None:
    # a snapshot from before the list existed: its fill ids are in the state itself
    legacy = {"portfolio": {"holdings": {}, "working": {}, "marks": {}, "fills": ["old-1"]}}
    await r.set(STATE_KEY, orjson.dumps(legacy))
    bus = Bus(r, "test", (), BusSettings())
    async with running(_svc(), redis_url) as svc:
        await _feed(r, 150.0)
        orders = await wait_for(lambda: r.xrange(ORDERS), what="an order")
        order_id, qty = orders[0][1]["order_id"], float(orders[0][1]["qty"])
        await bus.publish([_fill("old-1", order_id, qty / 2)])  # known: ignored
        await bus.publish([_fill("f1", order_id, qty / 2)])
        for producer in ("execution", "feature_bus", "model_router"):
            await watermark(r, producer, time.time_ns())
        await wait_for(lambda: svc.processed >= 4, what="the fills handled")
        assert svc.engine.portfolio.exposure_qty("BTC-USD") == pytest.approx(qty)
        assert await r.lrange(FILLS_KEY, 0, -1) == ["old-1", "f1"]
        assert "fills" not in orjson.loads(await r.get(STATE_KEY))["portfolio"]
    async with running(_svc(), redis_url) as svc:
        await bus.publish([_fill("f1", order_id, qty / 2)])  # a redelivered copy
        for producer in ("execution", "feature_bus", "model_router"):
            await watermark(r, producer, time.time_ns())
        await wait_for(lambda: svc.processed >= 1, what="the copy handled")
        assert svc.engine.portfolio.exposure_qty("BTC-USD") == pytest.approx(qty)
        assert svc.engine.portfolio.holdings["BTC-USD"].qty == pytest.approx(qty / 2)
        assert await r.lrange(FILLS_KEY, 0, -1) == ["old-1", "f1"]
