"""Hand-worked examples for every risk formula (docs/risk_harmoniser.md)."""

from __future__ import annotations

import math

import pytest

from services.risk_harmoniser.blend import SignalBook, blend
from services.risk_harmoniser.breakers import (
    DAY_NS,
    LossStreak,
    VolPercentile,
    drawdown_pct,
    next_utc_midnight_ns,
)
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.costs import horizon_s, net_edge_bps
from services.risk_harmoniser.limits import Book, Caps, OrderRate, constrain, quote_check
from services.risk_harmoniser.portfolio import Holding, Portfolio
from services.risk_harmoniser.sizing import (
    KellyTracker,
    desired_position_usd,
    kelly_f,
    vol_target_usd,
)
from services.risk_harmoniser.var import (
    EwmaCovariance,
    portfolio_var_pct,
    position_var_pct,
    var_interval,
)
from shared.config import ConfigError, validate
from shared.control import LEVELS, level_command
from shared.messages import Signal

pytestmark = pytest.mark.risk


def test_blend_confidence_weighted_decayed_and_shrunk() -> None:
    # w1 = 1.0; w2 = 0.5 * 2**(-5/5) = 0.25; k = (7/10)^2 = 0.49
    # edge = (10*1 - 4*0.25) / (1.25 + 0.49) = 9 / 1.74; unc = 7 / sqrt(1.74)
    edge, unc = blend([(10.0, 1.0, 0.0), (-4.0, 0.5, 5.0)], 5.0, 7.0, 10.0)
    assert edge == pytest.approx(5.1724138, rel=1e-6)
    assert unc == pytest.approx(5.3066863, rel=1e-6)


def test_blend_no_signals_or_zero_confidence_is_zero_edge_prior_uncertainty() -> None:
    assert blend([], 5.0, 7.0, 10.0) == (0.0, pytest.approx(10.0))
    assert blend([(50.0, 0.0, 0.0)], 5.0, 7.0, 10.0) == (0.0, pytest.approx(10.0))


def test_more_and_better_signals_shrink_less() -> None:
    one, _ = blend([(10.0, 0.5, 0.0)], 5.0, 7.0, 10.0)
    two, _ = blend([(10.0, 0.5, 0.0), (10.0, 0.5, 0.0)], 5.0, 7.0, 10.0)
    strong, _ = blend([(10.0, 1.0, 0.0)], 5.0, 7.0, 10.0)
    assert one < two < 10.0
    assert two == pytest.approx(strong)


def _sig(model: str, edge: float, conf: float, ts: int, shadow: bool = False) -> Signal:
    return Signal(
        symbol="BTC-USD",
        ts_ns=ts,
        model_id=model,
        horizon="1m",
        edge_bps=edge,
        confidence=conf,
        shadow=shadow,
    )


def test_signal_book_prefers_consensus_ignores_shadow_and_old() -> None:
    book = SignalBook()
    assert not book.add(_sig("mm", 99.0, 1.0, 10, shadow=True))
    book.add(_sig("book_pressure", 8.0, 0.5, 10))
    assert book.views(10, 30.0) == [(8.0, 0.5, 0.0)]
    book.add(_sig("consensus", 4.0, 0.8, 10))
    assert book.views(10, 30.0) == [(4.0, 0.8, 0.0)]
    assert not book.add(_sig("consensus", 1.0, 0.8, 5))  # older than held
    assert book.views(10 + 31 * 10**9, 30.0) == []  # everything too old


def test_costs_hand_worked() -> None:
    assert horizon_s("1m", 9.0) == 60.0 and horizon_s("4h", 9.0) == 14_400.0
    assert horizon_s("250ms", 9.0) == 0.25 and horizon_s("soon", 9.0) == 9.0
    assert horizon_s("30", 9.0) == 9.0  # the signal grammar has a unit
    # the cost total itself: tests/unit/test_costs_model.py
    assert net_edge_bps(-12.0, 9.05, 2.0) == pytest.approx(0.95)


def test_sizing_hand_worked() -> None:
    assert vol_target_usd(1_000_000, 0.5, 0.05) == pytest.approx(100_000)
    assert kelly_f(0.55, 1.0) == pytest.approx(0.1)
    assert kelly_f(0.6, 2.0) == pytest.approx(0.4)
    assert kelly_f(0.4, 1.0) == 0.0
    # base 100k, kelly 1M * 0.25 * 0.1 = 25k, conviction 5/10 -> 12.5k, short
    got = desired_position_usd(-1.0, 5.0, 1_000_000, 0.05, 0.5, 0.25, 0.1, 10.0, 1.0)
    assert got == pytest.approx(-12_500)
    assert desired_position_usd(1.0, -1.0, 1_000_000, 0.05, 0.5, 0.25, 0.1, 10.0, 1.0) == 0.0


