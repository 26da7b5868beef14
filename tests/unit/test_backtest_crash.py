"""Risk that exits, over a real crash (issue 17's acceptance): the S&P 500 and NASDAQ
daily bars of 2001-2002 (the dot-com bust, and the four sessions the exchanges were
shut after 11 September 2001), backtested on the daily preset."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from services.backtest import runner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.risk


def test_a_crash_exits_by_stops_and_time_and_steps_through_reducing_and_back(
    tmp_path: Path,
) -> None:
    pytest.importorskip("arch")
    from tests.data_sets import COLUMNS, daily_bars

    path = tmp_path / "bars.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for row in daily_bars():
            if "2001-01-01" <= row[0] <= "2002-12-31":
                w.writerow([row[0], row[1], *(repr(x) for x in row[2:])])
    configs = runner.load_configs(ROOT / "conf" / "presets" / "daily")
    quotes = runner.read_file(path, configs["feature_bus"], lambda n, why: None)  # type: ignore[arg-type]
    res = runner.Backtest(configs).run(quotes)

    orders = Counter(d.reason for d in res.decisions if d.action == "order")
    assert orders["exit:stop_loss"] >= 1 and orders["exit:time"] >= 1, orders
    # every exit order filled (the paper broker fills reduce-only market orders)
    filled = {f.order_id for f in res.fills}
    exits = [d for d in res.decisions if d.action == "order" and d.reason.startswith("exit:")]
    assert all(d.order_id in filled for d in exits)

    # 2001-09-10 -> 2001-09-17: 7 days without data: no new positions, then back
    breakers = [(d.reason, d.trading_state) for d in res.decisions if d.action == "breaker"]
    tripped = [k for k, (why, st) in enumerate(breakers) if why.startswith("breaker:data_latency")]
    assert tripped, breakers
    k = tripped[0]
    assert breakers[k][1] == "REDUCING"
    assert breakers[k + 1] == ("breaker_lifted:data_latency (HALT_NEW_POSITIONS)", "ACTIVE")
    # in between, nothing opened
    t0, t1 = (
        [d.ts_ns for d in res.decisions if d.action == "breaker"][k],
        [d.ts_ns for d in res.decisions if d.action == "breaker"][k + 1],
    )
    assert not [o for o in res.orders if t0 <= o.ts_ns < t1 and not o.reduce_only]

    # no order ever leads to a book VaR above its limit (reductions only lower it)
    limit = configs["risk_harmoniser"].limits.var_limit_pct  # type: ignore[attr-defined]
    over = [
        d
        for d in res.decisions
        if d.action == "order"
        and d.portfolio_var_pct > limit + 1e-9
        and not d.reason.startswith("exit")
    ]
    assert not over
