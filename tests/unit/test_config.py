"""Config loading: every shipped file validates; errors name the key; paths stay in conf/."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared import config
from shared.config import COMPONENTS, ConfigError, load_file, resolve_conf_path, validate


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_shipped_config_validates(component: str) -> None:
    cfg = load_file(component)
    assert cfg.bus.maxlen >= 100_000


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"risk_harmoniser: max_positon_usd: unknown key"):
        validate("risk_harmoniser", {"max_positon_usd": 1})


def test_out_of_range_value_names_key_and_rule() -> None:
    with pytest.raises(
        ConfigError, match=r"bus.maxlen: Input should be greater than or equal to 1000"
    ):
        validate("execution", {"bus": {"maxlen": 10}})


def test_unknown_component_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown .*risk_harmoniser"):
        validate("risk", {})


@pytest.mark.parametrize("path", ["../pyproject.toml", "conf/../pyproject.toml", "/etc/passwd"])
def test_paths_outside_conf_are_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="outside conf/|not found"):
        resolve_conf_path(path)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("conf/risk_params.yml\x00.txt", "not a valid path|cannot be read"),  # NUL byte
        ("conf", "not a (regular )?file"),
        ("conf/" + "a" * 5000, "cannot be read|not found"),
    ],
)
def test_odd_paths_are_refused_with_a_config_error(path: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        resolve_conf_path(path)


def test_symlink_out_of_conf_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "secret.yml").write_text("a: 1\n")
    (tmp_path / "conf" / "evil.yml").symlink_to(tmp_path / "secret.yml")
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="outside conf/"):
        resolve_conf_path("conf/evil.yml")


# ---- the validated-file cache: an unchanged file is not parsed again, a changed one is --


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conf").mkdir()
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    return tmp_path / "conf"


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = config.parse_yaml

    def parse(text: str, name: str) -> dict[str, Any]:
        calls.append(name)
        return real(text, name)

    monkeypatch.setattr(config, "parse_yaml", parse)
    return calls


def test_an_unchanged_file_is_not_parsed_again(conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parses = _counting_parses(monkeypatch)
    (conf / "risk.yml").write_text(f"equity_usd: {uuid.uuid4().int % 10**9 + 1}\n")
    first = load_file("risk_harmoniser", "conf/risk.yml")
    again = load_file("risk_harmoniser", "conf/risk.yml")
    assert parses == ["risk.yml"]
    assert again is first  # frozen, so one object serves every reader


def test_a_file_changed_at_the_same_size_and_mtime_is_read_again(conf: Path) -> None:
    """What a (path, mtime_ns, size) key would miss: a rewrite within one coarse kernel
    tick that keeps the size."""
    path = conf / "risk.yml"
    path.write_text("equity_usd: 1111\n")
    before = path.stat()
    assert load_file("risk_harmoniser", "conf/risk.yml").equity_usd == 1111  # type: ignore[attr-defined]
    path.write_text("equity_usd: 2222\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert load_file("risk_harmoniser", "conf/risk.yml").equity_usd == 2222  # type: ignore[attr-defined]


def test_a_cached_content_is_still_confined_to_conf(conf: Path) -> None:
    """The cache skips parsing, never the path checks: the same bytes behind a symlink
    out of conf/ are refused."""
    text = f"equity_usd: {uuid.uuid4().int % 10**9 + 1}\n"
    (conf / "risk.yml").write_text(text)
    load_file("risk_harmoniser", "conf/risk.yml")
    (conf.parent / "outside.yml").write_text(text)
    (conf / "risk.yml").unlink()
    (conf / "risk.yml").symlink_to(conf.parent / "outside.yml")
    with pytest.raises(ConfigError, match="outside conf/"):
        load_file("risk_harmoniser", "conf/risk.yml")


def test_a_bad_file_is_refused_every_time_and_accepted_once_fixed(conf: Path) -> None:
    path = conf / "risk.yml"
    path.write_text("equity_usd: lots\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="equity_usd: Input should be a valid number"):
            load_file("risk_harmoniser", "conf/risk.yml")
    path.write_text("equity_usd: 3333\n")
    assert load_file("risk_harmoniser", "conf/risk.yml").equity_usd == 3333  # type: ignore[attr-defined]


def test_the_same_bytes_validate_per_component(conf: Path) -> None:
    """The cache key includes the component: content valid for one schema is not
    taken as valid for another."""
    (conf / "x.yml").write_text("equity_usd: 4444\n")
    assert load_file("risk_harmoniser", "conf/x.yml").equity_usd == 4444  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="equity_usd: unknown key"):
        load_file("execution", "conf/x.yml")


def test_crlf_files_read_as_before(conf: Path) -> None:
    (conf / "risk.yml").write_bytes(b"preset: balanced\r\nequity_usd: 5555\r\n")
    assert load_file("risk_harmoniser", "conf/risk.yml").equity_usd == 5555  # type: ignore[attr-defined]
