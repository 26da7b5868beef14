"""telemetry's daily report file (issue 18 item 5, seed 003's 23:55 snapshot): when a day
of event time closes, ``<reports_dir>/pnl-YYYY-MM-DD.json`` holds the day's realised PnL
split by engine, its costs by kind and its daily metrics; the parts add up."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.telemetry.config import TelemetryConfig
from services.telemetry.service import Telemetry
from shared.config import ConfigError, validate
from shared.messages import Fill, Order, Signal
from shared.testing import Harness

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
DAY_NS = 86_400 * 10**9
MIN = 60 * 10**9
VOTES = {
    "book_pressure": {"edge_bps": 10.0, "confidence": 0.6, "weight": 0.75, "p": 0.8},
    "ma_momentum": {"edge_bps": 8.0, "confidence": 0.6, "weight": 0.25, "p": 0.8},
}


def fill(i: int, ts_ns: int, side: str, price: float, fee: float) -> Fill:
    return Fill(
        fill_id=f"f{i}",
        order_id=f"o{i}",
        symbol="BTC-USD",
        ts_ns=ts_ns,
        side=side,  # type: ignore[arg-type]
        qty=1.0,
        price=price,
        fee=fee,
        slippage_bps=1.0,
    )


def order(i: int, ts_ns: int, side: str) -> Order:
    return Order(
        order_id=f"o{i}",
        symbol="BTC-USD",
        ts_ns=ts_ns,
        side=side,  # type: ignore[arg-type]
        qty=1.0,
        position_size_usd=100.0,
        edge_blended_bps=9.0,
        var_pct=0.1,
        decision_price=100.0,
    )


def test_a_closed_day_writes_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    svc = Telemetry(TelemetryConfig(reports_dir="reports"))
    h = Harness([svc])
    sig = Signal(
        symbol="BTC-USD",
        ts_ns=T0 + MIN,
        model_id="consensus",
        horizon="1m",
        edge_bps=9.0,
        confidence=0.6,
        shadow=False,
        votes=VOTES,
    )
    h.feed(sig.STREAM, [sig])
    h.run()
    for i, (side, price, fee) in enumerate((("buy", 100.0, 0.04), ("sell", 104.0, 0.04))):
        ts = T0 + (2 + i) * MIN
        o = order(i, ts, side)
        h.feed(o.STREAM, [o])
        h.run()
        f = fill(i, ts, side, price, fee)
        h.feed(f.STREAM, [f])
        h.run()
    assert not (tmp_path / "reports").exists()  # the day is still open
    nxt = fill(9, T0 + DAY_NS + 10 * MIN, "buy", 100.0, 0.0)  # 10 min into the next day
    h.feed(nxt.STREAM, [nxt])
    h.run()
    doc = orjson.loads((tmp_path / "reports" / "pnl-2026-01-01.json").read_bytes())
    assert doc["day"] == "2026-01-01" and doc["fills"] == 2
    assert sum(doc["pnl_by_engine_usd"].values()) == pytest.approx(doc["realized_pnl_usd"])
    assert set(doc["pnl_by_engine_usd"]) <= {"book_pressure", "ma_momentum", "consensus"}
    assert doc["costs_usd"]["fee"] == pytest.approx(0.08)
    assert doc["costs_usd"]["slippage"] == pytest.approx((100.0 + 104.0) * 1.0 / 1e4)
    assert "slippage_n" in doc["daily_metrics"]


def test_reports_stay_inside_the_home() -> None:
    for bad in ("/tmp/x", "../out", "a/../../b"):
        with pytest.raises(ConfigError, match="reports_dir"):
            validate("telemetry", {"reports_dir": bad})
