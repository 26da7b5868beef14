"""The backtest report built from small hand-made CSVs (services/backtest/report.py)."""

from __future__ import annotations

import csv
import json
import math
import pathlib
import re

import pytest

from services.backtest import report

DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z

FILL_COLS = [
    "fill_id",
    "order_id",
    "symbol",
    "ts_ns",
    "side",
    "qty",
    "price",
    "fee",
    "slippage_bps",
    "liquidity",
    "venue",
    "fill_seq",
    "strategy",
    "decision_price",
    "quote_ts_ns",
    "mid",
    "half_spread_bps",
    "impact_bps",
    "fee_bps",
    "remaining_qty",
    "time_to_fill_ms",
]


def _write(path: pathlib.Path, cols: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})


def _fill(
    i: int,
    symbol: str,
    ts_ns: int,
    side: str,
    qty: float,
    price: float,
    fee: float,
    decision: float,
    impact_bps: float,
) -> dict:
    return {
        "fill_id": f"f{i}",
        "order_id": f"o{i}",
        "symbol": symbol,
        "ts_ns": ts_ns,
        "side": side,
        "qty": qty,
        "price": price,
        "fee": fee,
        "slippage_bps": 0.0,
        "liquidity": "taker",
        "venue": "paper",
        "fill_seq": 1,
        "strategy": "market",
        "decision_price": decision,
        "impact_bps": impact_bps,
    }


def write_run(out: pathlib.Path, with_events: bool) -> None:
    """Equity marks 10000 -> 10100 (d1 12h) -> 9900 (d2 12h) -> 10200 (d3 12h).

    BTC: buy 1 @ 100 (d1 01h), sell 1 @ 110 (d1 11h), fee 1 each: gross +10, net +8.
    ETH: sell 2 @ 50 (d2 06h), buy 2 @ 55 (d3 06h), fee 0.5 each: gross -10, net -11.
    Each fill is 0.05/unit worse than its decision price: slippage 0.1 + 0.1 + 0.1 + 0.1.
    """
    _write(out / "equity.csv", ["ts", "ts_ns", "equity_usd", "gross_pnl_usd", "net_pnl_usd", "fees_usd", "drawdown_pct"], [
        {"ts": "", "ts_ns": T0, "equity_usd": 10000},
        {"ts": "", "ts_ns": T0 + 12 * HOUR_NS, "equity_usd": 10100},
        {"ts": "", "ts_ns": T0 + DAY_NS + 12 * HOUR_NS, "equity_usd": 9900},
        {"ts": "", "ts_ns": T0 + 2 * DAY_NS + 12 * HOUR_NS, "equity_usd": 10200},
    ])  # fmt: skip
    _write(out / "fills.csv", FILL_COLS, [
        _fill(1, "BTC", T0 + 1 * HOUR_NS, "buy", 1, 100.0, 1.0, 99.9, 2.0),
        _fill(2, "BTC", T0 + 11 * HOUR_NS, "sell", 1, 110.0, 1.0, 110.1, 2.0),
        _fill(3, "ETH", T0 + DAY_NS + 6 * HOUR_NS, "sell", 2, 50.0, 0.5, 50.05, 2.0),
        _fill(4, "ETH", T0 + 2 * DAY_NS + 6 * HOUR_NS, "buy", 2, 55.0, 0.5, 54.95, 2.0),
    ])  # fmt: skip
    _write(
        out / "orders.csv",
        ["order_id", "symbol", "ts_ns"],
        [{"order_id": f"o{i}", "symbol": "BTC", "ts_ns": T0} for i in range(1, 5)],
    )
    _write(
        out / "decisions.csv",
        ["symbol", "ts_ns", "action", "reason"],
        [
            {"symbol": "BTC", "ts_ns": T0, "action": a, "reason": "x"}
            for a in ("order", "order", "reject")
        ],
    )
    if with_events:
        votes_a = json.dumps(
            {
                "m_trend": {"edge_bps": 10, "confidence": 0.5, "weight": 0.5},
                "m_mr": {"edge_bps": -2, "confidence": 0.5, "weight": 0.5},
            }
        )
        votes_b = json.dumps(
            {
                "m_trend": {"edge_bps": 1, "confidence": 0.5, "weight": 0.5},
                "m_mr": {"edge_bps": -8, "confidence": 0.5, "weight": 0.5},
            }
        )
        cols = [
            "symbol",
            "ts_ns",
            "action",
            "regime",
            "engine_votes",
            "realized_pnl_usd",
            "trade_id",
        ]
        _write(out / "events.csv", cols, [
            {"symbol": "BTC", "ts_ns": T0 + HOUR_NS, "regime": "TREND", "engine_votes": votes_a, "trade_id": "t1"},
            {"symbol": "BTC", "ts_ns": T0 + 11 * HOUR_NS, "regime": "RANGE", "engine_votes": votes_b,
             "realized_pnl_usd": 8.0, "trade_id": "t1"},
            {"symbol": "ETH", "ts_ns": T0 + DAY_NS, "regime": "RANGE", "engine_votes": votes_b, "trade_id": "t2"},
            {"symbol": "ETH", "ts_ns": T0 + 2 * DAY_NS, "regime": "TREND", "engine_votes": votes_a,
             "realized_pnl_usd": -11.0, "trade_id": "t2"},
        ])  # fmt: skip


