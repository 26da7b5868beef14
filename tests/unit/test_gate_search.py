"""Gate calibration by grid search (services/calibration/gate_search.py, gates_cli.py):
round trips from fills by hand, the grid and its overrides, the choice, and the CLI on a
tiny run (6,000 ticks, 1 seed, a 2-point grid: a few seconds)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from services.backtest import runner
from services.calibration import gate_search as gs
from services.calibration import gates_cli
from shared.config import ConfigError
from shared.messages import Fill


def fill(ts: int, side: str, qty: float, price: float, fee: float = 0.0) -> Fill:
    return Fill(
        fill_id=f"f{ts}",
        order_id=f"o{ts}",
        symbol="BTC-USD",
        ts_ns=ts,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        price=price,
        fee=fee,
        slippage_bps=0.0,
    )


def test_round_trips_by_hand() -> None:
    fills = [
        fill(1, "buy", 1.0, 100.0, fee=0.1),  # open long 1
        fill(2, "buy", 1.0, 102.0, fee=0.1),  # long 2
        fill(3, "sell", 2.0, 103.0, fee=0.2),  # flat: -100 - 102 + 206 - 0.4 = 3.6
        fill(4, "sell", 1.0, 100.0, fee=0.1),  # open short 1
        # crosses zero: 1 of 3 closes the short (pnl 100 - 101 - 0.1 - 0.3 / 3 = -1.2),
        # 2 open a long at 101 with fee 0.2
        fill(5, "buy", 3.0, 101.0, fee=0.3),
        fill(6, "sell", 2.0, 99.0, fee=0.2),  # flat: -202 - 0.2 + 198 - 0.2 = -4.4
        fill(7, "buy", 1.0, 99.0),  # still open at the end
    ]
    trips, still_open = gs.round_trips(fills)
    assert [(t.open_ts_ns, t.close_ts_ns) for t in trips] == [(1, 3), (4, 5), (5, 6)]
    assert [t.pnl_usd for t in trips] == pytest.approx([3.6, -1.2, -4.4])
    assert [t.win for t in trips] == [True, False, False]
    assert still_open == 1


def test_grid_parsing_and_points() -> None:
    grid = gs.parse_grid(["costs.safety_margin_bps=0,2.5", "conformal_gate.enabled=true,false"])
    assert grid == {"costs.safety_margin_bps": [0, 2.5], "conformal_gate.enabled": [True, False]}
    points = gs.grid_points(grid)
    assert len(points) == 4
    assert points[1] == {"costs.safety_margin_bps": 0, "conformal_gate.enabled": False}
    for bad in (["costs.safety_margin_bps"], ["=1,2"], ["a=1", "a=2"]):
        with pytest.raises(ValueError, match="--grid"):
            gs.parse_grid(bad)


def test_overrides_are_validated() -> None:
    cfg = runner.load_configs()["risk_harmoniser"]
    new = gs.with_overrides(cfg, {"costs.safety_margin_bps": 8, "confidence_levels.medium": 0})
    assert new.costs.safety_margin_bps == 8.0  # type: ignore[attr-defined]
    assert new.confidence_levels.medium == 0.0  # type: ignore[attr-defined]
    assert gs.current_values(new, ["costs.safety_margin_bps"]) == {"costs.safety_margin_bps": 8.0}
    with pytest.raises(ConfigError, match="unknown key"):
        gs.with_overrides(cfg, {"costs.no_such_key": 1})
    with pytest.raises(ConfigError, match="a value, not a section"):
        gs.with_overrides(cfg, {"costs": 1})
    with pytest.raises(ConfigError, match="safety_margin_bps"):
        gs.with_overrides(cfg, {"costs.safety_margin_bps": -1})


def _point(win_rate: float | None, n: int, pnl: float) -> dict[str, Any]:
    return {"train": {"win_rate": win_rate, "round_trips": n, "net_pnl_usd": pnl}}


def test_choice_needs_min_trades_and_breaks_ties_by_pnl() -> None:
    points = [_point(1.0, 1, 5.0), _point(0.6, 10, 1.0), _point(0.6, 10, 2.0), _point(None, 0, 0)]
    assert gs.choose(points, min_trades=5) == (2, True)
    assert gs.choose(points, min_trades=50) == (0, False)
    assert gs.choose([_point(None, 0, 0.0)], min_trades=1) == (None, False)


def test_cli_tiny_run(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    argv = ["--ticks", "6000", "--seeds", "1", "--grid", "costs.safety_margin_bps=0,8"]
    assert gates_cli.main(argv) == 0
    assert time.perf_counter() - t0 < 20.0
    doc = orjson.loads(capsys.readouterr().out)
    assert set(doc) >= {"split", "score", "grid", "baseline", "points", "chosen", "train_frac"}
    assert doc["seeds"] == [1] and doc["ticks"] == {"1": 6000}
    assert doc["baseline"] == {"costs.safety_margin_bps": 3.0}
    assert [p["params"] for p in doc["points"]] == [
        {"costs.safety_margin_bps": 0},
        {"costs.safety_margin_bps": 8},
    ]
    for p in doc["points"]:
        for part in ("train", "test"):
            assert set(p[part]) == {"round_trips", "wins", "win_rate", "net_pnl_usd"}
    # a wider cost buffer opens fewer trades
    loose, strict = doc["points"]
    assert loose["train"]["round_trips"] > strict["train"]["round_trips"]
    chosen = doc["chosen"]
    assert chosen["params"] == doc["points"][chosen["index"]]["params"]
    assert chosen["test"]["win_rate"] is not None  # out-of-sample reported


def test_cli_rejects_bad_keys_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert gates_cli.main(["--ticks", "10", "--grid", "costs.nope=1"]) == 1
    assert "unknown key" in capsys.readouterr().err
    assert gates_cli.main(["--ticks", "10", "--grid", "limits.var_limit_pct=500"]) == 1
    with pytest.raises(SystemExit) as exc:
        gates_cli.main(["--train-frac", "1.5"])
    assert exc.value.code == 2


def test_through_edgebus_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from shared import cli

    assert "calibrate-gates" in cli.PASSTHROUGH
    assert cli.main(["calibrate-gates", "--ticks", "10", "--grid", "costs.nope=1"]) == 1
    assert "unknown key" in capsys.readouterr().err
