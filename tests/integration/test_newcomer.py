"""The newcomer's path: `make start` in one terminal, then `edgebus status`, `edgebus replay`
and `edgebus redis-cli` in another, with no $REDIS_URL: the CLI finds the stack through
`.run/stack.json`. Here port 6379 (the preferred port, $EDGEBUS_REDIS_PORT) is one this test
holds, so the launcher falls back to a free port and says which."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services import SERVICE_NAMES
from shared import stackfile
from shared.redis_cli import python_redis_cli
from tests.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]

QUOTES_CSV = """ts,symbol,bid,ask,bid_size,ask_size
2024-01-02T00:00:00Z,BTC-USD,100.0,100.2,1,2
2024-01-02T00:00:01Z,BTC-USD,100.1,100.3,1,2
2024-01-02T00:00:02Z,BTC-USD,abc,100.3,1,2
2024-01-02T00:00:03Z,BTC-USD,100.2,100.4,1,2
"""


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port with a listener on it, as the system Redis holds 6379 on many machines."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def without_redis_url(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "EDGEBUS_PORT_OFFSET", "EDGEBUS_HTTP_PORT", "STACK_SECONDS")
    }
    return dict(env, EDGEBUS_HOME=str(ROOT), PYTHONUNBUFFERED="1", **extra)


def edgebus(
    env: dict[str, str], *args: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_the_cli_finds_the_stack_make_start_runs_without_redis_url(
    tmp_path: Path, busy_port: int
) -> None:
    run_dir = tmp_path / "run"
    stack_json = run_dir / "stack.json"
    offset = random.randint(200, 2000) * 10  # clear of other stacks' HTTP ports
    stack_env = without_redis_url(
        EDGEBUS_RUN_DIR=str(run_dir),
        EDGEBUS_REDIS_PORT=str(busy_port),
        EDGEBUS_PORT_OFFSET=str(offset),
        STACK_SECONDS="180",  # a safety net: the finally below stops it first
    )
    cli_env = without_redis_url(EDGEBUS_RUN_DIR=str(run_dir))  # no REDIS_URL, no port offset
    log_path = tmp_path / "stack.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "start"],
        env=stack_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            info = stackfile.read(stack_json)
            return proc.poll() is not None or (info is not None and info.state == "ready")

        wait_until(ready, 120, f"{stack_json} in state ready")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        info = stackfile.read(stack_json)
        assert info is not None and info.launcher_pid == proc.pid
        assert info.redis_port is not None and info.redis_port != busy_port
        assert info.url == f"redis://127.0.0.1:{info.redis_port}/0"
        assert info.http_ports["telemetry"] == 8006 + offset
        banner = log_path.read_text()
        assert f"port {busy_port} is taken" in banner
        assert f"redis-cli -p {info.redis_port} ..." in banner
        assert stack_json.stat().st_mode & 0o077 == 0  # the URL may hold a password

        status = edgebus(cli_env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        for name in SERVICE_NAMES:
            assert f"{name:<16} :{info.http_ports[name]}  ok" in status.stdout, status.stdout

        csv = tmp_path / "quotes.csv"
        csv.write_text(QUOTES_CSV)
        replay = edgebus(cli_env, "replay", str(csv), "--speed", "0", timeout_s=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "replay quotes.csv" in replay.stderr and "4 rows" in replay.stderr, replay.stderr
        assert "line 4" in replay.stderr  # the bad row, by line number

        port = edgebus(cli_env, "redis-cli", "CONFIG", "GET", "port")
        assert port.returncode == 0, port.stderr
        assert port.stdout.split() == ["port", str(info.redis_port)]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    assert code == 0, log_path.read_text()[-3000:]
    assert not stack_json.exists()  # a clean stop removes it


def test_the_preferred_port_is_taken_when_free(tmp_path: Path) -> None:
    """The other branch, on the launcher's own code path: a free preferred port is used."""
    from shared.embedded_redis import EmbeddedRedis, choose_port, free_port

    wanted = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=choose_port(wanted), appendonly=False)
    server.start()
    try:
        assert server.port == wanted and server.ping()
    finally:
        server.stop()


def test_a_stale_stack_file_is_ignored_and_named(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stackfile.write(
        stackfile.StackInfo(
            url="redis://127.0.0.1:1/0",
            launcher_pid=int(dead.stdout),
            launcher_create_time_s=0.0,
            redis_port=1,
        ),
        tmp_path / "stack.json",
    )
    out = edgebus(
        without_redis_url(EDGEBUS_RUN_DIR=str(tmp_path)), "redis-cli", "PING", timeout_s=20
    )
    assert "is no longer running" in out.stderr and str(tmp_path / "stack.json") in out.stderr


def test_the_python_stand_in_for_redis_cli(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert python_redis_cli(redis_url, ["XADD", "s", "1-1", "a", "1", "b", "x y"]) == 0
    assert python_redis_cli(redis_url, ["XRANGE", "s", "-", "+"]) == 0
    assert python_redis_cli(redis_url, ["GET", "missing"]) == 0
    assert python_redis_cli(redis_url, ["INCRBY", "n", "5"]) == 0
    assert python_redis_cli(redis_url, ["NOSUCHCOMMAND"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:6] == ["1-1", "1-1", "a", "1", "b", "x y"]
    assert out[6:8] == ["", "5"]
    assert out[8].startswith("(error)")
    assert redis.Redis.from_url(redis_url).xlen("s") == 1
