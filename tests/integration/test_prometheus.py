"""A real Prometheus scrapes the running stack (six `edgebus run` processes, 1 s
scrape and rule evaluation), and every PromQL expression of every dashboard panel and
alert rule returns data.

Expressions whose panel description starts with "Event-only:" need an event first (a
switch, a shadow signal, a consensus vote, a reducing fill, a firing alert): they are
checked after the test injects those events. Alert rules are checked on the series
they compare; two of them (ModelSwitchingStorm, DLQGrowing) are made to fire.
Skipped when the `prometheus` binary is absent (Debian: apt-get install -y prometheus).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from services import SERVICE_NAMES
from shared.embedded_redis import free_port
from shared.http import DEFAULT_PORTS
from shared.messages import Fill, Rejection, RiskDecision, RouterSwitch, Signal
from shared.procs import die_with_parent
from tests.dashboards import RULES, Expr, dashboard_exprs, rule_base, rules, substitute
from tests.support import wait_until

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.monitoring,
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="no prometheus binary: apt-get install -y prometheus (Debian package)",
    ),
]
ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """The six services as processes, plus a Prometheus scraping them."""

    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        # Below the ephemeral range (32768+), where an outgoing connection may hold a port.
        self.offset = random.randint(2100, 2400) * 10
        self.procs: list[subprocess.Popen[bytes]] = []
        self.prom_port = free_port()
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)

    def start(self) -> None:
        env = dict(
            os.environ,
            REDIS_URL=self.redis_url,
            EDGEBUS_PORT_OFFSET=str(self.offset),
            EDGEBUS_HOME=str(ROOT),
            EDGEBUS_LOG_LEVEL="WARNING",
        )
        for name in SERVICE_NAMES:
            self._spawn([sys.executable, "-m", "shared.cli", "run", name], env, name)
        targets = ", ".join(f"'127.0.0.1:{p + self.offset}'" for p in DEFAULT_PORTS.values())
        config = self.tmp / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}']\n"
            "scrape_configs:\n"
            f"  - job_name: edgebus\n    static_configs: [{{targets: [{targets}]}}]\n"
        )
        self._spawn(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--log.level=warn",
            ],
            dict(os.environ),
            "prometheus",
        )

    def _spawn(self, argv: list[str], env: dict[str, str], name: str) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs.append(
            subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        )

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.r.close()

    def query(self, promql: str) -> dict[str, Any]:
        resp = requests.get(
            f"http://127.0.0.1:{self.prom_port}/api/v1/query", params={"query": promql}, timeout=5
        )
        body: dict[str, Any] = resp.json()
        return body

    def result(self, promql: str) -> list[Any]:
        body = self.query(promql)
        assert body["status"] == "success", (promql, body)
        return list(body["data"]["result"])

    def symbols(self) -> list[str]:
        return sorted(
            {s["metric"]["symbol"] for s in self.result('edge_blended_bps{symbol!="portfolio"}')}
        )


@pytest.fixture(scope="module")
def stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis.Redis.from_url(redis_server).flushdb()
    s = Stack(redis_server, tmp_path_factory.mktemp("prom"))
    try:
        s.start()
        wait_until(lambda: s.r.xlen("fills") > 0, 150, "the stack's first fill")
        wait_until(lambda: _ready(s), 30, "prometheus ready")
        wait_until(lambda: len(s.result("up == 1")) == 6, 60, "six targets scraped and up")
        wait_until(s.symbols, 30, "a first scrape of the trading gauges")
        yield s
    finally:
        s.stop()


def _ready(s: Stack) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{s.prom_port}/-/ready", timeout=1).ok
    except requests.RequestException:
        return False


def missing(s: Stack, exprs: list[Expr]) -> list[str]:
    """The expressions that return nothing, or an error (with the error)."""
    symbols = s.symbols()
    out = []
    for e in exprs:
        body = s.query(substitute(e.promql, symbols))
        if body["status"] != "success":
            out.append(f"{e.where}: {e.promql}: {body.get('error')}")
        elif not body["data"]["result"]:
            out.append(f"{e.where}: {e.promql}")
    return out


# Rules on events a running stack need not have had (a switching storm, a breaker trip):
# checked after their events, below.
EVENT_ONLY_RULES = {"ModelSwitchingStorm", "BreakerTripped"}


def test_every_live_expression_returns_data(stack: Stack) -> None:
    live = [e for e in dashboard_exprs() if not e.event_only]
    live += [
        Expr(f"rule {r['alert']}", rule_base(r["expr"]), False)
        for r in rules()
        if r["alert"] not in EVENT_ONLY_RULES
    ]
    assert len(live) > 30
    left: list[str] = []

    def all_have_data() -> bool:
        left[:] = missing(stack, live)
        return not left

    try:
        wait_until(all_have_data, 30, "data for every live expression")
    except AssertionError:
        pytest.fail("no data for:\n" + "\n".join(left))
    assert len(stack.symbols()) >= 3
    up = stack.result('up{job="edgebus"}')
    assert len(up) == 6 and all(x["value"][1] == "1" for x in up)


def test_event_only_expressions_have_data_after_their_events(stack: Stack) -> None:
    r, now = stack.r, time.time_ns()
    sym = stack.symbols()[0]
    for i in range(25):  # a switching storm on one symbol (> 20 per 5 min fires)
        sw = RouterSwitch(
            symbol=sym, ts_ns=now + i, from_model="a", to_model="b" if i % 2 else "a", reason="test"
        )
        r.xadd(sw.STREAM, sw.to_fields())
    votes = {"ema": {"edge_bps": 0.0, "confidence": 0.5, "weight": 0.6}, "ob": {"weight": 0.4}}
    for shadow in (False, True):  # zero edge: risk holds, nothing trades on it
        sig = Signal(
            symbol=sym,
            ts_ns=now,
            model_id="consensus",
            horizon="1m",
            edge_bps=0.0,
            confidence=0.5,
            shadow=shadow,
            consensus_score=0.5,
            votes=votes,
            regime="RANGE",
        )
        r.xadd(sig.STREAM, sig.to_fields())
    # a round trip on a symbol nobody trades: a reducing fill gives attribution data
    for i, (side, price) in enumerate((("buy", 100.0), ("sell", 101.0))):
        f = Fill(
            trace_ts_ns=now,
            fill_id=f"promtest-{i}",
            order_id=f"promtest-{i}",
            symbol="PROMTEST",
            ts_ns=now,
            side=side,
            qty=1.0,
            price=price,
            fee=0.01,
            slippage_bps=0.5,  # type: ignore[arg-type]
        )
        r.xadd(f.STREAM, f.to_fields())
    rej = Rejection(order_id="promtest-x", symbol="PROMTEST", ts_ns=now, reason="stale_quote")
    r.xadd(rej.STREAM, rej.to_fields())
    r.xadd("orders", {"order_id": "promtest-bad", "side": "sideways"})  # -> dlq -> DLQGrowing
    trip = RiskDecision(  # a breaker's trip, as risk writes it -> BreakerTripped
        symbol="portfolio",
        ts_ns=now,
        action="breaker",
        reason="breaker:data_latency 5.0s -> HALT_NEW_POSITIONS",
        trading_state="REDUCING",
    )
    r.xadd(trip.STREAM, trip.to_fields())
    exprs = dashboard_exprs() + [
        Expr(f"rule {x['alert']}", rule_base(x["expr"]), True) for x in rules()
    ]
    left: list[str] = []

    def all_have_data() -> bool:
        left[:] = missing(stack, exprs)
        return not left

    try:
        wait_until(all_have_data, 30, "data for every expression")
    except AssertionError:
        pytest.fail("no data for:\n" + "\n".join(left))

    def firing() -> set[str]:
        return {a["metric"]["alertname"] for a in stack.result('ALERTS{alertstate="firing"}')}

    wait_until(lambda: {"ModelSwitchingStorm", "DLQGrowing"} <= firing(), 15, "both alerts firing")
    for rule in rules():  # the full rule expressions evaluate, firing or not
        stack.result(rule["expr"])


def test_dashboard_lag_from_event_to_query_result(stack: Stack) -> None:
    """Issue 8: an event shows in a Prometheus query within 2 s (1 s scrape)."""
    lags_s = []
    for i in range(5):
        symbol = f"LAG{i}-{random.randint(0, 10**6)}"
        sw = RouterSwitch(
            symbol=symbol, ts_ns=time.time_ns(), from_model="a", to_model="b", reason="lag"
        )
        t0 = time.monotonic()
        stack.r.xadd(sw.STREAM, sw.to_fields())
        wait_until(
            lambda s=symbol: stack.result(f'router_switches_total{{symbol="{s}"}}'),
            10,
            "the switch",
        )
        lags_s.append(time.monotonic() - t0)
    print(
        f"\ndashboard lag event->query: {[round(x, 3) for x in lags_s]} s, "
        f"median {statistics.median(lags_s):.3f} s, max {max(lags_s):.3f} s"
    )
    assert statistics.median(lags_s) <= 2.0, lags_s
