"""telemetry's daily metrics (services/telemetry/daily.py): per UTC day of event time,
the pure functions of services/validation/daily_metrics.py on that day's inputs; a day
closes on event time only; memory stays bounded. And the gauges, through the harness."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import REGISTRY

from services.telemetry.daily import (
    DAY_NS,
    DRAWDOWN_THRESHOLD_PCT,
    WARNING_LEAD_NS,
    DailyMetricsBook,
)
from services.telemetry.service import Telemetry
from services.validation.daily_metrics import (
    consensus_diversity,
    drawdown_starts,
    early_warning,
    slippage_error,
)
from shared.messages import Fill, Message, Position, RiskDecision, Signal
from shared.testing import Harness

pytestmark = pytest.mark.monitoring

DAY0 = 20_000  # 2024-10-04
T0 = DAY0 * DAY_NS
H = 3_600 * 10**9


def decision(ts_ns: int, order_id: str, cost_bps: float) -> RiskDecision:
    return RiskDecision(
        symbol="D-X",
        ts_ns=ts_ns,
        action="order",
        reason="signal",
        trading_state="ACTIVE",
        order_id=order_id,
        cost_bps=cost_bps,
    )


def trip(ts_ns: int, reason: str = "breaker:daily_loss 2.1% -> HALT_NEW_POSITIONS") -> RiskDecision:
    return RiskDecision(
        symbol="portfolio", ts_ns=ts_ns, action="breaker", reason=reason, trading_state="REDUCING"
    )


def fill(ts_ns: int, order_id: str, slippage_bps: float, fee_bps: float | None) -> Fill:
    return Fill(
        fill_id=f"f-{order_id}",
        order_id=order_id,
        symbol="D-X",
        ts_ns=ts_ns,
        side="buy",
        qty=1.0,
        price=100.0,
        fee=0.01,
        slippage_bps=slippage_bps,
        fee_bps=fee_bps,
    )


def consensus(ts_ns: int, votes: dict[str, dict[str, float]], **kw: object) -> Signal:
    return Signal(
        symbol="D-X",
        ts_ns=ts_ns,
        model_id=str(kw.get("model_id", "consensus")),
        horizon="1m",
        edge_bps=1.0,
        confidence=0.5,
        shadow=bool(kw.get("shadow", False)),
        votes=votes,
    )


def position(ts_ns: int, equity_usd: float) -> Position:
    return Position(
        symbol="D-X",
        ts_ns=ts_ns,
        qty=0.0,
        avg_price=0.0,
        mark=100.0,
        position_usd=0.0,
        realized_pnl_usd=0.0,
        unrealized_pnl_usd=0.0,
        fees_usd=0.0,
        equity_usd=equity_usd,
    )


# Two days: day 0 with a drawdown (100 -> 94 at 06:00) warned of at 05:00 and one false
# trip; day 1 with the same episode still open (no new drawdown), then a recovery and a
# second 5 % fall at 20:00 nobody warned of.
EQUITY = [
    (T0 + 1 * H, 100.0),
    (T0 + 3 * H, 98.0),
    (T0 + 6 * H, 94.0),
    (T0 + 12 * H, 93.0),
    (T0 + DAY_NS + 2 * H, 92.0),  # still the day-0 episode: not a new start
    (T0 + DAY_NS + 10 * H, 101.0),  # a new peak
    (T0 + DAY_NS + 20 * H, 95.0),  # 5.94 % below it: a start
]
TRIPS = [trip(T0 + 5 * H), trip(T0 + 18 * H + 1), trip(T0 + 9 * H, "breaker_lifted:daily_loss (x)")]
DECISIONS = [decision(T0 + H, "o1", 2.0), decision(T0 + 2 * H, "o2", 3.0)]
DECISIONS += [decision(T0 + DAY_NS + H, "o3", 1.0), decision(T0 + DAY_NS - 1, "o4", 4.0)]
FILLS = [
    fill(T0 + H + 1, "o1", 1.5, 1.0),  # realised 2.5 vs 2.0
    fill(T0 + 2 * H + 1, "o2", 0.5, 1.0),  # 1.5 vs 3.0
    fill(T0 + 3 * H, "unknown", 9.0, 1.0),  # no decision: left out
    fill(T0 + 4 * H, "o1", 9.0, None),  # no fee_bps: left out
    fill(T0 + DAY_NS + 1, "o4", 4.0, 1.0),  # day 1, its decision of day 0: 5.0 vs 4.0
    fill(T0 + DAY_NS + H + 1, "o3", 0.0, 1.0),  # 1.0 vs 1.0
]
VOTES_0 = [
    {"a": {"edge_bps": 10.0, "weight": 0.6}, "b": {"edge_bps": -4.0, "weight": 0.3}},
    {"a": {"edge_bps": 5.0, "weight": 0.5}, "b": {"edge_bps": 3.0}, "c": {"weight": 0.2}},
    {"a": {"edge_bps": 0.0, "weight": 1.0}},  # no direction: left out
]
VOTES_1 = [{"a": {"edge_bps": -1.0, "weight": 0.2}, "b": {"edge_bps": 2.0, "weight": 0.2}}]
SIGNALS = [consensus(T0 + (i + 1) * H, v) for i, v in enumerate(VOTES_0)]
SIGNALS += [consensus(T0 + DAY_NS + 3 * H, v) for v in VOTES_1]
SIGNALS += [  # not consensus decisions
    consensus(T0 + 2 * H, {"a": {"edge_bps": 1.0}, "b": {"edge_bps": -1.0}}, shadow=True),
    consensus(T0 + 2 * H, {"a": {"edge_bps": 1.0}, "b": {"edge_bps": -1.0}}, model_id="ema"),
]


def directional(decisions: list[dict[str, dict[str, float]]]) -> list[dict[str, dict[str, float]]]:
    """The votes with an edge (``consensus_diversity`` reads edge_bps), as report_job's."""
    return [{m: v for m, v in d.items() if "edge_bps" in v} for d in decisions]