def test_report_values_worked_by_hand(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path, with_events=True)
    (tmp_path / "report.json").write_text(json.dumps({"run": {"seed": 7}, "metrics": {"x": 1}}))
    rep = report.build(tmp_path)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == rep
    assert rep["run"] == {"seed": 7}  # the runner's section is kept
    h = rep["metrics"]
    assert "x" not in h  # a section the report owns is replaced, not merged
    # daily closes 10100, 9900, 10200 from opening 10000
    r = [0.01, 9900 / 10100 - 1, 10200 / 9900 - 1]
    assert h["total_return_pct_net"] == pytest.approx(2.0, rel=1e-9)
    mean = sum(r) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert h["sharpe_net"] == pytest.approx(mean / std * math.sqrt(252), rel=1e-8)
    assert h["max_drawdown_pct"] == pytest.approx(200 / 10100 * 100, rel=1e-8)
    assert h["time_to_recover_days"] == pytest.approx(2.0)  # d1 12h -> d3 12h
    assert h["n_trades"] == 2 and h["n_open_trades"] == 0
    assert h["hit_rate"] == 0.5
    assert h["avg_win_usd"] == pytest.approx(8.0) and h["avg_loss_usd"] == pytest.approx(-11.0)
    assert h["profit_factor"] == pytest.approx(8 / 11, rel=1e-8)
    assert h["avg_holding_time_s"] == pytest.approx((10 * 3600 + 86400) / 2)
    assert h["trades_per_day"] == pytest.approx(2 / 3, rel=1e-8)
    avg_eq = (10100 + 9900 + 10200) / 3
    assert h["turnover_per_year"] == pytest.approx(420 / avg_eq / (3 / 252), rel=1e-8)
    c = rep["costs"]
    assert c["fees_usd"] == pytest.approx(3.0) and c["slippage_usd"] == pytest.approx(0.4)
    assert c["funding_usd"] == 0.0 and c["funding_share"] == 0.0
    assert c["gross_alpha_usd"] == pytest.approx(203.4)
    assert c["fee_share"] == pytest.approx(3 / 203.4, rel=1e-8)
    assert c["impact_usd"] == pytest.approx(420 * 2 / 1e4)  # 2 bps on every fill
    cap = rep["capacity"]["breakeven_aum_usd"]
    assert cap == pytest.approx(((200 + 0.084) / 0.084) ** 2 * avg_eq, rel=1e-8)
    assert rep["by_symbol"]["BTC"]["realised_pnl_usd"] == pytest.approx(8.0)
    assert rep["by_symbol"]["ETH"]["realised_pnl_usd"] == pytest.approx(-11.0)
    # trades labelled by their first event: t1 TREND/m_trend (0.5*10 > 0.5*2), t2 RANGE/m_mr
    assert rep["by_regime"]["TREND"]["pnl_usd"] == 8.0
    assert rep["by_regime"]["RANGE"]["pnl_usd"] == -11.0
    assert rep["by_model"]["m_trend"]["pnl_usd"] == 8.0
    assert rep["by_model"]["m_mr"]["pnl_usd"] == -11.0
    assert rep["monthly_returns_pct"]["2024"]["01"] == pytest.approx(2.0, rel=1e-9)
    assert rep["monthly_returns_pct"]["2024"]["year"] == pytest.approx(2.0, rel=1e-9)
    assert rep["by_year"]["2024"]["n_trades"] == 2
    assert rep["stability"]["symbols"]["realised_pnl_usd"]["median"] == pytest.approx(-1.5)
    assert rep["stability"]["years"]["sharpe"]["std"] is None  # one year: no dispersion
    assert rep["decisions"] == {"order": 2, "reject": 1}
    assert math.isinf(float("inf")) and h["sortino_net"] is not None


