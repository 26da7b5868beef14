"""The real stack as processes: `edgebus start` and `edgebus run SERVICE`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import requests

from services import SERVICE_NAMES, service_class
from shared.config import load_file
from tests.e2e.conftest import port
from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ("md.ticks", "features", "signals", "orders", "fills")


def all_pending(r: redis.Redis) -> dict[str, int]:
    out = {}
    for key in r.scan_iter(_type="stream"):
        for g in r.xinfo_groups(key):
            out[f"{key.decode()}/{g['name'].decode()}"] = int(g["pending"])
    return out


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_make_start_runs_six_processes_end_to_end_and_stops_clean(
    stack_env: dict[str, str], sync_redis: redis.Redis, tmp_path: Path
) -> None:
    log = open(tmp_path / "stack.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "start"],
        env=stack_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: sync_redis.xlen("fills") > 0, 150, "fills")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len([c for c in children if "shared.cli" in " ".join(c.cmdline())]) == 6
        for name in SERVICE_NAMES:
            resp = requests.get(f"http://127.0.0.1:{port(stack_env, name)}/health", timeout=2)
            assert resp.status_code == 200, (name, resp.text)
            assert resp.json()["service"] == name
        # garbage on an input stream ends in the dlq with a reason; trading goes on
        bad = sync_redis.xadd("orders", {"order_id": "x", "side": "sideways"})
        fills_before = sync_redis.xlen("fills")
        wait_until(lambda: sync_redis.xlen("dlq") > 0, 20, "dlq entry")
        wait_until(lambda: sync_redis.xlen("fills") > fills_before, 30, "fills after garbage")
        wait_until(lambda: "fills" in (tmp_path / "stack.log").read_text(), 10, "a summary line")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "stack.log").read_text()[-3000:]
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child
    for stream in STREAMS:
        assert sync_redis.xlen(stream) > 0, stream
    dead = sync_redis.xrange("dlq")
    # every consumer of `orders` reports the bad entry once, and nothing else is there
    assert {(f[b"source_stream"], f[b"entry_id"]) for _, f in dead} == {(b"orders", bad)}
    assert sorted(f[b"service"] for _, f in dead) == [b"execution", b"telemetry"]
    assert all(b"side" in f[b"reason"] for _, f in dead)
    pending = all_pending(sync_redis)
    assert pending, pending
    # A clean stop acknowledges everything handled. What stays pending is only what a
    # service merging in event time still held, waiting for an upstream's watermark at
    # the edge of event time (it is re-read at the restart): a handful, on merged inputs.
    merged = {(s, svc) for svc in SERVICE_NAMES for s in service_class(svc).upstreams}
    stray = {k: n for k, n in pending.items() if n and tuple(k.split("/")) not in merged}
    assert not stray, stray
    assert sum(pending.values()) <= 50, pending


def test_stack_seconds_stops_by_itself_with_exit_0(stack_env: dict[str, str]) -> None:
    env = dict(stack_env, STACK_SECONDS="4")
    out = subprocess.run(
        [sys.executable, "-m", "shared.cli", "start"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "STACK_SECONDS=4 reached" in out.stdout
    assert "[stack] stopped" in out.stdout


def test_a_dying_child_stops_the_stack_with_a_reason(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "stack.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "start"],
            env=stack_env,
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        victim = wait_until(lambda: _child(proc.pid, "execution"), 30, "execution child")
        children = psutil.Process(proc.pid).children(recursive=True)
        victim.kill()
        code = proc.wait(timeout=30)
    assert code != 0
    assert "execution exited with code -9" in log.read_text()
    psutil.wait_procs(children, timeout=5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _child(pid: int, name: str) -> psutil.Process | None:
    for c in psutil.Process(pid).children(recursive=True):
        if c.cmdline()[-1:] == [name]:
            return c
    return None


def _run(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    fh = open(logs / f"{name}.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", name],
        env=env,
        cwd=ROOT,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )


def test_kill_9_and_restart_loses_nothing_and_doubles_nothing(
    stack_env: dict[str, str], sync_redis: redis.Redis, tmp_path: Path
) -> None:
    procs = {name: _run(name, stack_env, tmp_path) for name in SERVICE_NAMES}
    try:
        wait_until(lambda: sync_redis.xlen("fills") > 0, 150, "fills")
        for victim in ("model_router", "execution"):
            procs[victim].kill()  # kill -9 while ticks flow
            procs[victim].wait()
            time.sleep(0.5)  # let work pile up for the dead service
            procs[victim] = _run(victim, stack_env, tmp_path)
            seen = sync_redis.xlen("fills")
            wait_until(lambda s=seen: sync_redis.xlen("fills") > s, 150, f"{victim} back")
        procs["feature_bus"].send_signal(signal.SIGTERM)
        assert procs["feature_bus"].wait(timeout=10) == 0
        wait_until(lambda: not any(all_pending(sync_redis).values()), 30, "pending drained")
        wait_until(lambda: _lags_zero(sync_redis), 30, "lag drained")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(timeout=15) for n, p in procs.items()}
    assert all(c == 0 for n, c in codes.items() if n != "feature_bus"), codes
    features = [(f[b"symbol"], f[b"ts_ns"]) for _, f in sync_redis.xrange("features")]
    signal_keys = [
        (f[b"symbol"], f[b"ts_ns"], f[b"model_id"], f[b"horizon"])
        for _, f in sync_redis.xrange("signals")
    ]
    dup = [k for k, n in Counter(signal_keys).items() if n > 1]
    assert not dup, f"{len(dup)} features entries turned into two outputs"
    # The router decides at most once per symbol per decide_interval_ms of event time
    # (conflation in event time): every signal is of a features entry, and an entry not
    # decided on came within the interval of its symbol's last decision (none was
    # skipped, restarts included). That every entry was handled is the drained pending
    # and lag above.
    signalled = {(s, t) for s, t, _, _ in signal_keys}
    assert signalled <= set(features), "a signal of no features entry"
    rules = load_file("model_router")
    interval_ns = int(rules.decide_interval_ms * 1e6)  # type: ignore[attr-defined]
    routed = {s for s, _ in signalled}
    last: dict[bytes, int] = {}
    for sym, ts in features:
        if sym not in routed:
            continue
        if (sym, ts) in signalled:
            last[sym] = int(ts)
        else:
            assert sym in last and int(ts) - last[sym] < interval_ns, (
                f"features {sym!r}@{ts!r} not decided on, {int(ts) - last.get(sym, 0)} ns "
                "after the last decision"
            )
    fills = [f[b"fill_id"] for _, f in sync_redis.xrange("fills")]
    assert len(fills) == len(set(fills)), "a fill was written twice"
    orders = {f[b"order_id"] for _, f in sync_redis.xrange("orders")}
    rejected = {f[b"order_id"] for _, f in sync_redis.xrange("rejections")}
    filled = {f[b"order_id"] for _, f in sync_redis.xrange("fills")}
    assert orders <= filled | rejected, "an order was neither filled nor rejected"


def _lags_zero(r: redis.Redis) -> bool:
    for key in r.scan_iter(_type="stream"):
        for g in r.xinfo_groups(key):
            if g.get("lag") not in (0, None):
                return False
    return True
