"""Live level-1 feed: Binance book ticker over a websocket (``websockets`` library).

Documented format (Binance spot "Individual Symbol Book Ticker Streams"):
``{"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
"a": "25.36520000", "A": "40.66000000"}``, prices and sizes as decimal strings; the
futures variant adds "E" (event time, ms) and "T" (transaction time, ms). Combined
streams wrap it as ``{"stream": "bnbusdt@bookTicker", "data": {...}}``. We subscribe
with ``{"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker", ...], "id": 1}``; the
answer ``{"result": null, "id": 1}`` is not a quote.

The book ticker carries no trades, so this feed yields no prints: its quotes leave
``trade_qty`` None and the print features stay None (docs/feature_bus.md "Prints";
trades would need the ``<symbol>@aggTrade`` stream, which is not subscribed).

``BookTickerFeed.events()`` yields quotes, bad frames (with the reason) and connection
changes forever: it reconnects with exponential backoff (initial doubling to max, with
up to 25 % jitter; reset after a good quote), and treats ``stale_s`` without any frame
as a dead connection (the exchange pings every few minutes and sends book updates many
times a second, so silence means trouble).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import websockets

from services.feature_bus.config import WebsocketParams
from shared.messages import RawQuote

SOURCE = "binance"


class FrameError(ValueError):
    """A frame that is not a book ticker we asked for; the text is the dlq reason."""


@dataclass(slots=True)
class FeedEvent:
    kind: Literal["quote", "bad_frame", "connected", "disconnected", "stale"]
    quote: RawQuote | None = None
    reason: str = ""
    frame: str = ""


def _decimal(doc: dict[str, Any], key: str) -> float:
    raw = doc.get(key)
    if raw is None:
        raise FrameError(f"missing field {key!r}")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise FrameError(f"field {key!r}: not a number ({str(raw)[:40]!r})") from None


def parse_book_ticker(
    frame: str | bytes, symbols: dict[str, str], recv_ts_ns: int, session: str = ""
) -> RawQuote | None:
    """One frame -> a RawQuote, None for a subscription answer; FrameError otherwise.

    Exchange time: "E" (else "T") in ms when present, else the receive time.
    """
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FrameError(f"not a JSON object ({type(doc).__name__})")
    if "result" in doc and "id" in doc:
        if doc["result"] is not None:
            raise FrameError(f"subscription refused: {str(doc['result'])[:200]}")
        return None
    if "error" in doc:
        raise FrameError(f"exchange error: {str(doc['error'])[:200]}")
    if isinstance(doc.get("data"), dict):
        doc = doc["data"]
    ex_symbol = doc.get("s")
    if not isinstance(ex_symbol, str):
        raise FrameError("missing field 's'")
    symbol = symbols.get(ex_symbol.lower())
    if symbol is None:
        raise FrameError(f"unsubscribed symbol {ex_symbol!r}")
    event_ms = doc.get("E", doc.get("T"))
    ts_ns = int(event_ms) * 1_000_000 if isinstance(event_ms, int) else recv_ts_ns
    return RawQuote(
        trace_ts_ns=recv_ts_ns,
        symbol=symbol,
        ts_ns=ts_ns,
        bid=_decimal(doc, "b"),
        ask=_decimal(doc, "a"),
        bid_size=_decimal(doc, "B"),
        ask_size=_decimal(doc, "A"),
        source=SOURCE,
        session=session,
        recv_ts_ns=recv_ts_ns,
    )


class BookTickerFeed:
    def __init__(self, params: WebsocketParams, rng: random.Random | None = None) -> None:
        self.p = params
        self.rng = rng or random.Random()
        self.connections = 0
        self.reconnects = 0

    def subscribe_frame(self) -> str:
        streams = [f"{s}@bookTicker" for s in self.p.symbols]
        return orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}).decode()

    async def events(self) -> AsyncIterator[FeedEvent]:
        delay = self.p.backoff_initial_s
        while True:
            got_quote = False
            try:
                async with websockets.connect(
                    self.p.url, open_timeout=10, close_timeout=1, max_size=2**20
                ) as ws:
                    self.connections += 1
                    if self.connections > 1:
                        self.reconnects += 1
                    session = f"ws{self.connections}"
                    yield FeedEvent("connected")
                    await ws.send(self.subscribe_frame())
                    while True:
                        try:
                            frame = await asyncio.wait_for(ws.recv(), timeout=self.p.stale_s)
                        except TimeoutError:
                            yield FeedEvent("stale", reason=f"no frame for {self.p.stale_s} s")
                            break
                        recv_ns = time.time_ns()
                        try:
                            quote = parse_book_ticker(frame, self.p.symbols, recv_ns, session)
                        except FrameError as exc:
                            text = frame if isinstance(frame, str) else repr(frame)
                            yield FeedEvent("bad_frame", reason=str(exc), frame=text[:2000])
                            continue
                        if quote is not None:
                            if not got_quote:
                                got_quote, delay = True, self.p.backoff_initial_s
                            yield FeedEvent("quote", quote=quote)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                yield FeedEvent("disconnected", reason=f"{type(exc).__name__}: {exc}")
            else:
                yield FeedEvent("disconnected", reason="stale connection closed")
            await asyncio.sleep(delay * (1.0 + 0.25 * self.rng.random()))
            delay = min(delay * 2.0, self.p.backoff_max_s)
