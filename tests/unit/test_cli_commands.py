"""The CLI's pass-through commands (`edgebus backtest`, `edgebus redis-cli`) without a stack."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from shared import cli
from shared.redis_cli import cli_command, reply_lines


def test_backtest_passes_its_arguments_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("services.backtest.cli")
    fake.main = lambda argv: seen.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "services.backtest.cli", fake)
    assert cli.main(["backtest", "--synthetic", "--ticks", "10", "--out", "d"]) == 3
    assert seen == [["--synthetic", "--ticks", "10", "--out", "d"]]


def test_a_missing_passthrough_module_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.PASSTHROUGH, "backtest", ("services.no_such_package.cli", "x"))
    assert cli.main(["backtest", "f.csv"]) == 2
    err = capsys.readouterr().err
    assert "edgebus backtest: not available" in err and "services.no_such_package.cli" in err


def test_a_broken_import_inside_the_module_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fake_backtest_pkg").mkdir()
    (tmp_path / "fake_backtest_pkg" / "__init__.py").write_text("")
    (tmp_path / "fake_backtest_pkg" / "cli.py").write_text("import no_such_library_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.PASSTHROUGH, "backtest", ("fake_backtest_pkg.cli", "x"))
    with pytest.raises(ModuleNotFoundError, match="no_such_library_xyz"):
        cli.main(["backtest"])  # the module is there: what it lacks is a bug, shown as such


def test_redis_cli_argv_keeps_the_password_off_the_command_line() -> None:
    argv, env = cli_command("redis-cli", "redis://app:test-s%40cret@10.0.0.5:6380/3", ["PING"])
    assert argv == ["redis-cli", "-h", "10.0.0.5", "-p", "6380", "-n", "3", "--user", "app", "PING"]
    assert env["REDISCLI_AUTH"] == "test-s@cret"  # percent-decoded; a test placeholder
    argv, env = cli_command("redis-cli", "rediss://127.0.0.1:6379/0", ["XLEN", "fills"])
    assert argv == ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "--tls", "XLEN", "fills"]


def test_replies_print_as_redis_cli_prints_to_a_pipe() -> None:
    reply = [[b"1-1", [b"a", b"1"]], None, 5, b"\xff", {b"k": b"v"}]
    assert list(reply_lines(reply)) == ["1-1", "a", "1", "", "5", "\\xff", "k", "v"]
