"""The per-signal paths of risk_harmoniser (issue 9): limits, VaR interval and sizing as
properties of their pure functions; the one-pass signal views, the horizon cache and
the per-batch state against what they replace."""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.risk_harmoniser.blend import CONSENSUS, SignalBook
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.costs import horizon_s
from services.risk_harmoniser.engine import RiskEngine
from services.risk_harmoniser.limits import Book, Caps, constrain, limit_intervals
from services.risk_harmoniser.portfolio import Portfolio
from services.risk_harmoniser.service import FILLS_KEY, STATE_KEY, RiskHarmoniser
from services.risk_harmoniser.sizing import desired_position_usd, full_size_usd, vol_target_usd
from services.risk_harmoniser.var import EwmaCovariance, quad_form, var_interval
from shared.control import TradingState
from shared.messages import ORDERS, RiskDecision, Signal, horizon_ns
from tests.support import WritesHarness, feed_in_order

pytestmark = pytest.mark.risk

# ---- books: PSD or not, flat names, tight caps ------------------------------------------


@st.composite
def books(draw: st.DrawFn) -> tuple[int, Book]:
    n = draw(st.integers(1, 5))
    if draw(st.booleans()):  # A A^T: a real covariance
        a = [[draw(st.floats(-0.05, 0.05)) for _ in range(n)] for _ in range(n)]
        cov = tuple(
            tuple(sum(a[i][k] * a[j][k] for k in range(n)) for j in range(n)) for i in range(n)
        )
    else:  # anything, negative variances included: every branch of the interval
        cov = tuple(tuple(draw(st.floats(-1e-3, 1e-2)) for _ in range(n)) for _ in range(n))
    pos = st.one_of(st.just(0.0), st.floats(-400_000, 400_000, allow_nan=False))
    w = tuple(draw(pos) for _ in range(n))
    classes = tuple(draw(st.sampled_from(["crypto", "stocks"])) for _ in range(n))
    sectors = tuple(draw(st.sampled_from(["a", "b"])) for _ in range(n))
    equity = draw(st.floats(1_000, 5_000_000))
    budget = draw(st.one_of(st.just(0.0), st.floats(0, 100_000)))
    return draw(st.integers(0, n - 1)), Book(w, classes, sectors, cov, equity, budget)


caps_st = st.builds(
    Caps,
    st.floats(0, 50),
    st.floats(0, 5),
    st.floats(0, 100),
    st.floats(0, 300),
    st.floats(0.05, 2),
    st.floats(0.2, 5),
    st.just(1.645),
    st.floats(0, 200_000),
)


def _inside(t: float, lo: float, hi: float) -> bool:
    return lo <= t <= hi


@settings(max_examples=1500, deadline=None)
@given(books(), caps_st, st.floats(-600_000, 600_000), st.booleans())
def test_constrain_clips_into_every_limit_and_names_the_first_binding_one(
    ib: tuple[int, Book], caps: Caps, desired: float, reducing: bool
) -> None:
    i, book = ib
    intervals = limit_intervals(i, book, caps, reducing)
    lo = max(p_lo for _, p_lo, _ in intervals)
    hi = min(p_hi for _, _, p_hi in intervals)
    target, reason = constrain(i, desired, book, caps, reducing)
    x = book.positions_usd[i]
    if lo <= hi:
        # the point of the intersection nearest to the desired position
        assert all(_inside(target, p_lo, p_hi) for _, p_lo, p_hi in intervals)
        assert target == min(hi, max(lo, desired))
        if target == desired:
            assert reason == ""
        else:
            on_bound = [r for r, p_lo, p_hi in intervals if target in (p_lo, p_hi)]
            assert reason == (on_bound[0] if on_bound else "limits")
    else:  # no feasible size: keep x, or a step of at most max_order_usd toward zero
        assert reason in ("no_feasible_size", "reduce_to_limits")
        if reason == "no_feasible_size":
            assert target == x
        else:
            assert abs(target) <= abs(x) and target * x >= 0
            assert target == x - math.copysign(min(abs(x), caps.max_order_usd), x)


