"""Config loading: every shipped file validates; errors name the key; paths stay in conf/."""

from __future__ import annotations

from pathlib import Path

import pytest

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
