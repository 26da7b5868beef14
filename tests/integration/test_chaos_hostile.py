"""Raw bytes from anyone who can reach Redis: a stream entry or a pub/sub message that is
not UTF-8 ends in the dlq (or is ignored with a log line) and never stalls a service."""

from __future__ import annotations

import pytest
import redis
from redis.asyncio import Redis

from services.model_router.service import ModelRouter
from shared.messages import DLQ, FEATURES, SIGNALS, TRADING_CONTROL
from tests.support import complete, features, running, wait_for

pytestmark = pytest.mark.integration


async def _pending(r: Redis) -> int:
    return int((await r.xpending(FEATURES, "model_router"))["pending"])


async def test_a_non_utf8_entry_is_dead_lettered_and_its_neighbours_get_through(
    r: Redis, redis_url: str
) -> None:
    raw = redis.Redis.from_url(redis_url)
    # Two symbols: the router decides once per symbol per batch, on its latest features.
    raw.xadd(FEATURES, features(1, symbol="BTC-USD"))
    bad_id = raw.xadd(FEATURES, {b"symbol": b"\xff\xfe\x00", b"ts_ns": b"\xc3("}).decode()
    raw.xadd(FEATURES, features(3, symbol="ETH-USD"))
    async with running(ModelRouter(), redis_url) as svc:
        raw.xadd(*complete("feature_bus"))  # type: ignore[arg-type]
        raw.close()
        await wait_for(lambda: svc.processed == 4, what="all three entries and the watermark")
        await wait_for(lambda: _zero(r), what="nothing pending")
    dead = await r.xrange(DLQ)
    assert [(f["source_stream"], f["entry_id"]) for _, f in dead] == [(FEATURES, bad_id)]
    assert "symbol" in dead[0][1]["reason"] or "mid" in dead[0][1]["reason"]
    signals = await r.xrange(SIGNALS)
    assert {f["features_hash"] for _, f in signals} == {"h1", "h3"}


async def _zero(r: Redis) -> bool:
    return await _pending(r) == 0


async def test_non_utf8_control_messages_do_not_deafen_the_listener(
    r: Redis, redis_url: str
) -> None:
    async with running(ModelRouter(), redis_url) as svc:
        # the listener subscribes right after start; wait until it does
        await wait_for(lambda: _subscribers(r), what="the service subscribed to trading.control")
        for garbage in (b"\xff", b'{"action": "\xff"}', b"\x00" * 10):
            await r.publish(TRADING_CONTROL, garbage)
        await r.publish(TRADING_CONTROL, '{"action": "halt", "reason": "test"}')
        await wait_for(lambda: svc.trading.halted, timeout_s=5, what="halt applied")
        assert svc.trading.reason == "test"


async def _subscribers(r: Redis) -> bool:
    counts = await r.pubsub_numsub(TRADING_CONTROL)
    return bool(counts and counts[0][1] > 0)