def test_report_is_deterministic_and_self_contained(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path, with_events=True)
    report.build(tmp_path)
    first = (tmp_path / "report.json").read_bytes()
    first_html = (tmp_path / "report.html").read_bytes()
    report.build(tmp_path)
    assert (tmp_path / "report.json").read_bytes() == first
    assert (tmp_path / "report.html").read_bytes() == first_html
    text = first_html.decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", text)
    assert "<script" not in text and "<link" not in text
    assert text.count("<svg") >= 5  # equity+drawdown, symbol, costs, regime, model
    for section in (
        "Headline metrics",
        "Equity and drawdown",
        "PnL by symbol",
        "PnL by regime",
        "PnL by model",
        "Cost breakdown",
        "Monthly returns",
        "Stability across years",
    ):
        assert section in text
    assert b"NaN" not in first and b"Infinity" not in first


def test_report_without_events_skips_attribution(tmp_path: pathlib.Path) -> None:
    write_run(tmp_path, with_events=False)
    rep = report.build(tmp_path)
    assert rep["by_regime"] is None and rep["by_model"] is None
    assert any("events.csv absent" in n for n in rep["notes"])
    assert any("funding" in n for n in rep["notes"])
    assert "skipped: no events.csv" in (tmp_path / "report.html").read_text()


def test_main_rebuilds(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path, with_events=False)
    assert report.main([str(tmp_path), "--periods-per-year", "365"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["conventions"]["periods_per_year"] == 365
    assert "sharpe_net" in capsys.readouterr().out


def test_missing_equity_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="equity.csv"):
        report.build(tmp_path)


def test_capital_before_the_first_mark_comes_from_its_net_pnl(tmp_path: pathlib.Path) -> None:
    # the first mark (9999) already carries a 1 USD fee: the run started from 10000
    cols = ["ts", "ts_ns", "equity_usd", "net_pnl_usd"]
    _write(tmp_path / "equity.csv", cols, [
        {"ts_ns": T0 + HOUR_NS, "equity_usd": 9999, "net_pnl_usd": -1},
        {"ts_ns": T0 + DAY_NS, "equity_usd": 10099, "net_pnl_usd": 99},
    ])  # fmt: skip
    h = report.build(tmp_path)["metrics"]
    assert h["start_equity_usd"] == 10000 and h["net_pnl_usd"] == pytest.approx(99.0)
    assert h["total_return_pct_net"] == pytest.approx(0.99, rel=1e-9)
    assert h["max_drawdown_pct"] == pytest.approx(0.01, rel=1e-6)  # 1 / 10000
