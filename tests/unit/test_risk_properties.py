"""Hypothesis properties of sizing and the decision engine (issue 5 acceptance)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.engine import RiskEngine
from services.risk_harmoniser.limits import Book, Caps
from services.risk_harmoniser.sizing import SizeInputs, size
from services.risk_harmoniser.var import portfolio_var_usd
from shared.control import TradingState
from shared.messages import Signal

pytestmark = pytest.mark.risk

TOL = 1e-6


@st.composite
def books(draw: st.DrawFn) -> tuple[int, Book]:
    n = draw(st.integers(1, 5))
    # Covariance = A A^T: always positive semi-definite; daily vols up to ~10 %.
    a = [[draw(st.floats(-0.05, 0.05)) for _ in range(n)] for _ in range(n)]
    cov = tuple(tuple(sum(a[i][k] * a[j][k] for k in range(n)) for j in range(n)) for i in range(n))
    pos = st.floats(-400_000, 400_000, allow_nan=False)
    w = tuple(draw(pos) for _ in range(n))
    classes = tuple(draw(st.sampled_from(["crypto", "stocks"])) for _ in range(n))
    sectors = tuple(draw(st.sampled_from(["a", "b"])) for _ in range(n))
    equity = draw(st.floats(100_000, 5_000_000))
    budget = draw(st.floats(0, 100_000))
    return draw(st.integers(0, n - 1)), Book(w, classes, sectors, cov, equity, budget)


caps_st = st.builds(
    Caps,
    st.floats(1, 50),
    st.floats(0.5, 5),
    st.floats(10, 100),
    st.floats(50, 300),
    st.floats(0.05, 2),
    st.floats(0.2, 5),
    st.just(1.645),
    st.floats(1_000, 200_000),
)
inputs_st = st.builds(
    SizeInputs,
    st.sampled_from([1.0, -1.0]),
    st.floats(-5, 50),
    st.floats(0.1, 2),
    st.floats(0.05, 1),
    st.floats(0, 1),
    st.floats(1, 20),
    st.floats(0.25, 1),
)


def _metrics(
    i: int, w: tuple[float, ...] | list[float], book: Book, caps: Caps
) -> dict[str, float]:
    """Each capped quantity, as the cap it is compared against."""
    eq = book.equity_usd
    cls, sec = book.asset_class[i], book.sector[i]
    sig = [math.sqrt(max(0.0, book.cov_daily[j][j])) for j in range(len(w))]
    return {
        "name": abs(w[i]) / (caps.name_cap_pct / 100 * eq),
        "leverage": sum(abs(x) for j, x in enumerate(w) if book.asset_class[j] == cls)
        / (caps.leverage * eq),
        "sector": sum(abs(x) for j, x in enumerate(w) if book.sector[j] == sec)
        / (caps.sector_cap_pct / 100 * eq),
        "gross": sum(abs(x) for x in w) / (caps.gross_cap_pct / 100 * eq),
        "open_risk": sum(caps.var_z * s * abs(x) for s, x in zip(sig, w, strict=True))
        / max(book.loss_budget_usd, 1e-9),
        "var": portfolio_var_usd(w, book.cov_daily, caps.var_z) / (caps.var_limit_pct / 100 * eq),
    }


@settings(max_examples=300, deadline=None)
@given(books(), caps_st, inputs_st, st.booleans())
def test_a_size_never_breaks_a_cap_and_var_stays_within_limit(
    ib: tuple[int, Book], caps: Caps, inputs: SizeInputs, reducing: bool
) -> None:
    i, book = ib
    x = book.positions_usd[i]
    target, _ = size(i, inputs, book, caps, reducing)
    after = list(book.positions_usd)
    after[i] = target
    before_m, after_m = _metrics(i, book.positions_usd, book, caps), _metrics(i, after, book, caps)
    for key, value in after_m.items():
        # within its cap, or (a book that already broke it) no worse than before
        assert value <= max(1.0, before_m[key]) + TOL, (key, before_m[key], value)
    assert abs(target - x) <= caps.max_order_usd + TOL
    sigma = math.sqrt(max(0.0, book.cov_daily[i][i]))
    if sigma > 0 and abs(target) > abs(x) and target * x >= 0:
        opened = abs(target) - abs(x)
        assert (
            caps.var_z * sigma * opened <= caps.single_trade_risk_pct / 100 * book.equity_usd + 1e-3
        )
    if reducing:
        assert abs(target) <= abs(x) + TOL and target * x >= -TOL


# ---- the engine: HALTED emits nothing, REDUCING never adds exposure -------------------

T0 = 1_700_000_000 * 10**9
SYMS = ("BTC-USD", "ETH-USD", "AAPL")
PRICES = {"BTC-USD": 65_000.0, "ETH-USD": 3_400.0, "AAPL": 230.0}


def _engine(positions: list[float]) -> RiskEngine:
    eng = RiskEngine(RiskParams(pretrade={"symbol_cooldown_ms": 0, "max_orders_per_s": 1e6}))
    st0 = TradingState()
    for k, sym in enumerate(SYMS):
        px = PRICES[sym]
        eng.on_tick(sym, px * 0.9999, px * 1.0001, 5.0, 5.0, 1.0, T0 + k, st0)
        if positions[k]:
            q = positions[k] / px
            eng.on_fill(f"f{k}", f"o{k}", sym, q, px, 0.0)
    return eng


signals_st = st.lists(
    st.tuples(
        st.sampled_from(SYMS),
        st.sampled_from(["book_pressure", "ma_momentum", "consensus"]),
        st.floats(-60, 60),
        st.floats(0, 1),
    ),
    min_size=1,
    max_size=12,
)
positions_st = st.lists(st.floats(-150_000, 150_000), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(positions_st, signals_st)
def test_halted_emits_no_order(positions: list[float], signals: list[tuple]) -> None:
    eng = _engine(positions)
    halted = TradingState("HALTED", "manual")
    for n, (sym, model, edge, conf) in enumerate(signals):
        sig = Signal(
            symbol=sym,
            ts_ns=T0 + 10 + n,
            model_id=model,
            horizon="1m",
            edge_bps=edge,
            confidence=conf,
        )
        d = eng.on_signal(sig, halted)
        assert d is not None and d.action == "halt" and d.reason == "trading_halted:manual"
    assert eng.portfolio.working == {}


@settings(max_examples=60, deadline=None)
@given(positions_st, signals_st)
def test_reducing_never_increases_exposure(positions: list[float], signals: list[tuple]) -> None:
    eng = _engine(positions)
    reducing = TradingState("REDUCING", "manual")
    for n, (sym, model, edge, conf) in enumerate(signals):
        before = eng.portfolio.exposure_qty(sym)
        gross_before = sum(abs(eng.portfolio.exposure_qty(s)) * PRICES[s] for s in SYMS)
        sig = Signal(
            symbol=sym,
            ts_ns=T0 + 10 + n,
            model_id=model,
            horizon="1m",
            edge_bps=edge,
            confidence=conf,
        )
        d = eng.on_signal(sig, reducing)
        after = eng.portfolio.exposure_qty(sym)
        gross_after = sum(abs(eng.portfolio.exposure_qty(s)) * PRICES[s] for s in SYMS)
        assert abs(after) <= abs(before) + 1e-9 and after * before >= 0
        assert gross_after <= gross_before + 1e-6
        if d is not None and d.action == "order":
            assert d.reduce_only
