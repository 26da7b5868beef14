"""`.run/stack.json` and the embedded Redis's port choice: how the CLI finds the stack."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shared import stackfile
from shared.embedded_redis import choose_port, free_port, port_is_free, preferred_port


def info(
    pid: int, create_time_s: float, url: str = "redis://127.0.0.1:7001/0"
) -> stackfile.StackInfo:
    return stackfile.StackInfo(
        url=url,
        launcher_pid=pid,
        launcher_create_time_s=create_time_s,
        redis_port=7001,
        http_ports={"telemetry": 8006},
    )


def dead_pid() -> int:
    out = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(out.stdout)


@pytest.fixture(autouse=True)
def _no_redis_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("EDGEBUS_RUN_DIR", str(tmp_path))


def test_round_trip_owner_only_and_atomic(tmp_path: Path) -> None:
    mine = stackfile.StackInfo.for_this_process("redis://:pw@127.0.0.1:7001/0", 7001, {"a": 1})
    path = stackfile.write(mine)
    assert path == tmp_path / "stack.json"
    assert stackfile.read() == mine
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]  # no temporary left


def test_redis_url_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    stackfile.write(stackfile.StackInfo.for_this_process("redis://127.0.0.1:7001/0", 7001, {}))
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6380/2")
    found = stackfile.resolve()
    assert (found.url, found.source, found.stack, found.note) == (
        "redis://elsewhere:6380/2",
        "REDIS_URL",
        None,
        None,
    )


def test_a_live_stack_is_found() -> None:
    mine = stackfile.StackInfo.for_this_process("redis://127.0.0.1:7001/0", 7001, {})
    stackfile.write(mine)
    found = stackfile.resolve()
    assert (found.url, found.source, found.stack) == (mine.url, "stack file", mine)


def test_a_dead_launcher_or_a_recycled_pid_is_stale() -> None:
    import psutil

    for stale in (info(dead_pid(), 0.0), info(psutil.Process().pid, 12.0)):  # pid reused
        stackfile.write(stale)
        found = stackfile.resolve()
        assert found.url == stackfile.DEFAULT_REDIS_URL and found.stack is None
        assert found.note and f"pid {stale.launcher_pid}" in found.note


def test_no_file_is_the_default_without_a_note_and_garbage_is_named(tmp_path: Path) -> None:
    assert stackfile.resolve() == stackfile.Resolved(stackfile.DEFAULT_REDIS_URL, "default")
    (tmp_path / "stack.json").write_text("{not json")
    found = stackfile.resolve()
    assert found.stack is None and found.note and "unreadable" in found.note


def test_remove_leaves_another_stacks_file(tmp_path: Path) -> None:
    stackfile.write(info(4242, 1.0))
    stackfile.remove(owner_pid=4343)
    assert stackfile.read() is not None
    stackfile.remove(owner_pid=4242)
    assert not (tmp_path / "stack.json").exists()
    stackfile.remove(owner_pid=4242)  # already gone: fine


def test_run_dir_defaults_to_dot_run_under_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("EDGEBUS_RUN_DIR")
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    assert stackfile.stack_path() == tmp_path.resolve() / ".run" / "stack.json"


def test_the_preferred_port_when_free_else_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEBUS_REDIS_PORT", raising=False)
    assert preferred_port() == 6379
    monkeypatch.setenv("EDGEBUS_REDIS_PORT", "7777")
    assert preferred_port() == 7777
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        assert not port_is_free(busy)
        other = choose_port(busy)
        assert other != busy and port_is_free(other)
    free = free_port()
    assert choose_port(free) == free