@settings(max_examples=300, deadline=None)
@given(books(), caps_st, st.booleans(), st.sampled_from(range(9)))
def test_a_desired_size_on_a_bound_is_kept_unless_another_limit_cuts_it(
    ib: tuple[int, Book], caps: Caps, reducing: bool, k: int
) -> None:
    # desired = one of the bounds exactly, or just past it: ties between limits
    i, book = ib
    intervals = limit_intervals(i, book, caps, reducing)
    reason_k, lo_k, hi_k = intervals[k % len(intervals)]
    for desired in (lo_k, hi_k, lo_k - 1.0, hi_k + 1.0):
        if not math.isfinite(desired):
            continue
        target, reason = constrain(i, desired, book, caps, reducing)
        if all(_inside(desired, p_lo, p_hi) for _, p_lo, p_hi in intervals):
            assert (target, reason) == (desired, "")
        elif max(p[1] for p in intervals) <= min(p[2] for p in intervals):
            assert target != desired and reason not in ("", "limits")


@settings(max_examples=500, deadline=None)
@given(books(), st.floats(1.0, 1e6), st.floats(0, 1))
def test_var_interval_holds_the_positions_within_the_var_limit(
    ib: tuple[int, Book], limit_usd: float, u: float
) -> None:
    i, book = ib
    w, cov = book.positions_usd, book.cov_daily
    n = len(w)
    assume(all(cov[a][b] == cov[b][a] for a in range(n) for b in range(n)))  # a covariance
    lo, hi = var_interval(i, w, cov, 1.645, limit_usd)
    if lo > hi or not (math.isfinite(lo) and math.isfinite(hi)):
        return
    for t in (lo, hi, lo + u * (hi - lo)):
        moved = list(w)
        moved[i] = t
        # rounding is relative to the terms of w^T C w, not to their (cancelling) sum
        scale = sum(abs(cov[a][b] * moved[a]) * abs(moved[b]) for a in range(n) for b in range(n))
        assert 1.645**2 * quad_form(moved, cov) <= limit_usd**2 + 1e-9 * (scale + limit_usd**2)


@given(
    st.tuples(
        st.sampled_from([1.0, -1.0]),
        st.floats(-5, 50),
        st.floats(1_000, 5_000_000),
        st.one_of(st.just(0.0), st.floats(0, 0.2)),
        st.floats(0.1, 2),
        st.floats(0.05, 1),
        st.floats(0, 1),
        st.floats(1, 20),
        st.floats(0.25, 1),
    )
)
def test_desired_size_is_the_smaller_of_vol_target_and_kelly_scaled(
    args: tuple[float, ...],
) -> None:
    direction, net, equity, vol, target_vol, kelly_fraction, f_kelly, full_edge, mult = args
    got = desired_position_usd(*args)
    if net <= 0.0:
        assert got == 0.0
        return
    full = full_size_usd(equity, target_vol, vol, kelly_fraction, f_kelly)
    assert full <= vol_target_usd(equity, target_vol, vol)
    assert full <= equity * kelly_fraction * f_kelly
    assert full in (vol_target_usd(equity, target_vol, vol), equity * kelly_fraction * f_kelly)
    assert abs(got) <= full * mult
    assert got == math.copysign(full * min(1.0, net / full_edge) * mult, direction)


# ---- signal views, horizons, covariance sampling --------------------------------------


def ref_views(book: SignalBook, now_ns: int, max_age_s: float) -> list[tuple[float, float, float]]:
    fresh = [s for s in book.latest.values() if (now_ns - s.ts_ns) / 1e9 <= max_age_s]
    consensus = [s for s in fresh if s.model_id == CONSENSUS]
    chosen: Iterable[Signal] = consensus or fresh
    return [(s.edge_bps, s.confidence, max(0.0, (now_ns - s.ts_ns) / 1e9)) for s in chosen]


T0 = 1_700_000_000 * 10**9


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["consensus", "ma_momentum", "book_pressure"]),
            st.sampled_from(["1m", "5m"]),
            st.integers(0, 60 * 10**9),
            st.floats(-50, 50),
        ),
        max_size=10,
    ),
    st.integers(0, 90 * 10**9),
)
def test_signal_views_in_one_pass_match_the_filters(
    sigs: list[tuple[str, str, int, float]], now_after_ns: int
) -> None:
    book = SignalBook()
    for model, horizon, dt, edge in sigs:
        book.add(
            Signal(
                symbol="X",
                ts_ns=T0 + dt,
                model_id=model,
                horizon=horizon,
                edge_bps=edge,
                confidence=0.5,
            )
        )
    now = T0 + now_after_ns
    assert book.views(now, 30.0) == ref_views(book, now, 30.0)


