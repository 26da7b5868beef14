"""`edgebus backtest`: deterministic, batch-independent, bad rows by line, no lookahead."""

from __future__ import annotations

import bisect
import csv
from pathlib import Path
from typing import Any

import pytest

from services.backtest import cli, lookahead, runner
from services.model_router.service import ModelRouter
from shared.messages import Features

TICKS = 6_000


@pytest.fixture(scope="module")
def configs() -> dict[str, Any]:
    return runner.load_configs()


@pytest.fixture(scope="module")
def quotes(configs: dict[str, Any]) -> list[Any]:
    return runner.synthetic_quotes(configs["feature_bus"], TICKS, 7)


def rows(res: runner.Result) -> tuple[list[Any], ...]:
    return tuple(
        [{k: v for k, v in m.to_fields().items() if k != "trace_ts_ns"} for m in msgs]
        for msgs in (res.orders, res.fills, res.decisions)
    )


def test_two_runs_write_byte_identical_files(tmp_path: Path) -> None:
    for out in ("a", "b"):
        code = cli.main(
            ["--synthetic", "--ticks", str(TICKS), "--seed", "7", "--out", str(tmp_path / out)]
        )
        assert code == 0
    for name in ("orders.csv", "fills.csv", "decisions.csv", "equity.csv", "report.json"):
        a, b = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
        if name == "report.json":  # the run section has the wall time; the rest is fixed
            import orjson

            da, db = orjson.loads(a), orjson.loads(b)
            da.pop("run"), db.pop("run")
            assert da == db
        else:
            assert a == b, name
    assert (tmp_path / "a" / "report.html").stat().st_size > 1000
    with (tmp_path / "a" / "decisions.csv").open() as fh:
        assert sum(1 for _ in csv.reader(fh)) > 10


def test_the_batch_size_changes_nothing(configs: dict[str, Any], quotes: list[Any]) -> None:
    a = runner.Backtest(configs).run(quotes, chunk_rows=500)
    b = runner.Backtest(configs).run(quotes, chunk_rows=37)
    c = runner.Backtest(configs).run(quotes, chunk_rows=1)
    assert a.decisions, "the run must decide something for this to mean anything"
    assert rows(a) == rows(b) == rows(c)


def test_bad_rows_are_reported_by_line_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bars.csv"
    lines = ["ts,symbol,open,high,low,close,volume"]
    for day in range(1, 29):
        px = 100 + day
        lines.append(f"2024-02-{day:02d},SPX,{px},{px + 2},{px - 2},{px + 1},1000")
    lines.insert(5, "2024-02-31,SPX,1,2,0.5,1,10")  # no such day: line 6 (header is 1)
    lines.insert(9, "2024-03-01,SPX,abc,2,1,1,10")  # not a number: line 10
    data.write_text("\n".join(lines) + "\n")
    assert cli.main([str(data), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "line 6" in err and "line 10" in err
    assert "bad rows skipped 2" in " ".join(err.split())


def test_lookahead_check_passes_on_the_shipped_models(
    configs: dict[str, Any], quotes: list[Any]
) -> None:
    assert lookahead.find_changes(quotes, configs) == []


def test_lookahead_check_catches_a_model_that_peeks_ahead(
    configs: dict[str, Any], quotes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaky model: it reads each symbol's mid 40 quotes later from the data the run
    was given (shared state, as a careless feature would) and decides on it."""
    seen: dict[str, list[tuple[int, float]]] = {}
    original_run = runner.Backtest.run

    def run(self: runner.Backtest, qs: Any, **kw: Any) -> runner.Result:
        seen.clear()
        for q in qs:
            seen.setdefault(q.symbol, []).append((q.ts_ns, (q.bid + q.ask) / 2))
        return original_run(self, qs, **kw)

    original_on_message = ModelRouter.on_message

    def on_message(self: ModelRouter, entry: Any, out: Any) -> None:
        f = entry.message
        assert isinstance(f, Features)
        path = seen.get(f.symbol, [])
        i = bisect.bisect_left(path, (f.ts_ns, -1.0))
        future = path[i + 40][1] if i + 40 < len(path) else f.mid
        entry.message = f.model_copy(update={"mid": future})
        original_on_message(self, entry, out)

    monkeypatch.setattr(runner.Backtest, "run", run)
    monkeypatch.setattr(ModelRouter, "on_message", on_message)
    problems = lookahead.find_changes(quotes, configs)
    assert problems, "a model that reads the future must fail the check"
    assert "changed" in problems[0]
