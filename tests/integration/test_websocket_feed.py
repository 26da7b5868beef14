"""The Binance book-ticker adapter against a local websockets server: documented
frames, garbage frames and a dropped connection (issue 3)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, serve

from services.feature_bus.config import WebsocketParams
from services.feature_bus.service import FeatureBus
from services.feature_bus.websocket import BookTickerFeed, FeedEvent, FrameError, parse_book_ticker
from shared.config import load_file
from shared.messages import DLQ, FEATURES, MD_TICKS
from tests.support import running, wait_for

SYMBOLS = {"btcusdt": "BTC-USDT"}


def frame(u: int, bid: str, ask: str) -> str:
    # The documented spot format: decimal strings, no event time.
    return orjson.dumps(
        {"u": u, "s": "BTCUSDT", "b": bid, "B": "1.5", "a": ask, "A": "2.0"}
    ).decode()


def test_parse_documented_frames() -> None:
    q = parse_book_ticker(frame(1, "65000.10", "65000.20"), SYMBOLS, recv_ts_ns=123)
    assert q is not None
    assert (q.symbol, q.bid, q.ask, q.bid_size, q.ask_size) == (
        "BTC-USDT",
        65000.1,
        65000.2,
        1.5,
        2.0,
    )
    assert (q.ts_ns, q.recv_ts_ns, q.source) == (123, 123, "binance")  # no "E": receive time
    wrapped = orjson.dumps(
        {
            "stream": "btcusdt@bookTicker",
            "data": {**orjson.loads(frame(2, "1", "2")), "E": 1700000000000},
        }
    )
    q2 = parse_book_ticker(wrapped, SYMBOLS, recv_ts_ns=5)
    assert q2 is not None and q2.ts_ns == 1_700_000_000_000 * 1_000_000
    assert parse_book_ticker('{"result": null, "id": 1}', SYMBOLS, 1) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{oops", "not JSON"),
        ("[1, 2]", "not a JSON object (list)"),
        ('{"s": "BTCUSDT", "b": "1", "B": "1", "a": "2"}', "missing field 'A'"),
        ('{"s": "BTCUSDT", "b": "x", "B": "1", "a": "2", "A": "1"}', "field 'b': not a number"),
        ('{"s": "DOGEUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}', "unsubscribed symbol"),
        ('{"result": "nope", "id": 1}', "subscription refused"),
    ],
)
def test_garbage_frames_raise_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_book_ticker(raw, SYMBOLS, 1)


class Exchange:
    """A local server speaking Binance's book ticker. First connection: two quotes, a
    garbage frame, a quote, then the connection is dropped without a close frame.
    Second connection: two quotes, then silence (the feed must declare it stale).
    Later connections: silence."""

    def __init__(self) -> None:
        self.connections = 0
        self.subscriptions: list[Any] = []

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.subscriptions.append(orjson.loads(await ws.recv()))
        await ws.send('{"result": null, "id": 1}')
        if self.connections == 1:
            await ws.send(frame(1, "100.0", "100.2"))
            await ws.send(frame(2, "100.1", "100.3"))
            await ws.send("\x00garbage{")
            await ws.send(frame(3, "100.2", "100.4"))
            await asyncio.sleep(0.05)
            ws.transport.abort()  # a dropped TCP connection, not a clean close
            return
        if self.connections == 2:
            await ws.send(frame(4, "100.3", "100.5"))
            await ws.send(frame(5, "100.4", "100.6"))
        await ws.wait_closed()  # silence until the client gives up on us


@contextlib.asynccontextmanager
async def exchange() -> AsyncIterator[tuple[Exchange, str]]:
    ex = Exchange()
    async with serve(ex.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]  # type: ignore[index]
        yield ex, f"ws://127.0.0.1:{port}/ws"


def params(url: str) -> WebsocketParams:
    return WebsocketParams(url=url, symbols=SYMBOLS, stale_s=1.5, backoff_initial_s=0.05)


async def test_feed_survives_garbage_and_a_dropped_connection() -> None:
    async with exchange() as (ex, url):
        feed = BookTickerFeed(params(url))
        events: list[FeedEvent] = []

        async def collect() -> None:
            async for ev in feed.events():
                events.append(ev)
                if ev.kind == "stale":
                    return

        await asyncio.wait_for(collect(), timeout=10)
    kinds = [e.kind for e in events]
    assert kinds == [
        "connected", "quote", "quote", "bad_frame", "quote", "disconnected",
        "connected", "quote", "quote", "stale",
    ]  # fmt: skip
    assert [e.quote.bid for e in events if e.quote] == [100.0, 100.1, 100.2, 100.3, 100.4]
    assert "not JSON" in events[3].reason and events[3].frame == "\x00garbage{"
    assert feed.reconnects == 1 and ex.connections == 2
    assert ex.subscriptions[0] == {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}


async def test_feature_bus_publishes_the_live_feed_and_dead_letters_garbage(
    redis_url: str, r: Redis
) -> None:
    async with exchange() as (_ex, url):
        base = load_file("feature_bus")
        cfg = base.model_copy(update={"source": "websocket", "websocket": params(url)})
        async with running(FeatureBus(cfg), redis_url) as svc:
            await wait_for(lambda: r.xlen(FEATURES), what="features")
            await wait_for(
                lambda: svc.feed is not None and svc.feed.reconnects >= 1, what="reconnect"
            )
            await wait_for(lambda: _count(r, MD_TICKS, 5), what="5 ticks")
        ticks = await r.xrange(MD_TICKS)
        assert [float(f["bid"]) for _, f in ticks] == [100.0, 100.1, 100.2, 100.3, 100.4]
        assert {f["venue"] for _, f in ticks} == {"binance"}
        dead = await r.xrange(DLQ)
        assert len(dead) == 1
        assert dead[0][1]["source_stream"] == "ws:binance"
        assert "not JSON" in dead[0][1]["reason"]


async def _count(r: Redis, stream: str, n: int) -> bool:
    return int(await r.xlen(stream)) >= n
