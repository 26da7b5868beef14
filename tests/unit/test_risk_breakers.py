"""Breakers and exits by their behaviour: what orders do at each seed 001 level
(issue 17). Pure: the engine, event time, no Redis."""

from __future__ import annotations

import pytest

from services.risk_harmoniser import breakers as brk
from services.risk_harmoniser.breakers import DAY_NS
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.engine import Decision, RiskEngine
from shared.control import ControlCommand, TradingState, state_after
from shared.messages import Signal

pytestmark = pytest.mark.risk

S = 10**9
T0 = 19_003 * DAY_NS + 3600 * S  # a Monday (1970-01-05 + 19,003 days), 01:00 UTC
ACTIVE = TradingState()
# VaR out of the way unless a test is about it
NO_VAR = {"limits": {"var_limit_pct": 50.0}, "breakers": {"halt_var_pct": 60.0}}


def _engine(**over: object) -> RiskEngine:
    params: dict[str, object] = {k: dict(v) for k, v in NO_VAR.items()}
    for k, v in over.items():
        params[k] = {**params.get(k, {}), **v} if isinstance(v, dict) else v  # type: ignore[dict-item]
    eng = RiskEngine(RiskParams(**params))  # type: ignore[arg-type]
    eng.on_tick("BTC-USD", 64_999.0, 65_001.0, 300.0, 300.0, 10_000.0, T0, ACTIVE)
    return eng


def _tick(eng: RiskEngine, mid: float, ts: int, state: TradingState = ACTIVE, quality: str = ""):
    return eng.on_tick("BTC-USD", mid - 1, mid + 1, 300.0, 300.0, 10_000.0, ts, state, quality)


def _sig(edge: float, ts: int, horizon: str = "1m") -> Signal:
    return Signal(
        symbol="BTC-USD",
        ts_ns=ts,
        model_id="consensus",
        horizon=horizon,
        edge_bps=edge,
        confidence=1.0,
        mid=65_000.0,
    )


def _take(eng: RiskEngine) -> list[Decision]:
    out, eng.pending = eng.pending, []
    return out


def _orders(ds: list[Decision]) -> list[tuple[str, str]]:
    return [(d.reason, d.side) for d in ds if d.action == "order"]


def _apply(state: TradingState, cmd: ControlCommand | None) -> TradingState:
    return state if cmd is None else state_after(cmd)


# ---- exits ----------------------------------------------------------------------------


def _opened(eng: RiskEngine, ts: int = T0 + 1, horizon: str = "1m") -> None:
    d = eng.on_signal(_sig(150.0, ts, horizon), ACTIVE)
    assert d is not None and d.action == "order" and d.side == "buy"
    eng.on_fill("f-open", d.order_id, "BTC-USD", d.qty, 65_000.0, 0.0, ts + 1)


def test_stop_loss_take_profit_and_time_stop_exit_through_the_order_path() -> None:
    # stop 200 bps: 65,000 -> 63,600 is -215 bps
    eng = _engine()
    _opened(eng)
    _tick(eng, 64_000.0, T0 + 2 * S)  # -154 bps: no exit
    assert _orders(_take(eng)) == []
    _tick(eng, 63_600.0, T0 + 3 * S)
    ds = _take(eng)
    assert _orders(ds) == [("exit:stop_loss", "sell")]
    assert ds[0].reduce_only and ds[0].target_usd == 0.0
    # the exit is working: no second exit on the next tick
    _tick(eng, 63_500.0, T0 + 4 * S)
    assert _orders(_take(eng)) == []
    # take-profit 400 bps: 65,000 -> 67,700 is +415 bps
    eng = _engine()
    _opened(eng)
    _tick(eng, 67_700.0, T0 + 2 * S)
    assert _orders(_take(eng)) == [("exit:take_profit", "sell")]
    # time stop: 4 horizons of 1m = 240 s after the opening fill (at T0 + 2 ns)
    eng = _engine()
    _opened(eng)
    _tick(eng, 65_000.0, T0 + 2 + 239 * S)
    assert _orders(_take(eng)) == []
    _tick(eng, 65_000.0, T0 + 2 + 240 * S)
    assert _orders(_take(eng)) == [("exit:time", "sell")]


