"""`edgebus replay` through a running feature_bus on a real Redis: bad rows reported
with their line number, stateful checks in the dlq, bars to quotes, backpressure."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from redis.asyncio import Redis
from rich.console import Console

from services.feature_bus.config import FeatureBusConfig, ReplayParams
from services.feature_bus.replay import replay
from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import DLQ, FEATURES, MD_TICKS
from tests.support import running

pytestmark = pytest.mark.integration

QUOTES_CSV = """ts,symbol,bid,ask,bid_size,ask_size
2024-01-02T00:00:00Z,BTC-USD,100.0,100.2,1,2
2024-01-02T00:00:01Z,BTC-USD,100.1,100.3,1,2
yesterday,BTC-USD,100.1,100.3,1,2
2024-01-02T00:00:02Z,BTC-USD,abc,100.3,1,2
2024-01-02T00:00:03Z,BTC-USD,100.5,100.4,1,2
2024-01-02T00:00:03Z,BTC-USD,100.2,100.4,1,2
2024-01-02T00:00:03Z,BTC-USD,100.2,100.4,1,2
2024-01-02T00:00:01.5Z,BTC-USD,100.2,100.4,1,2
1704153604000000000,BTC-USD,100.3,100.5,1,2
"""


def config(**replay: int) -> FeatureBusConfig:
    cfg = load_file("feature_bus")
    assert isinstance(cfg, FeatureBusConfig)
    return cfg.model_copy(
        update={"source": "replay", "replay": ReplayParams(**{"stall_timeout_s": 5, **replay})}
    )


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False), buf


async def test_replay_reports_bad_rows_and_dead_letters_stateful_problems(
    redis_url: str, r: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(QUOTES_CSV)
    cfg = config()
    monkeypatch.setattr("services.feature_bus.replay.load_file", lambda _c: cfg)
    con, buf = console()
    async with running(FeatureBus(cfg), redis_url):
        code = await replay(path, 0, con, redis_url)
    text = buf.getvalue()
    assert code == 0, text
    assert "line 4: ts: 'yesterday' is neither ISO-8601 nor epoch ns; skipped" in text
    assert "line 5: bid: not a number ('abc'); skipped" in text
    assert "line 6: crossed book: bid 100.5 > ask 100.4; skipped" in text
    assert "9 rows" in text and "sent 6" in text and "bad rows skipped 3" in text
    # The file is not in time order (line 9, 00:00:01.5, comes after 00:00:03): it is
    # said, and replayed sorted by time (event time: every decision sees the rows in
    # order), so that row is no longer an out-of-order quote for the dlq.
    assert "line 9: earlier than the row before" in text
    assert "clean 4, flagged 1, to dlq 1" in text
    ticks = await r.xrange(MD_TICKS)
    assert [float(f["bid"]) for _, f in ticks] == [100.0, 100.1, 100.2, 100.2, 100.3]
    # 00:00:01.5 -> 00:00:03 is 1.5 s after a typical 0.5-1 s: a missing interval, filled
    assert [f["quality"] for _, f in ticks] == ["", "", "", "ffill", ""]
    assert ticks[-1][1]["ts_ns"] == "1704153604000000000"
    assert await r.xlen(FEATURES) == 5
    dead = [f for _, f in await r.xrange(DLQ)]
    assert [d["reason"] for d in dead] == [
        "duplicate of the previous quote at ts_ns 1704153603000000000",
    ]
    assert '"line":"8"' in dead[0]["payload"]


async def test_bars_become_quotes_around_the_close(
    redis_url: str, r: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "bars.parquet"
    table = pa.table(
        {
            "ts": [1_704_153_600_000_000_000, 1_704_153_660_000_000_000, 1_704_153_720_000_000_000],
            "symbol": ["ETH-USD"] * 3,
            "open": [100.0, 101.0, 100.0],
            "high": [102.0, 103.0, 99.0],
            "low": [99.0, 100.0, 98.0],
            "close": [101.0, 102.0, 98.5],
            "volume": [10.0, 30.0, 5.0],
        }
    )
    pq.write_table(table, path)
    cfg = config()  # bar_spread_bps 2: half a spread is close * 1e-4
    monkeypatch.setattr("services.feature_bus.replay.load_file", lambda _c: cfg)
    con, buf = console()
    async with running(FeatureBus(cfg), redis_url):
        code = await replay(path, 0, con, redis_url)
    assert code == 0, buf.getvalue()
    assert (
        "row 3: bar: inconsistent (open=100.0 high=99.0 low=98.0 close=98.5); skipped"
        in buf.getvalue()
    )
    ticks = [f for _, f in await r.xrange(MD_TICKS)]
    assert [(float(t["bid"]), float(t["ask"])) for t in ticks] == [
        pytest.approx((100.9899, 101.0101)),
        pytest.approx((101.9898, 102.0102)),
    ]
    assert [float(t["bid_size"]) for t in ticks] == [5.0, 15.0]
    assert [float(t["volume"]) for t in ticks] == [10.0, 30.0]


async def test_backpressure_bounds_what_is_in_flight(
    redis_url: str, r: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.csv"
    rows = ["ts,symbol,bid,ask,bid_size,ask_size"]
    t0 = 1_704_153_600_000_000_000
    rows += [
        f"{t0 + i * 1_000_000},S{i % 3},{100 + i % 7 * 0.01:.2f},100.2,1,1" for i in range(3000)
    ]
    path.write_text("\n".join(rows) + "\n")
    cfg = config(max_lag_entries=200, chunk_rows=50)
    monkeypatch.setattr("services.feature_bus.replay.load_file", lambda _c: cfg)
    peak = 0
    real_xadd_count = 0

    async def watch() -> None:
        nonlocal peak, real_xadd_count
        groups = await r.xinfo_groups("md.raw")
        for g in groups:
            if g["name"] == "feature_bus":
                peak = max(peak, int(g["lag"] or 0) + int(g["pending"]))

    import asyncio

    con, buf = console()
    # feature_bus reads at most 50 entries per 50 ms (1,000/s), slower than the replay
    # sends: the lag builds up to the bound and the backpressure is what holds it (a
    # feature_bus as fast as the replay left the lag at 0 under a loaded suite)
    bus = cfg.bus.model_copy(update={"batch_interval_ms": 50, "batch_size": 50})
    async with running(FeatureBus(cfg.model_copy(update={"bus": bus})), redis_url):
        task = asyncio.ensure_future(replay(path, 0, con, redis_url))
        while not task.done():
            await watch()
            await asyncio.sleep(0.005)
        code = task.result()
    assert code == 0, buf.getvalue()
    assert "sent 3,000" in buf.getvalue() and "to dlq 0" in buf.getvalue()
    assert await r.xlen(FEATURES) == 3000
    assert 0 < peak <= 200


async def test_replay_refuses_when_the_stack_is_not_running(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(QUOTES_CSV)
    con, buf = console()
    assert await replay(path, 0, con, redis_url) == 2
    assert "start the stack first" in buf.getvalue()


async def test_replay_rejects_a_file_without_the_columns(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,price\n1,2\n")
    cfg = config()
    monkeypatch.setattr("services.feature_bus.replay.load_file", lambda _c: cfg)
    con, buf = console()
    async with running(FeatureBus(cfg), redis_url):
        assert await replay(path, 0, con, redis_url) == 1
    assert "need quotes (missing ['ts', 'symbol', 'bid', 'ask', 'bid_size', 'ask_size'])" in (
        buf.getvalue()
    )


async def test_a_replay_into_a_stack_past_the_files_time_says_so(
    redis_url: str, r: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack running a live source is at its own event time: history replayed into it
    would be late data. The replay says so and how to replay history instead."""
    from shared.messages import Watermark

    path = tmp_path / "quotes.csv"
    path.write_text(QUOTES_CSV)
    cfg = config()
    monkeypatch.setattr("services.feature_bus.replay.load_file", lambda _c: cfg)
    live = Watermark(producer="feature_bus", wm_ns=1_796_000_000_000_000_000)
    await r.xadd("wm.feature_bus", live.to_fields())  # type: ignore[arg-type]
    con, buf = console()
    async with running(FeatureBus(cfg), redis_url):
        code = await replay(path, 0, con, redis_url)
    text = " ".join(buf.getvalue().split())
    assert code == 0, text
    assert "its rows will be late there" in text and "EDGEBUS_SOURCE=replay" in text
