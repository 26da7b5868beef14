"""Parity: the stack fed by `edgebus replay --speed 0` makes the same orders and fills as
`edgebus backtest` of the same file with the same configs, entry by entry.

The stack is real processes (`edgebus start` with EDGEBUS_SOURCE=replay, on a real
Redis), the backtest the same handlers in one process (services/backtest/runner.py).
Nothing is "close enough": every field of every entry is compared as the stream
carries it, except ``v`` and the wall-clock ``trace_ts_ns``.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from services import SERVICE_NAMES
from services.backtest import runner
from services.feature_bus.config import FeatureBusConfig
from shared.messages import FILLS, ORDERS, Fill, Message, Order
from tests.e2e.conftest import port
from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def write_quotes_csv(path: Path, n: int, seed: int = 7) -> None:
    """A recorded synthetic quotes file: the seeded market's quotes, as a replay reads."""
    cfg = runner.load_configs()["feature_bus"]
    assert isinstance(cfg, FeatureBusConfig)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "symbol", "bid", "ask", "bid_size", "ask_size"])
        for q in runner.synthetic_quotes(cfg, n, seed):
            w.writerow(
                [q.ts_ns, q.symbol, repr(q.bid), repr(q.ask), repr(q.bid_size), repr(q.ask_size)]
            )


def backtest(path: Path, preset: str | None = None) -> runner.Result:
    configs = runner.load_configs(ROOT / "conf" / "presets" / preset if preset else None)
    bad: list[tuple[int, str]] = []
    quotes = runner.read_file(
        path, configs["feature_bus"], lambda line, why: bad.append((line, why))
    )  # type: ignore[arg-type]
    assert not bad, bad
    return runner.Backtest(configs).run(quotes)


def as_rows(msgs: list[Message]) -> list[dict[str, Any]]:
    return [runner.entry_fields(m) for m in msgs]


def stream_rows(r: redis.Redis, stream: str, cls: type[Message]) -> list[dict[str, Any]]:
    out = []
    for _, fields in r.xrange(stream):
        msg = cls.from_fields({k.decode(): v.decode() for k, v in fields.items()})
        out.append(runner.entry_fields(msg))
    return out


def first_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            diff = {k: (x.get(k), y.get(k)) for k in set(x) | set(y) if x.get(k) != y.get(k)}
            return f"entry {i}: {diff}"
    return f"lengths {len(a)} != {len(b)}"


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    return dict(stack_env, EDGEBUS_SOURCE="replay")  # the replay is the only source


def _all_healthy(env: dict[str, str]) -> bool:
    for name in SERVICE_NAMES:
        try:
            resp = requests.get(f"http://127.0.0.1:{port(env, name)}/health", timeout=1)
        except requests.RequestException:
            return False
        if resp.status_code != 200:
            return False
    return True


@pytest.mark.parametrize("data", ["synthetic_quotes", "daily_bars"])
def test_replay_through_the_stack_equals_the_backtest(
    data: str, stack_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{data}.csv"
    preset = None
    if data == "synthetic_quotes":
        write_quotes_csv(path, 20_000)
    else:  # S&P 500 and NASDAQ daily bars shipped by the arch package, 1999-2018
        pytest.importorskip("arch")
        from tests.data_sets import daily_bars_csv

        daily_bars_csv(path)
        preset = "daily"
        stack_env = dict(stack_env, EDGEBUS_PRESET=preset)
    expected = backtest(path, preset)
    assert expected.orders and expected.fills, "the file must trade for the test to mean anything"
    if preset:
        assert {o.symbol for o in expected.orders} == {"SPX", "NDX"}

    r = redis.Redis.from_url(redis_url)
    log = open(tmp_path / "stack.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "start"],
        env=stack_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _all_healthy(stack_env), 90, "every service healthy")
        out = subprocess.run(
            [sys.executable, "-m", "shared.cli", "replay", str(path), "--speed", "0"],
            env=stack_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        wait_until(
            lambda: r.xlen(FILLS) >= len(expected.fills) and r.xlen(ORDERS) >= len(expected.orders),
            120,
            f"{len(expected.orders)} orders and {len(expected.fills)} fills",
        )
        orders = stream_rows(r, ORDERS, Order)
        fills = stream_rows(r, FILLS, Fill)
        forced = [
            line
            for line in (tmp_path / "stack.log").read_text().splitlines()
            if "silent for" in line
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        r.close()
    want_orders, want_fills = as_rows(expected.orders), as_rows(expected.fills)
    assert orders == want_orders, first_difference(orders, want_orders) + f"; forced: {forced}"
    assert fills == want_fills, first_difference(fills, want_fills) + f"; forced: {forced}"
