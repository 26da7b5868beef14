"""feature_bus in-process on a real Redis: the synthetic source goes through the same
quality + features path, per-source health shows on /metrics, and a silent live feed
moves event time on with its clock while /health says degraded."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from prometheus_client import REGISTRY, generate_latest
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, serve

from services.feature_bus.config import FeatureBusConfig, WebsocketParams
from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import FEATURES, MD_RAW, MD_TICKS, Features, RawQuote, watermark_stream
from tests.support import complete, running, wait_for

pytestmark = pytest.mark.integration


async def test_synthetic_source_and_md_raw_share_one_path(redis_url: str, r: Redis) -> None:
    cfg = load_file("feature_bus").model_copy(update={"ticks_per_s": 0.0})
    async with running(FeatureBus(cfg), redis_url):
        await wait_for(lambda: _at_least(r, FEATURES, 2000), what="2000 features")
        # an external quote on md.raw: checked like the rest, a crossed book to the dlq
        bad = RawQuote(symbol="EXT", ts_ns=5, bid=2.0, ask=1.0, source="replay")
        await r.xadd(MD_RAW, bad.to_fields())  # type: ignore[arg-type]
        await r.xadd(*complete("replay"))  # type: ignore[arg-type]
        await wait_for(lambda: _at_least(r, "dlq", 1), what="dlq entry")
    entries = await r.xrange(FEATURES, count=2000)
    feats = [Features.from_fields(f) for _, f in entries]
    assert {f.source for f in feats} == {"synthetic"}
    assert {f.symbol for f in feats} == {"BTC-USD", "ETH-USD", "SOL-USD", "AAPL"}
    assert all(f.features_hash and f.mid > 0 for f in feats)
    assert await r.xlen(MD_TICKS) >= 2000
    dead = (await r.xrange("dlq"))[0][1]
    assert dead["source_stream"] == MD_RAW and dead["reason"] == "crossed book: bid 2.0 > ask 1.0"
    text = generate_latest(REGISTRY).decode()
    assert 'edgebus_feature_source_quotes_total{source="synthetic"}' in text
    assert 'edgebus_feature_source_quality_score_ratio{source="synthetic"}' in text
    assert 'edgebus_feature_source_failures_total{reason="crossed book",source="replay"}' in text
    assert REGISTRY.get_sample_value(
        "edgebus_feature_source_latency_seconds_count", {"source": "synthetic"}
    )


async def _at_least(r: Redis, stream: str, n: int) -> bool:
    return int(await r.xlen(stream)) >= n


async def test_a_reloaded_source_takes_over_without_a_restart(redis_url: str, r: Redis) -> None:
    cfg = load_file("feature_bus").model_copy(update={"source": "replay", "ticks_per_s": 0.0})
    async with running(FeatureBus(cfg), redis_url) as svc:
        await wait_for(lambda: svc.ready.is_set(), what="ready")
        assert await r.xlen(FEATURES) == 0  # replay mode: nothing of its own
        svc.on_config(cfg.model_copy(update={"source": "synthetic"}))
        await wait_for(lambda: _at_least(r, FEATURES, 100), what="synthetic features")


class SilentExchange:
    """A book-ticker server that sends ``quotes`` quotes on a connection, then silence."""

    def __init__(self, quotes: int = 3) -> None:
        self.quotes = quotes
        self.sent_ns = 0

    async def handler(self, ws: ServerConnection) -> None:
        await ws.recv()  # the subscription
        for u in range(self.quotes):
            doc = {"u": u, "s": "BTCUSDT", "b": f"{100 + u}.0", "B": "1", "a": f"{100 + u}.5"}
            await ws.send(orjson.dumps({**doc, "A": "1"}).decode())
        self.sent_ns = time.time_ns()
        await ws.wait_closed()


async def _newest_wm(r: Redis) -> int:
    entries = await r.xrevrange(watermark_stream("feature_bus"), count=1)
    return int(entries[0][1]["wm_ns"]) if entries else 0


async def test_a_silent_live_feed_moves_the_watermark_on_and_health_says_degraded(
    redis_url: str, r: Redis
) -> None:
    ex = SilentExchange()
    async with serve(ex.handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"  # type: ignore[index]
        base = load_file("feature_bus")
        assert isinstance(base, FeatureBusConfig)
        ws = WebsocketParams(
            url=url, symbols={"btcusdt": "BTC-USDT"}, stale_s=30, allowed_lateness_ms=100
        )
        cfg = base.model_copy(
            update={
                "source": "websocket",
                "websocket": ws,
                "quality": base.quality.model_copy(update={"stale_ms": 300.0}),
            }
        )
        async with running(FeatureBus(cfg), redis_url) as svc:
            await wait_for(lambda: _at_least(r, MD_TICKS, 3), what="3 ticks")
            newest_tick = int((await r.xrevrange(MD_TICKS, count=1))[0][1]["ts_ns"])
            assert svc.health()[1]["status"] == "ok"
            # connected, silent: degraded once the symbol is quiet past quality.stale_ms
            ok, body = await wait_for(
                lambda: (h := svc.health())[1]["status"] == "degraded" and h, what="degraded"
            )
            assert ok  # alive: HTTP 200, nothing to restart
            assert body["degraded"][0].startswith("BTC-USDT: no quote for")
            assert (time.time_ns() - ex.sent_ns) / 1e9 >= 0.3
            stale = REGISTRY.get_sample_value("edgebus_feature_source_stale", {"source": "binance"})
            assert stale == 1.0
            # the watermark goes on with the feed's clock, behind now by the lateness
            target = newest_tick + 1_000_000_000
            wm = await wait_for(
                lambda: _newest_wm_past(r, target), timeout_s=3, what="wm past the tick + 1 s"
            )
            assert wm <= time.time_ns() - 100_000_000
            # /health reports the watermark once the heartbeat that wrote it is done
            await wait_for(
                lambda: svc.health()[1]["event_time"]["out_watermark_ns"] >= target,
                timeout_s=3,
                what="health's watermark past the tick + 1 s",
            )
            # the feed goes away: still degraded (disconnected), the clock still moves
            server.close(close_connections=True)
            await wait_for(
                lambda: "websocket disconnected" in " ".join(svc.health()[1].get("degraded", [])),
                what="disconnected",
            )
            later = time.time_ns() - 100_000_000
            await wait_for(lambda: _newest_wm_past(r, later), timeout_s=3, what="wm still moving")


async def _newest_wm_past(r: Redis, ns: int) -> int:
    wm = await _newest_wm(r)
    return wm if wm >= ns else 0


@pytest.mark.parametrize("source", ["replay", "synthetic"])
async def test_a_source_without_a_wall_clock_moves_its_watermark_with_data_only(
    source: str, redis_url: str, r: Redis
) -> None:
    """Replay's watermark is wm.replay's; the synthetic market's is its own event clock
    (fast-forwarded: here it starts in 2001 whatever the wall clock says)."""
    start_ns = 1_000_000_000_000_000_000
    cfg = load_file("feature_bus").model_copy(
        update={"source": source, "ticks_per_s": 20.0, "start_ts_ns": start_ns}
    )
    async with running(FeatureBus(cfg), redis_url) as svc:
        assert svc.source_clock_ns() == 0
        await wait_for(lambda: svc.ready.is_set(), what="ready")
        await asyncio.sleep(0.6)  # three heartbeats
        wm = await _newest_wm(r)
        assert svc.health()[1]["status"] == "ok"
    if source == "replay":
        assert wm == 0 and await r.xlen(MD_TICKS) == 0
    else:
        newest_tick = int((await r.xrevrange(MD_TICKS, count=1))[0][1]["ts_ns"])
        assert start_ns <= wm <= newest_tick < start_ns + 3_600 * 10**9  # not the wall clock
