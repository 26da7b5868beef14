"""PnL attribution by engine and by cost (services/validation/attribution.py): the worked
example of docs/daily.md, the share rule, and the parts summing to the total."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.validation import attribution as at

# The worked example of docs/daily.md.
VOTES = {
    "a": {"edge_bps": 10.0, "weight": 0.6, "p": 0.75},  # a = 0.6 * 0.5 * +1 = 0.30
    "b": {"edge_bps": 4.0, "weight": 0.3, "confidence": 0.2},  # 0.3 * 0.2 = 0.06
    "c": {"edge_bps": -5.0, "weight": 0.1, "p": 0.9},  # 0.1 * 0.8 * -1 = -0.08
}
FILLS = [
    {
        "symbol": "BTCUSDT",
        "ts_ns": 1_000,
        "side": "buy",
        "qty": 2.0,
        "price": 100.06,
        "decision_price": 100.0,
        "slippage_bps": 6.0,
        "half_spread_bps": 5.0,
        "impact_bps": 1.0,
        "fee": 0.1,
        "funding_usd": 0.0,
    },
    {
        "symbol": "BTCUSDT",
        "ts_ns": 2_000,
        "side": "sell",
        "qty": 2.0,
        "price": 102.93,
        "decision_price": 103.0,
        "slippage_bps": 0.07 / 103 * 1e4,
        "half_spread_bps": 5.0,
        "impact_bps": 1.0,
        "fee": 0.1,
        "funding_usd": 0.05,
    },
]


def test_engine_shares_go_to_the_engines_backing_the_trade() -> None:
    shares = at.engine_shares(VOTES)
    assert shares == pytest.approx({"a": 5 / 6, "b": 1 / 6})
    # a short trade on the same votes belongs to the one engine that said short
    assert at.engine_shares(VOTES, direction=-1.0) == pytest.approx({"c": 1.0})
    assert at.engine_shares(None) == {at.UNATTRIBUTED: 1.0}
    assert at.engine_shares({"a": {"edge_bps": 0.0, "weight": 1.0, "p": 0.9}}) == {
        at.UNATTRIBUTED: 1.0
    }


def test_worked_round_trip() -> None:
    t = at.trade_from_fills("o-1", FILLS, VOTES)
    assert (t.symbol, t.open_ts_ns, t.close_ts_ns) == ("BTCUSDT", 1_000, 2_000)
    assert t.gross_pnl_usd == pytest.approx(6.0)  # 2 * (103 - 100) at decision prices
    assert t.fees_usd == pytest.approx(0.2)
    assert t.spread_usd == pytest.approx(0.1 + 0.103)  # 5 bps of 200 and of 206
    assert t.impact_usd == pytest.approx(0.02 + 0.0206)
    # whole slippage 0.12 + 0.14 less spread and impact
    assert t.slippage_usd == pytest.approx(0.26 - 0.203 - 0.0406)
    assert t.funding_usd == pytest.approx(0.05)
    # net = the cash PnL at fill prices less fees and funding
    cash = -2 * 100.06 + 2 * 102.93
    assert t.net_pnl_usd == pytest.approx(cash - 0.2 - 0.05)
    assert t.net_pnl_usd == pytest.approx(5.49)

    report = at.attribute([t])
    assert report["n_trades"] == 1
    assert report["total"]["net_pnl_usd"] == pytest.approx(5.49)
    assert report["by_cost"]["cost_usd"] == pytest.approx(0.51)
    assert report["by_engine"]["a"]["net_pnl_usd"] == pytest.approx(5.49 * 5 / 6)
    assert report["by_engine"]["b"]["net_pnl_usd"] == pytest.approx(5.49 / 6)
    assert report["by_engine"]["a"]["fees_usd"] == pytest.approx(0.2 * 5 / 6)
    assert "c" not in report["by_engine"]
    assert report["by_symbol"]["BTCUSDT"]["n_trades"] == 1
    json.dumps(report, allow_nan=False)


def test_decision_price_is_recovered_from_slippage_bps() -> None:
    fills = [{**f, "decision_price": None} for f in FILLS]
    t = at.trade_from_fills("o-1", fills, VOTES)
    assert t.gross_pnl_usd == pytest.approx(6.0)
    assert t.net_pnl_usd == pytest.approx(5.49)


def test_trade_from_fills_rejects_bad_round_trips() -> None:
    with pytest.raises(ValueError, match="flat"):
        at.trade_from_fills("o-1", FILLS[:1])
    with pytest.raises(ValueError, match="symbols"):
        at.trade_from_fills("o-1", [FILLS[0], {**FILLS[1], "symbol": "ETHUSDT"}])
    with pytest.raises(ValueError, match="no fill"):
        at.trade_from_fills("o-1", [])
    with pytest.raises(ValueError, match=">= 0"):
        at.attribute([at.Trade("t", "X", 1, 2, 1.0, engine_shares={"a": -0.5})])


def test_shares_are_normalised_and_empty_is_unattributed() -> None:
    t1 = at.Trade("t1", "X", 1, 2, 10.0, fees_usd=1.0, engine_shares={"a": 2.0, "b": 2.0})
    t2 = at.Trade("t2", "Y", 3, 4, -4.0)
    report = at.attribute([t1, t2])
    assert report["by_engine"]["a"]["net_pnl_usd"] == pytest.approx(4.5)
    assert report["by_engine"][at.UNATTRIBUTED]["net_pnl_usd"] == pytest.approx(-4.0)
    assert report["total"]["net_pnl_usd"] == pytest.approx(5.0)


money = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
cost = st.floats(-10.0, 1e3, allow_nan=False, allow_infinity=False)
shares = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]), st.floats(0.0, 1.0, allow_nan=False), max_size=4
)
trades = st.builds(
    at.Trade,
    trade_id=st.just("t"),
    symbol=st.sampled_from(["X", "Y"]),
    open_ts_ns=st.just(1),
    close_ts_ns=st.just(2),
    gross_pnl_usd=money,
    fees_usd=cost,
    spread_usd=cost,
    impact_usd=cost,
    slippage_usd=cost,
    funding_usd=cost,
    engine_shares=shares,
)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(trades, max_size=12))
def test_parts_sum_to_the_total(ts: list[at.Trade]) -> None:
    report = at.attribute(ts)
    total = report["total"]
    # by cost: gross - costs = net
    assert _close(total["gross_pnl_usd"] - report["by_cost"]["cost_usd"], total["net_pnl_usd"])
    assert _close(total["net_pnl_usd"], math.fsum(t.net_pnl_usd for t in ts))
    # by engine and by symbol: every part sums to the total's
    for table in ("by_engine", "by_symbol"):
        for part in at.PARTS:
            got = math.fsum(row[part] for row in report[table].values())
            assert _close(got, total[part]), (table, part)