def test_a_per_horizon_time_stop_and_exits_off() -> None:
    eng = _engine(exits={"max_hold_s": {"1m": 30.0}})
    _opened(eng)
    _tick(eng, 65_000.0, T0 + 2 + 30 * S)
    assert _orders(_take(eng)) == [("exit:time", "sell")]
    eng = _engine(exits={"enabled": False})
    _opened(eng)
    _tick(eng, 50_000.0, T0 + 2 + 3600 * S)
    assert _orders(_take(eng)) == []


def test_round_trips_count_once_and_break_even_is_no_loss() -> None:
    eng = _engine()
    # one losing round trip closed by three partial fills: one loss, not three
    eng.on_fill("a", "o1", "BTC-USD", 3.0, 65_000.0, 0.0, T0 + 1)
    for k in range(3):
        eng.on_fill(f"c{k}", "o2", "BTC-USD", -1.0, 64_900.0, 0.0, T0 + 2 + k)
    assert eng.streak.count == 1 and eng.kelly.losses == 1
    # a break-even round trip (after fees) changes neither the streak nor Kelly
    eng.on_fill("b", "o3", "BTC-USD", 1.0, 65_000.0, 0.0, T0 + 10)
    eng.on_fill("d", "o4", "BTC-USD", -1.0, 65_000.0, 0.0, T0 + 11)
    assert eng.streak.count == 1 and eng.kelly.losses + eng.kelly.wins == 1
    # fees make a small gross win a loss
    eng.on_fill("e", "o5", "BTC-USD", 1.0, 65_000.0, 5.0, T0 + 12)
    eng.on_fill("g", "o6", "BTC-USD", -1.0, 65_001.0, 5.0, T0 + 13)
    assert eng.streak.count == 2


# ---- the five levels ------------------------------------------------------------------


def test_warning_loss_streak_halves_sizes_and_is_an_event() -> None:
    sizes = []
    for losses in (0, 3):
        eng = _engine()
        for k in range(losses):
            eng.on_fill(f"o{k}", f"o{k}", "BTC-USD", 1.0, 65_000.0, 0.0, T0 + 1)
            eng.on_fill(f"c{k}", f"c{k}", "BTC-USD", -1.0, 64_900.0, 0.0, T0 + 2)
        cmd = _tick(eng, 65_000.0, T0 + 3)
        assert cmd is None  # WARNING changes no state
        events = [d.reason for d in _take(eng) if d.action == "breaker"]
        assert events == (["breaker:loss_streak 3 round trips -> WARNING"] if losses else [])
        d = eng.on_signal(_sig(150.0, T0 + 4), ACTIVE)
        assert d is not None and d.action == "order"
        sizes.append(d.target_usd)
    assert sizes[1] == pytest.approx(sizes[0] / 2, rel=1e-3)


def test_reduce_risk_steps_the_book_down_and_lifts_when_the_drawdown_recovers() -> None:
    # the daily and weekly stops and the stop-loss out of the way: the drawdown alone
    eng = _engine(
        breakers={"daily_drawdown_pct": 50.0, "weekly_loss_pct": 50.0},
        exits={"stop_loss_bps": {"crypto": 1000.0, "stocks": 1000.0}},
    )
    eng.on_fill("f", "ext", "BTC-USD", 20.0, 65_000.0, 0.0, T0)  # 1.3M long
    # -8 %: 104k = 10.4 % from the 1M peak
    cmd = _tick(eng, 59_800.0, T0 + S)
    assert cmd is not None and cmd.action == "reduce" and "drawdown" in cmd.reason
    state = _apply(ACTIVE, cmd)
    ds = _take(eng)
    assert _orders(ds) == [("exit:drawdown_step_down", "sell")]
    step = next(d for d in ds if d.action == "order")
    assert step.qty == pytest.approx(10.0)  # half of 20 kept (drawdown_keep_pct 50)
    # a new position is refused while REDUCING
    d = eng.on_signal(_sig(60.0, T0 + 2 * S), state)
    assert d is not None and d.action == "reject"
    eng.on_fill("s", step.order_id, "BTC-USD", -10.0, 59_800.0, 0.0, T0 + 3 * S)
    # the market recovers: 10 x (62,900 - 65,000) - 10 x 5,200 = -73k -> 7.3 %, still in;
    # 10 x (64,300 - 65,000) - 52k = -59k: 5.9 %; 64,600: -56k (5.6 %); at 65,600: -46k (4.6 %)
    assert _tick(eng, 64_300.0, T0 + 4 * S, state) is None
    cmd = _tick(eng, 65_600.0, T0 + 5 * S, state)
    assert cmd is not None and cmd.action == "resume"


