"""Backtest metrics (services/backtest/metrics.py): worked examples, properties, empyrical."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.backtest import metrics as m

DAY = m.NS_PER_DAY
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z

# --- worked examples ------------------------------------------------------------------


def test_daily_returns_last_mark_of_each_utc_day_forward_filled() -> None:
    # d0 00h 100 (opening), d0 18h 110 -> close 110; d1 no mark -> 110; d2 06h 99
    ts = np.array([T0, T0 + 18 * 3600 * 10**9, T0 + 2 * DAY + 6 * 3600 * 10**9])
    days, r = m.daily_returns(ts, np.array([100.0, 110.0, 99.0]))
    assert days.tolist() == [T0 // DAY, T0 // DAY + 1, T0 // DAY + 2]
    assert r == pytest.approx([0.1, 0.0, -0.1])
    assert m.daily_equity_closes(ts, np.array([100.0, 110.0, 99.0])).tolist() == [110, 110, 99]
    assert m.daily_returns(np.array([], dtype=np.int64), np.array([]))[1].size == 0


def test_utc_calendar() -> None:
    leap = T0 + 59 * DAY  # 2024-02-29
    years, months = m.day_year_month(m.utc_day(np.array([T0, leap, leap + DAY])))
    assert years.tolist() == [2024, 2024, 2024] and months.tolist() == [1, 2, 3]
    assert m.compound(np.array([0.1, -0.1])) == pytest.approx(-0.01)


def test_sharpe_by_hand() -> None:
    # r = 1 %, -1 %, 2 %, 0: mean 0.005; squared deviations sum 5e-4, /3 -> var
    r = np.array([0.01, -0.01, 0.02, 0.0])
    assert m.sharpe_ratio(r) == pytest.approx(0.005 / math.sqrt(5e-4 / 3) * math.sqrt(252))
    assert m.sharpe_ratio(r, 365) == pytest.approx(0.005 / math.sqrt(5e-4 / 3) * math.sqrt(365))
    assert math.isnan(m.sharpe_ratio(np.array([0.01])))
    assert m.sharpe_ratio(np.array([0.01, 0.01])) == math.inf  # constant gain: no risk


def test_sortino_by_hand() -> None:
    # downside min(r, 0) = 0, -0.01, 0, 0 -> mean square 2.5e-5 over ALL 4 periods -> 0.005
    r = np.array([0.01, -0.01, 0.02, 0.0])
    assert m.downside_deviation(r) == pytest.approx(0.005 * math.sqrt(252))
    # sortino = 0.005 * 252 / (0.005 * sqrt(252)) = sqrt(252)
    assert m.sortino_ratio(r) == pytest.approx(math.sqrt(252))
    # target 1 %: r - T = 0, -0.02, 0.01, -0.01 -> mean -0.005; dd sqrt(5e-4/4)
    assert m.sortino_ratio(r, 252, 0.01) == pytest.approx(
        -0.005 * 252 / (math.sqrt(5e-4 / 4) * math.sqrt(252))
    )
    assert m.sortino_ratio(np.array([0.01, 0.02])) == math.inf


def test_annual_return_and_calmar_by_hand() -> None:
    # two periods of +10 % with P = 2: one year, 1.1 * 1.1 - 1 = 21 %
    assert m.annual_return(np.array([0.1, 0.1]), 2) == pytest.approx(0.21)
    # 126 days of +0.1 % with P = 252: half a year -> 1.001 ** 252 - 1 per year
    assert m.annual_return(np.full(126, 0.001)) == pytest.approx(1.001**252 - 1)
    assert m.annual_return(np.array([-1.0, 0.5])) == -1.0  # ruin stays ruin
    assert m.calmar_ratio(0.21, 0.10) == pytest.approx(2.1)
    assert math.isnan(m.calmar_ratio(0.21, 0.0))


def test_drawdowns_by_hand() -> None:
    # equity 100, 120, 90, 130, 117: dd 0, 0, 1 - 90/120 = .25, 0, 1 - 117/130 = .1
    eq = np.array([100.0, 120.0, 90.0, 130.0, 117.0])
    assert m.drawdown_frac(eq) == pytest.approx([0, 0, 0.25, 0, 0.1])
    assert m.max_drawdown_frac(eq) == pytest.approx(0.25)
    ts = np.array([0, 1, 3, 6, 10]) * DAY
    ep = m.drawdown_episodes(ts, eq)
    # episode 1: peak 120 (day 1), trough day 3, regained at 130 on day 6
    # episode 2: peak 130 (day 6), trough and end day 10, still open
    assert [(e.peak_ts_ns, e.trough_ts_ns, e.end_ts_ns, e.recovered) for e in ep] == [
        (1 * DAY, 3 * DAY, 6 * DAY, True),
        (6 * DAY, 10 * DAY, 10 * DAY, False),
    ]
    assert m.average_drawdown_frac(ep) == pytest.approx((0.25 + 0.1) / 2)
    assert m.time_to_recover_days(ep) == pytest.approx(5.0)  # day 1 -> day 6
    # the open drawdown counts to the end: peak day 4 -> last mark day 20 = 16 days
    ep2 = m.drawdown_episodes(np.array([0, 1, 3, 4, 20]) * DAY, eq)
    assert m.time_to_recover_days(ep2) == pytest.approx(16.0)
    # a drawdown right at the first mark starts at that mark
    assert m.drawdown_episodes(np.array([0, 1]), np.array([100.0, 100.0])) == []
    assert m.time_to_recover_days([]) == 0.0 and m.average_drawdown_frac([]) == 0.0


def test_gross_equity_adds_back_costs_up_to_each_mark() -> None:
    # marks t=0,10,20 equity 100, 99, 98; costs 1.0 at t=5 and 0.5 at t=20
    gross = m.gross_equity_usd(
        np.array([0, 10, 20]),
        np.array([100.0, 99.0, 98.0]),
        np.array([20, 5]),
        np.array([0.5, 1.0]),
    )
    assert gross == pytest.approx([100.0, 100.0, 99.5])


def test_reconstruct_trades_average_cost_with_a_flip() -> None:
    fills = [
        m.FillRow("X", 1, "buy", 2, 10.0, 0.2),  # q 2 @ 10
        m.FillRow("X", 2, "buy", 2, 14.0, 0.2),  # q 4, average cost 12
        m.FillRow("Y", 2, "sell", 1, 50.0, 0.0),  # Y stays open
        m.FillRow("X", 3, "sell", 1, 15.0, 0.1),  # realise 1 * (15 - 12) = +3, q 3
        m.FillRow("X", 4, "sell", 5, 11.0, 0.5),  # close 3: 3 * (11 - 12) = -3; short 2 @ 11
        m.FillRow("X", 5, "buy", 2, 10.0, 0.2),  # cover: 2 * (11 - 10) = +2
    ]
    trades, n_open = m.reconstruct_trades(fills)
    assert n_open == 1
    t1, t2 = trades
    # trade 1: gross 3 - 3 = 0; fees .2 + .2 + .1 + 3/5 of .5 = .8; notional 20+28+15+33
    assert (t1.direction, t1.open_ts_ns, t1.close_ts_ns) == (1, 1, 4)
    assert t1.gross_pnl_usd == pytest.approx(0.0) and t1.fees_usd == pytest.approx(0.8)
    assert t1.pnl_usd == pytest.approx(-0.8) and t1.notional_usd == pytest.approx(96.0)
    # trade 2: short opened by the rest of the flip; fees 2/5 of .5 + .2 = .4
    assert (t2.direction, t2.open_ts_ns, t2.close_ts_ns) == (-1, 4, 5)
    assert t2.gross_pnl_usd == pytest.approx(2.0) and t2.pnl_usd == pytest.approx(1.6)
    assert t2.holding_s == pytest.approx(1e-9)


def test_trade_stats_by_hand() -> None:
    # wins 10, 20; losses -5, -5; a zero trade counts in n but not as a win
    s = m.trade_stats([10.0, -5.0, 0.0, 20.0, -5.0])
    assert s == {
        "n_trades": 5,
        "hit_rate": 0.4,
        "avg_win_usd": 15.0,
        "avg_loss_usd": -5.0,
        "profit_factor": 3.0,
    }
    assert m.trade_stats([1.0])["profit_factor"] == math.inf
    assert math.isnan(m.trade_stats([])["hit_rate"])


def test_turnover_costs_and_capacity_by_hand() -> None:
    # 1e6 traded on 1e5 average equity over 126 days = half a year (P = 252): 20 per year
    assert m.turnover_per_year(1e6, 1e5, 126) == pytest.approx(20.0)
    assert math.isnan(m.turnover_per_year(1e6, 1e5, 0))
    # buy 2 @ 101 vs decision 100 costs 2; sell 2 @ 99 vs 100 costs 2; bps fallback
    assert m.fill_costs_usd("buy", 2, 101.0, 0.1, 0.0, 100.0) == (0.1, pytest.approx(2.0), 0.0)
    assert m.fill_costs_usd("sell", 2, 99.0, 0.1, 0.0, 100.0)[1] == pytest.approx(2.0)
    assert m.fill_costs_usd("buy", 1, 100.0, 0.0, 10.0, None)[1] == pytest.approx(0.1)
    # net 60 + fees 20 + slippage 15 + funding 5 = gross alpha 100
    s = m.cost_shares(60.0, 20.0, 15.0, 5.0)
    assert s["gross_alpha_usd"] == 100.0
    assert (s["fee_share"], s["slippage_share"], s["funding_share"]) == (0.2, 0.15, 0.05)
    assert s["cost_share"] == pytest.approx(0.4)
    assert math.isnan(m.cost_shares(-50.0, 20.0, 10.0, 0.0)["fee_share"])
    # impact 10: net(L) = 70 L - 10 L^1.5 = 0 at L = 49; impact = gross 100 at L = 100
    cap = m.capacity_estimate(60.0, 100.0, 10.0, 1e6)
    assert cap["breakeven_aum_usd"] == pytest.approx(49e6)
    assert cap["impact_eats_gross_alpha_aum_usd"] == pytest.approx(100e6)
    assert pytest.approx(0.0) == 49 * 70 - 49**1.5 * 10
    assert math.isnan(m.capacity_estimate(60.0, 100.0, 0.0, 1e6)["breakeven_aum_usd"])


def test_dominant_model_and_dispersion() -> None:
    votes = {"a": {"edge_bps": 10, "weight": 0.5}, "b": {"edge_bps": -6, "weight": 1.0}}
    assert m.dominant_model(votes) == "b"  # |1 * -6| > |0.5 * 10|
    assert (
        m.dominant_model({"z": {"edge_bps": 1, "weight": 1}, "y": {"edge_bps": -1, "weight": 1}})
        == "y"
    )
    assert m.dominant_model({}) == "unknown"
    d = m.dispersion([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["median"] == 2.5
    assert d["std"] == pytest.approx(math.sqrt(5 / 3)) and (d["min"], d["max"]) == (1.0, 4.0)
    assert math.isnan(m.dispersion([1.0])["std"])


# --- properties ---------------------------------------------------------------------------

returns_st = st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=3, max_size=60)


@given(returns_st, st.floats(0.01, 100.0))
def test_sharpe_and_sortino_are_scale_invariant(rs: list[float], c: float) -> None:
    r = np.array(rs)
    assume(np.std(r) > 1e-6 and np.any(r < -1e-6))
    assert m.sharpe_ratio(c * r) == pytest.approx(m.sharpe_ratio(r), rel=1e-6)
    assert m.sortino_ratio(c * r) == pytest.approx(m.sortino_ratio(r), rel=1e-6)


@given(st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_drawdown_is_a_fraction_and_recovery_time_is_bounded(eq: list[float]) -> None:
    e = np.array(eq)
    dd = m.drawdown_frac(e)
    assert np.all(dd >= 0) and np.all(dd < 1)
    ts = np.arange(e.size, dtype=np.int64) * DAY
    ep = m.drawdown_episodes(ts, e)
    assert 0 <= m.time_to_recover_days(ep) <= e.size - 1
    assert m.max_drawdown_frac(e) == pytest.approx(max([x.depth_frac for x in ep], default=0.0))
    assert m.max_drawdown_frac(np.maximum.accumulate(e)) == 0.0  # never below its peak


@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=40))
def test_profit_factor_agrees_with_hit_rate_and_averages(pnl: list[float]) -> None:
    s = m.trade_stats(pnl)
    p = np.array(pnl)
    n_win, n_loss = int((p > 0).sum()), int((p < 0).sum())
    assert s["hit_rate"] * len(pnl) == pytest.approx(n_win)
    if n_win and n_loss:
        pf = n_win * s["avg_win_usd"] / (n_loss * -s["avg_loss_usd"])
        assert s["profit_factor"] == pytest.approx(pf)
        assert (s["profit_factor"] > 1) == (p[p != 0].sum() > 0) or math.isclose(
            p.sum(), 0, abs_tol=1e-9
        )
    if n_win and not n_loss:
        assert s["profit_factor"] == math.inf and s["hit_rate"] == n_win / len(pnl)
    if n_loss and not n_win:
        assert s["profit_factor"] == 0.0 and s["hit_rate"] == 0.0


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 5),
                          st.floats(1.0, 1000.0), st.floats(0.0, 1.0)), max_size=30))  # fmt: skip
def test_trades_conserve_cash_when_the_book_ends_flat(
    moves: list[tuple[str, int, float, float]],
) -> None:
    fills = [m.FillRow("X", i, s, q, p, fee) for i, (s, q, p, fee) in enumerate(moves)]
    pos = sum(q if s == "buy" else -q for s, q, _, _ in moves)
    if pos:
        fills.append(m.FillRow("X", len(fills), "sell" if pos > 0 else "buy", abs(pos), 500.0, 0))
    trades, n_open = m.reconstruct_trades(fills)
    cash = sum((-f.qty if f.side == "buy" else f.qty) * f.price for f in fills)
    assert n_open == 0
    assert sum(t.gross_pnl_usd for t in trades) == pytest.approx(cash, abs=1e-6)
    assert sum(t.fees_usd for t in trades) == pytest.approx(sum(f.fee_usd for f in fills))
    assert all(t.close_ts_ns >= t.open_ts_ns for t in trades)


# --- cross-check with empyrical -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ppy", [252, 365])
def test_matches_empyrical(seed: int, ppy: int) -> None:
    """Same returns, same conventions: annualization=P, risk-free 0, Sortino target T.

    empyrical's max_drawdown is <= 0 on cum_returns with the start prepended; ours is
    >= 0 on an equity curve, so we compare against curve_from_returns(r) and negate.
    """
    ep = pytest.importorskip("empyrical")
    r = np.random.default_rng(seed).normal(0.0005, 0.01, 300)
    assert m.sharpe_ratio(r, ppy) == pytest.approx(ep.sharpe_ratio(r, annualization=ppy))
    for target in (0.0, 0.001):
        assert m.sortino_ratio(r, ppy, target) == pytest.approx(
            ep.sortino_ratio(r, required_return=target, annualization=ppy)
        )
        assert m.downside_deviation(r, ppy, target) == pytest.approx(
            ep.downside_risk(r, required_return=target, annualization=ppy)
        )
    ann = m.annual_return(r, ppy)
    assert ann == pytest.approx(ep.annual_return(r, annualization=ppy))
    max_dd = m.max_drawdown_frac(m.curve_from_returns(r))
    assert max_dd == pytest.approx(-ep.max_drawdown(r))
    assert m.calmar_ratio(ann, max_dd) == pytest.approx(ep.calmar_ratio(r, annualization=ppy))