def test_kelly_tracker_priors_until_enough_trades() -> None:
    k = KellyTracker()
    for pnl in (30.0, -10.0, 30.0):
        k.record(pnl)
    assert k.f(0.55, 1.0, 20) == pytest.approx(0.1)  # 3 < 20 trades: priors
    # 2 wins of 30, 1 loss of 10: p = 2/3, b = 3 -> 2/3 - 1/9 = 5/9
    assert k.f(0.55, 1.0, 3) == pytest.approx(5 / 9)


def test_var_hand_worked() -> None:
    cov = ((0.0004, 0.0001), (0.0001, 0.0009))
    # w'Cw = 4e6 - 1e6 + 2.25e6 = 5.25e6 -> 1.645 * 2291.288 = 3769.17 USD
    assert portfolio_var_pct((100_000, -50_000), cov, 1.645, 1e6) == pytest.approx(
        0.376917, rel=1e-5
    )
    assert position_var_pct(-50_000, 0.03, 1.645, 1e6) == pytest.approx(0.24675)
    # name 0, others (-50k): a = 4e-4, b = -5, c = 2.25e6, d = (3000/1.645)^2
    # t = (5 -+ sqrt(25 - a (c - d))) / a = (5 -+ 21.3396) / 4e-4
    lo, hi = var_interval(0, (100_000, -50_000), cov, 1.645, 3_000)
    assert lo == pytest.approx(-40_849, rel=1e-3)
    assert hi == pytest.approx(65_849, rel=1e-3)
    lo, hi = var_interval(0, (0.0, 1e9), cov, 1.645, 3_000)
    assert lo > hi  # the other name alone breaks the limit


def test_ewma_covariance_starts_at_priors_and_learns() -> None:
    cov = EwmaCovariance(1.0, 0.5, 86_400.0, 0.3)
    cov.add("A", 0.05)
    cov.add("B", 0.02)
    assert cov.daily_vol(0) == pytest.approx(0.05)
    assert cov.daily()[0][1] == pytest.approx(0.3 * 0.05 * 0.02)
    t0 = 10**18
    assert cov.sample([100.0, 50.0], t0)
    assert not cov.sample([101.0, 50.0], t0 + 10**8)  # < 1 s: no sample
    assert cov.sample([101.0, 50.0], t0 + 10**9)
    r = math.log(1.01)
    prior = 0.05**2 / 86_400
    assert cov.cov[0][0] == pytest.approx(0.5 * prior + 0.5 * r * r)
    assert cov.cov[1][1] == pytest.approx(0.5 * 0.02**2 / 86_400)  # no move in B


def test_breakers_hand_worked() -> None:
    assert drawdown_pct(1_000_000, 970_000) == pytest.approx(3.0)
    assert next_utc_midnight_ns(5 * DAY_NS + 123) == 6 * DAY_NS
    s = LossStreak()
    for pnl in (-1.0, -2.0):
        s.record(pnl)
    assert s.size_mult(3, 0.5) == 1.0
    s.record(-1.0)
    assert s.size_mult(3, 0.5) == 0.5
    s.record(5.0)
    assert s.size_mult(3, 0.5) == 1.0
    v = VolPercentile(100)
    for x in range(1, 101):
        v.add(float(x))
    assert v.percentile(95) == 95.0
    assert v.above(95, 30)  # latest = 100 > 95
    v.add(50.0)
    assert not v.above(95, 30)


def test_average_cost_book_and_working_orders() -> None:
    h = Holding()
    h.apply(2, 100.0, 0.0)
    h.apply(2, 110.0, 0.0)
    assert h.avg_price == 105.0
    assert h.apply(-3, 120.0, 1.0) == pytest.approx(45.0)
    assert h.apply(-2, 90.0, 0.0) == pytest.approx(-15.0)
    assert (h.qty, h.avg_price) == (-1.0, 90.0)
    pf = Portfolio(1_000.0)
    pf.add_working("o1", "X", 3.0)
    assert pf.on_fill("f1", "o1", "X", 1.0, 10.0, 0.1)[0]
    assert not pf.on_fill("f1", "o1", "X", 1.0, 10.0, 0.1)[0]  # duplicate fill_id
    assert pf.exposure_qty("X") == pytest.approx(3.0)  # 1 filled + 2 working
    assert pf.on_rejection("o1")  # cancel of the remainder
    assert pf.exposure_qty("X") == pytest.approx(1.0)
    pf.marks["X"] = 12.0
    assert pf.equity_usd() == pytest.approx(1_000 + 2.0 - 0.1)