# An input as fed: (its ts_ns, the message or an equity mark (ts_ns, equity_usd)).
Item = tuple[int, Fill | RiskDecision | Signal | tuple[int, float]]


def feed(book: DailyMetricsBook, items: list[Item]) -> None:
    for _, item in items:
        if isinstance(item, Fill):
            book.add_fill(item)
        elif isinstance(item, RiskDecision):
            book.add_decision(item)
        elif isinstance(item, Signal):
            book.add_signal(item)
        else:
            book.add_equity(*item)


def all_inputs() -> list[Item]:
    items: list[Item] = [(f.ts_ns, f) for f in FILLS]
    items += [(d.ts_ns, d) for d in (*TRIPS, *DECISIONS)]
    items += [(s.ts_ns, s) for s in SIGNALS] + [(t, (t, e)) for t, e in EQUITY]
    return items


def run_two_days(items: list[Item]) -> list[dict[str, float | int]]:
    book = DailyMetricsBook()
    closed = []
    for day in (DAY0, DAY0 + 1):
        feed(book, [x for x in items if x[0] // DAY_NS == day])
        closed += [book.close_day(d) for d in book.days_due()]
    feed(book, [(T0 + 2 * DAY_NS, (T0 + 2 * DAY_NS, 101.0))])  # day 2: day 1 is due
    closed += [book.close_day(d) for d in book.days_due()]
    return closed


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_two_days_equal_the_pure_functions_on_the_same_inputs() -> None:
    day0, day1 = run_two_days(sorted(all_inputs(), key=lambda x: x[0]))
    assert (day0["day_start_ns"], day1["day_start_ns"]) == (T0, T0 + DAY_NS)

    s0, s1 = slippage_error([2.0, 3.0], [2.5, 1.5]), slippage_error([4.0, 1.0], [5.0, 1.0])
    for got, want in ((day0, s0), (day1, s1)):
        assert got["slippage_n"] == want.n == 2
        assert same(got["slippage_bias_bps"], want.bias_bps)
        assert same(got["slippage_mae_bps"], want.mae_bps)
        assert same(got["slippage_rmse_bps"], want.rmse_bps)
        assert same(got["slippage_predicted_mean_bps"], want.predicted_mean_bps)
    assert day0["slippage_bias_bps"] == pytest.approx(-0.5)  # (0.5 - 1.5) / 2

    d0, d1 = consensus_diversity(directional(VOTES_0)), consensus_diversity(directional(VOTES_1))
    assert (day0["consensus_diversity"], day0["consensus_diversity_n"]) == pytest.approx(d0)
    assert (day1["consensus_diversity"], day1["consensus_diversity_n"]) == pytest.approx(d1)
    assert d0[1] == 2 and d1 == (1.0, 1)

    # drawdowns: the whole curve's starts, each in its day (the peak carried over)
    starts = drawdown_starts(EQUITY, DRAWDOWN_THRESHOLD_PCT)
    assert starts == [T0 + 6 * H, T0 + DAY_NS + 20 * H]
    w0 = early_warning([T0 + 5 * H, T0 + 18 * H + 1], [starts[0]], WARNING_LEAD_NS)
    w1 = early_warning([], [starts[1]], WARNING_LEAD_NS)
    assert (day0["early_warning_precision"], day0["early_warning_recall"]) == (0.5, 1.0)
    assert (w0.precision, w0.recall) == (0.5, 1.0)
    assert (day0["early_warning_n"], day0["early_warning_drawdowns_n"]) == (2, 1)
    assert math.isnan(day1["early_warning_precision"]) and math.isnan(w1.precision)
    assert day1["early_warning_recall"] == w1.recall == 0.0
    assert day1["early_warning_drawdowns_n"] == 1  # the open day-0 episode is not counted again


def test_order_within_a_day_does_not_change_the_result() -> None:
    ordered = run_two_days(sorted(all_inputs(), key=lambda x: x[0]))
    rng = random.Random(7)
    for _ in range(5):
        items = all_inputs()
        rng.shuffle(items)
        shuffled = run_two_days(items)
        for a, b in zip(ordered, shuffled, strict=True):
            assert a.keys() == b.keys()
            assert all(same(float(a[k]), float(b[k])) for k in a), (a, b)


def test_a_day_closes_on_event_time_only() -> None:
    book = DailyMetricsBook(grace_ns=300 * 10**9)
    book.add_fill(fill(T0 + H, "o1", 1.0, 1.0))
    book.add_fill(fill(T0 + DAY_NS - 1, "o1", 1.0, 1.0))
    assert book.days_due() == []  # however long the wall clock waits
    book.add_fill(fill(T0 + DAY_NS + 299 * 10**9, "o1", 1.0, 1.0))
    assert book.days_due() == []  # inside the grace
    book.add_fill(fill(T0 + DAY_NS + 300 * 10**9, "o1", 1.0, 1.0))
    assert book.days_due() == [DAY0]
    book.close_day(DAY0)
    book.add_fill(fill(T0 + 2 * H, "o1", 1.0, 1.0))  # of a closed day: late
    assert book.late == 1 and DAY0 not in book.days


def test_memory_is_bounded_oldest_dropped_and_counted() -> None:
    cap = 50
    book = DailyMetricsBook(cap=cap)
    for i in range(3 * cap):
        ts = T0 + i * 10**9
        book.add_decision(decision(ts, f"o{i}", float(i)))
        book.add_fill(fill(ts + 1, f"o{i}", float(i), 1.0))
        book.add_signal(consensus(ts, {"a": {"edge_bps": 1.0}, "b": {"edge_bps": -1.0}}))
        book.add_equity(ts, 100.0 - i * 0.01)
        book.add_decision(trip(ts))
    day = book.days[DAY0]
    assert len(book.cost_of_order) == cap
    assert all(len(q) == cap for q in (day.fills, day.warnings, day.equity, day.consensus))
    assert book.dropped == {
        "fills": 2 * cap,
        "warnings": 2 * cap,
        "equity": 2 * cap,
        "consensus": 2 * cap,
    }
    # the newest kept: the last cap fills, each paired with its own decision
    got = book.close_day(DAY0)
    assert got["slippage_n"] == cap
    assert got["slippage_bias_bps"] == pytest.approx(1.0)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_service_sets_the_gauges_when_a_day_closes() -> None:
    svc = Telemetry()
    h = Harness([svc])
    msgs: list[Message] = [*DECISIONS[:2], *FILLS[:2], *TRIPS, *SIGNALS[:3]]
    msgs += [position(t, e) for t, e in EQUITY[:4]]
    for m in msgs:
        h.feed(m.STREAM, [m])
    h.run()
    assert svc.daily_last == {}  # nothing of day 1 yet: day 0 still open
    late = position(T0 + DAY_NS + 10 * 60 * 10**9, 93.0)  # 10 min into day 1
    h.feed(late.STREAM, [late])
    h.run()
    assert svc.daily_last["day_start_ns"] == T0
    assert value("daily_slippage_error_bps", stat="bias") == pytest.approx(-0.5)
    assert value("daily_early_warning_ratio", stat="precision") == 0.5
    assert value("daily_early_warning_ratio", stat="recall") == 1.0
    assert value("daily_consensus_diversity_ratio") == pytest.approx(
        consensus_diversity(directional(VOTES_0))[0]
    )
    assert value("daily_metric_inputs", input="fills") == 2
    assert value("daily_metrics_day_start_seconds") == T0 / 1e9
    assert svc.health_details()["daily_metrics"]["early_warning_n"] == 2