def test_data_latency_halts_new_positions_on_a_timer_and_lifts_on_data() -> None:
    eng = _engine()
    assert eng.next_timer_ns() == T0 + 5 * S
    cmd = eng.on_timer(T0 + 5 * S, ACTIVE)
    assert cmd is not None and cmd.action == "reduce" and "data_latency" in cmd.reason
    state = _apply(ACTIVE, cmd)
    d = eng.on_signal(_sig(60.0, T0 + 5 * S), state)
    assert d is not None and d.action == "reject"  # no new position
    cmd = _tick(eng, 65_000.0, T0 + 6 * S, state)
    assert cmd is not None and cmd.action == "resume"


def test_consecutive_failures_halt_all_trading_until_a_person_resumes() -> None:
    eng = _engine()
    eng.on_failure(4)
    assert eng.check_breakers(ACTIVE) is None
    eng.on_failure(1)
    cmd = eng.check_breakers(ACTIVE)
    assert cmd is not None and cmd.action == "halt" and "failures" in cmd.reason
    state = _apply(ACTIVE, cmd)
    d = eng.on_signal(_sig(60.0, T0 + 1), state)
    assert d is not None and d.action == "halt"
    # good data does not lift it; a manual resume does
    assert _tick(eng, 65_000.0, T0 + 2, state) is None
    eng.on_manual_resume()
    assert "failures" not in eng.board.trips


def test_var_halts_all_trading_and_far_beyond_closes_every_position() -> None:
    eng = _engine(limits={"var_limit_pct": 2.0}, breakers={"halt_var_pct": 2.5})
    # 400k at the 5 %/day prior: VaR 3.29 % > 2.5: HALT_ALL_TRADING, no exits
    eng.on_fill("f1", "ext", "BTC-USD", 400_000 / 65_000, 65_000.0, 0.0, T0)
    cmd = _tick(eng, 65_000.0, T0 + 1)
    assert cmd is not None and cmd.action == "halt" and "portfolio_var" in cmd.reason
    assert _orders(_take(eng)) == []
    # 800k: 6.6 % > 2 x 2.5: EMERGENCY_CLOSE: state REDUCING and the book closed
    eng = _engine(limits={"var_limit_pct": 2.0}, breakers={"halt_var_pct": 2.5})
    eng.on_fill("f1", "ext", "BTC-USD", 800_000 / 65_000, 65_000.0, 0.0, T0)
    cmd = _tick(eng, 65_000.0, T0 + 1)
    assert cmd is not None and cmd.action == "reduce" and "emergency" in cmd.reason
    assert _orders(_take(eng)) == [("exit:emergency_close", "sell")]


def test_an_operators_halt_is_never_lifted_by_a_breaker() -> None:
    eng = _engine()
    manual = TradingState("HALTED", "manual", 1)
    eng.on_timer(T0 + 5 * S, manual)
    cmd = _tick(eng, 65_000.0, T0 + 6 * S, manual)
    assert cmd is None


def test_weekly_loss_lasts_until_monday() -> None:
    eng = _engine(breakers={"daily_drawdown_pct": 50.0}, exits={"enabled": False})
    eng.on_fill("f", "ext", "BTC-USD", 5.0, 65_000.0, 0.0, T0)
    # lose 2 % a day for four days (no daily stop at 50 %): 8 % on the week by Thursday
    price, state = 65_000.0, ACTIVE
    for day in range(1, 5):
        price -= 0.02 * 1_000_000 / 5.0 / 1.0
        state = _apply(state, _tick(eng, price, T0 + day * DAY_NS, state))
    assert state.state == "REDUCING" and "weekly_loss" in state.reason
    monday = brk.next_week_ns(T0)
    assert eng.board.trips["weekly_loss"].until_ns == monday
    state = _apply(state, _tick(eng, price, monday + 1, state))
    assert state.state == "ACTIVE"


# ---- the bugs of issue 17 -------------------------------------------------------------


def test_a_reject_reports_the_books_var() -> None:
    eng = _engine()
    eng.on_fill("f1", "ext", "BTC-USD", 1.0, 65_000.0, 0.0, T0)
    d = eng.on_signal(_sig(1.0, T0 + 1), ACTIVE)  # below costs
    assert d is not None and d.action == "reject"
    assert d.portfolio_var_pct == pytest.approx(eng.portfolio_var_pct()) and d.portfolio_var_pct > 0