def _book(w: tuple[float, ...], equity: float = 1e6) -> Book:
    n = len(w)
    cov = tuple(tuple(0.0004 if i == j else 0.0 for j in range(n)) for i in range(n))
    return Book(w, ("crypto",) * n, ("crypto",) * n, cov, equity, 30_000.0)


CAPS = Caps(20.0, 3.0, 50.0, 200.0, 0.5, 2.0, 1.645, 100_000.0)


def test_limits_clip_and_name_the_binding_one() -> None:
    # sigma 2 %: single-trade opening = 0.5 % * 1M / (1.645 * 0.02) = 151,976 > name cap
    assert constrain(0, 500_000, _book((0.0,)), CAPS, False) == (100_000.0, "max_order")
    assert constrain(0, 150_000, _book((100_000.0,)), CAPS, False) == (150_000.0, "")
    # name cap 20 % of 1M
    assert constrain(0, 300_000, _book((150_000.0,)), CAPS, False) == (200_000.0, "name_cap")
    # sector 50 %: others hold 400k -> 100k left
    assert constrain(0, 150_000, _book((0.0, 200_000, 200_000)), CAPS, False)[0] == 100_000.0
    # REDUCING: only toward zero
    assert constrain(0, 50_000, _book((-20_000.0,)), CAPS, True) == (0.0, "reducing_only")
    # a book already past the name cap is brought back by at most max_order_usd
    assert constrain(0, 300_000, _book((400_000.0,)), CAPS, False) == (
        300_000.0,
        "reduce_to_limits",
    )


def test_pretrade_checks() -> None:
    assert quote_check(0, 0.0, None, 10, 2_000, 50) == "no_quote"
    assert quote_check(1, 100.0, None, 3 * 10**9, 2_000, 50) == "stale_quote"
    assert quote_check(1, 100.0, 101.0, 2, 2_000, 50) == "price_band"  # 100 bps off
    assert quote_check(1, 100.0, 100.2, 2, 2_000, 50) == ""
    rate = OrderRate()
    rate.record("A", 0)
    rate.record("B", 10)
    assert rate.check("C", 20, 2.0, 0) == "order_rate"
    assert rate.check("A", 10**9 + 20, 2.0, 2_000) == "symbol_cooldown"
    assert rate.check("C", 10**9 + 20, 2.0, 0) == ""


def test_presets_and_overrides_and_errors_name_the_key() -> None:
    cons = validate("risk_harmoniser", {"preset": "conservative"})
    assert isinstance(cons, RiskParams)
    assert cons.limits.var_limit_pct == 1.0 and cons.sizing.target_vol_pct == 0.25
    bal = validate("risk_harmoniser", {"limits": {"name_cap_pct": {"crypto": 12}}})
    assert isinstance(bal, RiskParams)
    assert (bal.limits.name_cap_pct.crypto, bal.limits.name_cap_pct.stocks) == (12.0, 25.0)
    assert bal.sizing.kelly_fraction == 0.25 and bal.limits.var_limit_pct == 2.0
    with pytest.raises(ConfigError, match=r"limits\.sector_cap_pc: unknown key"):
        validate("risk_harmoniser", {"limits": {"sector_cap_pc": 10}})
    with pytest.raises(ConfigError, match=r"sizing\.kelly_fraction: Input should be less"):
        validate("risk_harmoniser", {"sizing": {"kelly_fraction": 2}})
    with pytest.raises(ConfigError, match="halt_var_pct"):
        validate("risk_harmoniser", {"breakers": {"halt_var_pct": 1.0}})
    assert bal.symbol_info("BTC-USD").asset_class == "crypto"
    assert bal.symbol_info("MSFT").asset_class == "stocks"


def test_seed_001_levels_map_onto_trading_states() -> None:
    assert {lvl: st for lvl, (st, _) in LEVELS.items()} == {
        "WARNING": "ACTIVE",
        "REDUCE_RISK": "REDUCING",
        "HALT_NEW_POSITIONS": "REDUCING",
        "HALT_ALL_TRADING": "HALTED",
        "EMERGENCY_CLOSE": "HALTED",
    }
    assert level_command("WARNING", "x") is None
    cmd = level_command("HALT_ALL_TRADING", "dd", until_ns=5)
    assert cmd is not None and (cmd.action, cmd.until_ns) == ("halt", 5)
