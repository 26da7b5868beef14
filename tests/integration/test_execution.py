"""execution against a real Redis: idempotence, restart with working orders, halt and
flatten, and the compare-and-set that keeps a fill from being written twice."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from services.execution import store
from services.execution.config import ExecutionConfig, StrategyRules
from services.execution.engine import Outputs
from services.execution.service import Execution
from shared.bus import Bus, Outbox
from shared.config import BusSettings
from shared.messages import (
    FILLS,
    MD_TICKS,
    ORDERS,
    POSITIONS,
    REJECTIONS,
    TRADING_CONTROL,
    Fill,
    Order,
    Tick,
)
from tests.support import caught_up, running, wait_for, watermark

pytestmark = pytest.mark.integration


def make_service(**over: Any) -> Execution:
    # Event time: execution merges md.ticks and orders under the watermarks of
    # feature_bus and risk_harmoniser, which these tests write themselves (``mark``).
    # max_hold_ms is long so that neither is ever stepped over: a stepped-over producer
    # holds nothing back, and every timer (arrivals, expiries) would be due at once.
    fields: dict[str, Any] = {
        "bus": BusSettings(block_ms=20, max_hold_ms=60_000),
        "impact_coeff": 0.0,
        "impact_fallback_bps": 0.0,
        "taker_fee_bps": 2.0,  # the fees these tests' numbers are worked with
        "maker_fee_bps": -0.5,
        "max_participation_pct": 100.0,
        "strategies": StrategyRules(enabled=False),
    }
    fields.update(over)
    return Execution(ExecutionConfig(**fields))


def tick_fields(ts_ns: int, bid: float = 100.0, ask: float = 100.1, size: float = 10.0) -> Any:
    return Tick(
        symbol="X", ts_ns=ts_ns, bid=bid, ask=ask, bid_size=size, ask_size=size, volume=1.0
    ).to_fields()


def order_fields(oid: str, qty: float, side: str = "buy", ts_ns: int | None = None) -> Any:
    return Order(
        order_id=oid,
        symbol="X",
        ts_ns=ts_ns or time.time_ns(),
        side=side,  # type: ignore[arg-type]
        qty=qty,
        position_size_usd=qty * 100,
        edge_blended_bps=3.0,
        var_pct=0.1,
        decision_price=100.05,
    ).to_fields()


async def mark(r: Redis, wm_ns: int) -> None:
    """Both upstreams complete through ``wm_ns``: the ticks and orders written so far."""
    await watermark(r, "feature_bus", wm_ns)
    await watermark(r, "risk_harmoniser", wm_ns)


def handled(r: Redis) -> Any:
    """Every tick and order written so far handled (read and acknowledged)."""
    return lambda: caught_up(r, "execution", MD_TICKS, ORDERS)


async def fills(r: Redis) -> list[dict[str, str]]:
    return [f for _, f in await r.xrange(FILLS)]


async def filled_qty(r: Redis, oid: str) -> float:
    return sum(float(f["qty"]) for f in await fills(r) if f["order_id"] == oid)


async def test_the_same_order_entry_twice_fills_once(redis_url: str, r: Redis) -> None:
    base = time.time_ns()
    await r.xadd(MD_TICKS, tick_fields(base))
    async with running(make_service(), redis_url):
        o = order_fields("dup", 2.0, ts_ns=base + 1)
        await r.xadd(ORDERS, o)
        await r.xadd(ORDERS, o)  # redelivered / duplicated upstream
        await r.xadd(MD_TICKS, tick_fields(base + 10_000_000))
        await mark(r, base + 10_000_000)
        await wait_for(lambda: filled_qty(r, "dup"), what="the fill")
        await wait_for(handled(r), what="every entry handled")
    async with running(make_service(), redis_url):  # a restart: memory from Redis
        await r.xadd(ORDERS, o)
        await mark(r, base + 20_000_000)
        await wait_for(handled(r), what="the third copy handled")
    assert [f["order_id"] for f in await fills(r)] == ["dup"]
    assert await r.hget(store.ORDERS_DONE_KEY, "dup") == "filled"
    book = orjson.loads(await r.hget(store.POSITIONS_KEY, "X"))
    assert book["qty"] == pytest.approx(2.0)


async def test_working_order_survives_a_restart_without_doubling(redis_url: str, r: Redis) -> None:
    base = time.time_ns()
    await r.xadd(MD_TICKS, tick_fields(base, size=4.0))
    async with running(make_service(max_participation_pct=25.0), redis_url):
        await r.xadd(ORDERS, order_fields("big", 3.0, ts_ns=base + 1))  # 1 per tick
        await r.xadd(MD_TICKS, tick_fields(base + 10_000_000, size=4.0))
        await mark(r, base + 10_000_000)
        await wait_for(lambda: filled_qty(r, "big"), what="a first partial fill")
    assert await r.hexists(store.WORKING_KEY, "big")
    before = await filled_qty(r, "big")
    async with running(make_service(max_participation_pct=25.0), redis_url) as svc:
        assert "big" in svc.engine.working
        for i in range(2, 6):
            await r.xadd(MD_TICKS, tick_fields(base + i * 10_000_000, size=4.0))
        await mark(r, base + 5 * 10_000_000)
        await wait_for(lambda: not svc.engine.working, what="the order completed")
    got = await fills(r)
    assert before < 3.0
    assert sum(float(f["qty"]) for f in got) == pytest.approx(3.0)
    assert [int(f["fill_seq"]) for f in got] == list(range(1, len(got) + 1))
    assert len({f["fill_id"] for f in got}) == len(got)
    assert not await r.hexists(store.WORKING_KEY, "big")


async def test_halt_cancels_working_orders_and_nothing_fills_after(
    redis_url: str, r: Redis
) -> None:
    base = time.time_ns()
    await r.xadd(MD_TICKS, tick_fields(base, size=4.0))
    async with running(make_service(max_participation_pct=25.0), redis_url) as svc:
        await r.xadd(ORDERS, order_fields("w", 10.0, ts_ns=base + 1))
        await r.xadd(MD_TICKS, tick_fields(base + 10_000_000, size=4.0))
        await mark(r, base + 10_000_000)
        await wait_for(lambda: filled_qty(r, "w"), what="a partial fill")
        await r.publish(TRADING_CONTROL, orjson.dumps({"action": "halt", "reason": "test"}))
        rejections = await wait_for(lambda: r.xrange(REJECTIONS), what="the cancel")
        cancel = rejections[0][1]
        assert cancel["reason"] == "cancelled:trading_halted" and cancel["order_id"] == "w"
        n_fills = len(await fills(r))
        assert float(cancel["qty"]) == pytest.approx(10.0 - await filled_qty(r, "w"))
        for i in range(2, 6):
            await r.xadd(MD_TICKS, tick_fields(base + i * 10_000_000, size=4.0))
        await r.xadd(ORDERS, order_fields("after", 1.0, ts_ns=base + 45_000_000))
        await mark(r, base + 5 * 10_000_000)
        await wait_for(handled(r), what="ticks and order after the halt")
        assert svc.engine.quotes.newest("X").ts_ns == base + 5 * 10_000_000  # type: ignore[union-attr]

        async def refused() -> list[dict[str, str]]:
            return [f for _, f in await r.xrange(REJECTIONS) if f["order_id"] == "after"]

        [refusal] = await wait_for(refused, what="the new order refused")
        assert refusal["reason"] == "trading_halted"
        assert len(await fills(r)) == n_fills
        assert not await r.hlen(store.WORKING_KEY)


async def test_flatten_closes_every_position_at_market(redis_url: str, r: Redis) -> None:
    base = time.time_ns()
    await r.xadd(MD_TICKS, tick_fields(base))
    async with running(make_service(), redis_url) as svc:
        await r.xadd(ORDERS, order_fields("long", 2.0, ts_ns=base + 1))
        await r.xadd(MD_TICKS, tick_fields(base + 10_000_000, 101.0, 101.1))
        await mark(r, base + 10_000_000)
        await wait_for(lambda: filled_qty(r, "long"), what="the opening fill")
        await wait_for(handled(r), what="the 10 ms tick handled")
        await r.publish(TRADING_CONTROL, orjson.dumps({"action": "flatten"}))
        await wait_for(lambda: svc.engine.books["X"].qty == 0, what="flat")
        got = await fills(r)
        close = got[-1]
        assert (close["side"], float(close["qty"]), close["strategy"]) == ("sell", 2.0, "flatten")
        assert float(close["price"]) == pytest.approx(101.0)
        snap = [f for _, f in await r.xrange(POSITIONS)][-1]
        assert float(snap["qty"]) == 0.0
        # realized = 2 * (101.0 - 100.1) = 1.80; fees = 2 bps of 200.2 and of 202.0
        assert float(snap["realized_pnl_usd"]) == pytest.approx(1.80)
        assert float(snap["total_pnl_usd"]) == pytest.approx(1.80 - 0.04004 - 0.0404)
        assert orjson.loads(await r.hget(store.POSITIONS_KEY, "X"))["qty"] == 0.0


async def test_a_fill_written_twice_lands_once(redis_url: str, r: Redis) -> None:
    """Two replicas (or a retry racing a slow consumer) commit the same fill: the
    compare-and-set on its sequence number keeps one."""
    svc = make_service()
    fill = Fill(
        fill_id="f1",
        order_id="o",
        symbol="X",
        ts_ns=1,
        side="buy",
        qty=1.0,
        price=100.0,
        fee=0.02,
        slippage_bps=0.0,
        fill_seq=1,
    )
    bus = Bus(r, "execution", (), BusSettings())
    second = fill.model_copy(update={"fill_id": "f2", "fill_seq": 2})
    for batch in ([fill], [fill, second]):  # the retry also carries a new fill
        out = Outbox()
        store.queue_writes(Outputs(fills=batch), svc.engine, out, 1000)
        await bus.commit(out, [])
    entries = await r.xrange(FILLS)
    assert [f["fill_id"] for _, f in entries] == ["f1", "f2"]
    assert await r.hget(store.FILL_SEQ_KEY, "o") == "2"