def test_reloading_a_lower_equity_rebases_the_breakers() -> None:
    eng = _engine()
    assert eng.check_breakers(ACTIVE) is None
    eng.configure(RiskParams.model_validate({**eng.p.model_dump(), "equity_usd": 900_000.0}))
    assert eng.check_breakers(ACTIVE) is None
    assert not {"daily_loss", "weekly_loss", "drawdown"} & set(eng.board.trips)
    assert eng.board.day_start_equity_usd == pytest.approx(900_000.0)


def test_a_flagged_quote_opens_nothing_but_reductions_pass() -> None:
    for flag in ("stale", "jump", "gap", "locked"):
        eng = _engine()
        _tick(eng, 65_000.0, T0 + 1, quality=flag)
        d = eng.on_signal(_sig(150.0, T0 + 2), ACTIVE)
        assert d is not None and d.action == "reject" and d.reason.startswith("data_quality:")
    eng = _engine()
    _opened(eng)
    _tick(eng, 65_000.0, T0 + 5 * S, quality="jump")
    d = eng.on_signal(_sig(-150.0, T0 + 6 * S), ACTIVE)  # against the long: a reduction
    assert d is not None and d.action == "order" and d.side == "sell"


def test_open_risk_sums_the_real_stops_against_the_daily_loss_stop() -> None:
    from services.risk_harmoniser.limits import Book, Caps, limit_intervals

    # budget 3,000 USD; the other name holds 50k with a 4 % stop (2,000 at risk): name 0,
    # with a 2 % stop, may hold (3,000 - 2,000) / 0.02 = 50k either way
    cov = ((0.0004, 0.0), (0.0, 0.0009))
    book = Book((0.0, 50_000.0), ("crypto", "crypto"), ("a", "b"), cov, 1e6, 3_000.0, (0.02, 0.04))
    caps = Caps(100.0, 10.0, 100.0, 1000.0, 100.0, 100.0, 1.645, 1e9)
    lo, hi = {r: (a, b) for r, a, b in limit_intervals(0, book, caps, False)}["open_risk"]
    assert (lo, hi) == (pytest.approx(-50_000.0), pytest.approx(50_000.0))
    # exits off: the 1-day 95 % move stands in (z sigma = 1.645 * 0.02, 1.645 * 0.03)
    book.stop_frac = ()
    lo, hi = {r: (a, b) for r, a, b in limit_intervals(0, book, caps, False)}["open_risk"]
    assert hi == pytest.approx((3_000 - 1.645 * 0.03 * 50_000) / (1.645 * 0.02))


def test_trips_and_their_references_survive_a_restart() -> None:
    import orjson

    from services.risk_harmoniser.service import RiskHarmoniser

    svc = RiskHarmoniser(RiskParams(**NO_VAR))  # type: ignore[arg-type]
    eng = svc.engine
    _tick(eng, 65_000.0, T0)
    _opened(eng)
    eng.on_timer(T0 + 5 * S, ACTIVE)  # data latency
    eng.on_failure(2)
    doc = orjson.loads(orjson.dumps(svc._dump()))
    again = RiskHarmoniser(RiskParams(**NO_VAR))  # type: ignore[arg-type]
    again._load(doc, [])
    e2 = again.engine
    assert e2.board.trips == eng.board.trips and "data_latency" in e2.board.trips
    assert (e2.board.failures, e2.board.newest_tick_ns, e2.board.peak_equity_usd) == (
        eng.board.failures,
        eng.board.newest_tick_ns,
        eng.board.peak_equity_usd,
    )
    assert (
        e2.opened == eng.opened
        and e2.board.week_start_equity_usd == eng.board.week_start_equity_usd
    )


def test_the_panic_regime_closes_everything_when_enabled() -> None:
    for enabled in (False, True):
        eng = _engine(breakers={"emergency_on_panic": enabled})
        _opened(eng)
        panic = _sig(0.0, T0 + 2 * S).model_copy(update={"regime": "PANIC"})
        eng.on_signal(panic, ACTIVE)
        assert (eng.command is not None) is enabled
        if enabled:
            assert eng.command is not None and eng.command.action == "reduce"
            state = state_after(eng.command)
            _tick(eng, 65_000.0, T0 + 3 * S, state)
            assert ("exit:emergency_close", "sell") in _orders(_take(eng))