def test_horizon_cache_answers_as_the_parse() -> None:
    for text in ("30s", "1m", "4h", "250ms", " 2 d ", "90", "soon", "1m", "1" + "0" * 400 + "s"):
        try:
            want = horizon_ns(text) / 1e9
        except (ValueError, OverflowError):
            want = 60.0
        want = want if want <= 366 * 86400 else 60.0  # past a year: as unparseable
        assert horizon_s(text, 60.0) == want
        assert horizon_s(text, 60.0) == want  # cached


@given(st.lists(st.integers(0, 3 * 10**9), min_size=1, max_size=20))
def test_cov_due_says_whether_sample_would_sample(steps: list[int]) -> None:
    cov = EwmaCovariance(1.0, 0.94, 60.0, 0.3)
    cov.add("X", 0.05)
    ts = T0
    for step in steps:
        ts += step
        due = cov.due(ts)
        assert cov.sample([100.0 + step / 1e9], ts) == due


# ---- the engine: per-name config follows the config and the names ---------------------

ACTIVE = TradingState()


def _signal(symbol: str, ts: int, edge: float, mid: float) -> Signal:
    return Signal(
        symbol=symbol,
        ts_ns=ts,
        model_id="consensus",
        horizon="1m",
        edge_bps=edge,
        confidence=1.0,
        mid=mid,
    )


def test_position_usd_is_the_books_entry() -> None:
    eng = RiskEngine(RiskParams())
    eng.on_tick("BTC-USD", 64_999.0, 65_001.0, 3.0, 3.0, 1.0, T0, ACTIVE)
    eng.on_tick("AAPL", 229.9, 230.1, 100.0, 100.0, 10.0, T0 + 1, ACTIVE)
    eng.on_fill("f1", "o1", "BTC-USD", 0.5, 65_000.0, 1.0)
    eng.portfolio.add_working("o2", "AAPL", -30.0)
    book = eng.positions_usd()
    for i, sym in enumerate(eng.symbols):
        want = eng.portfolio.exposure_qty(sym) * eng.quotes[i].mid
        assert eng.position_usd(i) == book[i] == want


def test_a_new_config_or_a_new_name_is_sized_with_its_own_caps() -> None:
    eng = RiskEngine(RiskParams(pretrade={"symbol_cooldown_ms": 0}))
    eng.on_tick("BTC-USD", 64_999.0, 65_001.0, 3.0, 3.0, 1.0, T0, ACTIVE)
    first = eng.on_signal(_signal("BTC-USD", T0 + 1, 60.0, 65_000.0), ACTIVE)
    assert first is not None and first.action == "order"
    # a 1 % name cap binds at once: the resolved caps follow the config
    eng.configure(
        RiskParams(pretrade={"symbol_cooldown_ms": 0}, limits={"name_cap_pct": {"crypto": 1.0}})
    )
    eng.portfolio.working.clear()
    eng.portfolio.working_qty.clear()
    d = eng.on_signal(_signal("BTC-USD", T0 + 2, 60.0, 65_000.0), ACTIVE)
    assert d is not None and d.target_usd == pytest.approx(10_000.0)
    assert d.reason.endswith("name_cap")
    # a name first seen now gets its own class (stocks: 25 % cap) in the same book
    eng.on_tick("AAPL", 229.9, 230.1, 1e5, 1e5, 1e3, T0 + 3, ACTIVE)
    names = eng.statics()
    assert names.asset_class == ("crypto", "stocks")
    assert names.caps[1].name_cap_pct == eng.p.limits.name_cap_pct.stocks


# ---- the decision message and the durable book ----------------------------------------


def test_decisions_are_validated_like_the_constructor() -> None:
    fields = {
        "trace_ts_ns": T0,
        "symbol": "BTC-USD",
        "ts_ns": T0 + 1,
        "action": "reject",
        "reason": "edge_below_costs",
        "trading_state": "ACTIVE",
        "edge_blended_bps": -0.25,
        "position_size_usd": 0.0,
        "var_pct": 0.0,
        "order_id": "",
        "uncertainty_bps": 3.5,
        "cost_bps": 1.25,
        "portfolio_var_pct": 0.5,
    }
    got = RiskDecision.checked(fields)
    want = RiskDecision(**fields)  # type: ignore[arg-type]
    assert type(got) is RiskDecision and got == want
    assert list(got.to_fields().items()) == list(want.to_fields().items())
    for bad in ({"cost_bps": math.inf}, {"action": "maybe"}, {"ts_ns": 0}):
        with pytest.raises(ValidationError):
            RiskDecision.checked({**fields, **bad})
        with pytest.raises(ValidationError):
            RiskDecision(**{**fields, **bad})  # type: ignore[arg-type]


def test_fill_ids_are_saved_once_and_an_old_snapshot_still_loads() -> None:
    pf = Portfolio(1e6, fill_memory=3)
    for k in range(2):
        assert pf.on_fill(f"f{k}", "o", "X", 1.0, 10.0, 0.0)[0]
    assert pf.take_unsaved_fills() == ["f0", "f1"]
    assert pf.take_unsaved_fills() == []
    assert not pf.on_fill("f1", "o", "X", 1.0, 10.0, 0.0)[0]  # a duplicate saves nothing
    assert pf.take_unsaved_fills() == []
    assert "fills" not in pf.to_dict(fills=False) and pf.to_dict()["fills"] == ["f0", "f1"]
    # a snapshot written with its fill ids (before the list existed): they are known,
    # and saved to the list with the next write
    old = Portfolio(1e6, fill_memory=3)
    old.load({"holdings": {}, "fills": ["a", "b"]}, ["c", "d"])
    assert old.to_dict()["fills"] == ["b", "c", "d"]  # the last fill_memory
    assert not old.on_fill("b", "o", "X", 1.0, 10.0, 0.0)[0]
    assert not old.on_fill("d", "o", "X", 1.0, 10.0, 0.0)[0]
    assert old.take_unsaved_fills() == ["a", "b"]


class _Pipe:
    """What the batch's transaction would do, on a dict."""

    def __init__(self) -> None:
        self.kv: dict[str, object] = {}

    def set(self, key: str, value: bytes) -> None:
        self.kv[key] = value

    def rpush(self, key: str, *values: str) -> None:
        lst = self.kv.setdefault(key, [])
        assert isinstance(lst, list)
        lst.extend(values)

    def ltrim(self, key: str, start: int, end: int) -> None:
        lst = self.kv[key]
        assert isinstance(lst, list) and (start, end) == (-5_000, -1)
        self.kv[key] = lst[start:]


def test_the_state_written_per_batch_reloads_to_the_same_book() -> None:
    from shared.messages import Fill, Tick

    svc = RiskHarmoniser(RiskParams(pretrade={"symbol_cooldown_ms": 0}))
    pipe = _Pipe()
    h = WritesHarness([svc])
    # One batch each (tick, signal, then each fill), as the stack would write them.
    feed_in_order(
        h,
        [
            Tick(symbol="BTC-USD", ts_ns=T0, bid=64_999.0, ask=65_001.0, bid_size=3, ask_size=3),
            _signal("BTC-USD", T0 + 1, 60.0, 65_000.0),
        ],
    )
    [order] = h.out[ORDERS]
    fills = [
        Fill(
            fill_id=f"f{k}",
            order_id=order.order_id,  # type: ignore[attr-defined]
            symbol="BTC-USD",
            ts_ns=T0 + 2 + k,
            side="buy",
            qty=order.qty / 2,  # type: ignore[attr-defined]
            price=65_000.0,
            fee=0.5,
            slippage_bps=0.0,
        )
        for k in range(2)
    ]
    feed_in_order(h, fills)
    h.apply(pipe)
    assert h.held() == {svc.name: 0}  # every fill was handled, none waits
    assert pipe.kv[FILLS_KEY] == ["f0", "f1"]
    doc = orjson.loads(pipe.kv[STATE_KEY])  # type: ignore[arg-type]
    assert "fills" not in doc["portfolio"]
    again = RiskHarmoniser(RiskParams())
    again._load(doc, pipe.kv[FILLS_KEY])  # type: ignore[arg-type]
    assert again._dump() == svc._dump()
    assert again.engine.portfolio.to_dict() == svc.engine.portfolio.to_dict()
    new = again.engine.on_fill("f1", order.order_id, "BTC-USD", 1.0, 65_000.0, 0.0)  # type: ignore[attr-defined]
    assert not new  # still known after the reload
