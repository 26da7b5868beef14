"""Every way a ``param.reload`` can be refused, each with the reason a person acts on."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from services.parameter_server.reload import parse_request, read_request
from shared.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD_RISK = (ROOT / "conf" / "risk_params.yml").read_text()

# name -> (message, reason expected in the rejection)
REJECTIONS: dict[str, tuple[str, str]] = {
    "not JSON": ('{"component": "risk_harmoniser"', "message is not JSON"),
    "JSON but not an object": ('["risk_harmoniser"]', "must be a JSON object"),
    "unknown key in the message": (
        '{"component": "risk_harmoniser", "config_pth": "conf/risk_params.yml"}',
        "message: unknown key(s) config_pth",
    ),
    "unknown component": (
        '{"component": "risk", "config_path": "conf/risk_params.yml"}',
        "component 'risk': unknown (known: execution, feature_bus",
    ),
    "component missing": (
        '{"config_path": "conf/risk_params.yml"}',
        "component: missing (one of: execution",
    ),
    "config_path not a string": (
        '{"component": "risk_harmoniser", "config_path": 7}',
        "config_path: must be a string, got int",
    ),
    "dotdot out of conf": ("conf/../pyproject.toml", "outside conf/"),
    "dotdot to a missing file": ("../../nowhere.yml", "outside conf/"),
    "absolute path": ("/etc/passwd", "outside conf/"),
    "symlink pointing out": ("conf/evil.yml", "outside conf/ (a symlink to "),
    "missing file": ("conf/nope.yml", "file not found under conf/"),
    "a directory": ("conf/subdir", "not a regular file"),
    "a huge file": ("conf/huge.yml", "huge.yml: larger than 1000000 bytes"),
    "bad YAML": ("conf/bad.yml", "bad.yml: bad YAML at line 2, column 17"),
    "YAML not a mapping": ("conf/list.yml", "top level must be a mapping, got list"),
    "duplicate key": (
        "conf/dup.yml",
        "dup.yml: bad YAML at line 3, column 1: duplicate key 'max_position_usd'",
    ),
    "unknown key": ("conf/typo.yml", "risk_harmoniser: max_positon_usd: unknown key"),
    "out of range": (
        "conf/range.yml",
        "var_limit_pct: Input should be less than or equal to 100 (got 250)",
    ),
    "wrong type": ("conf/type.yml", "equity_usd: Input should be a valid number"),
    "another component's file": ("conf/execution.yml", "venue: unknown key"),
}


def write_bad_files(conf: Path, outside: Path) -> None:
    """The bad files the rejection cases name, next to a copy of the real conf/."""
    outside.write_text(GOOD_RISK)
    (conf / "evil.yml").symlink_to(outside)
    (conf / "subdir").mkdir()
    (conf / "huge.yml").write_text("# padding\n" * 100_001)
    (conf / "bad.yml").write_text("equity_usd: [1, 2\nmax_position_usd: 3\n")
    (conf / "list.yml").write_text("- 1\n- 2\n")
    (conf / "dup.yml").write_text(
        "max_position_usd: 50000\nmin_edge_bps: 3\nmax_position_usd: 9e9\n"
    )
    (conf / "typo.yml").write_text(GOOD_RISK + "max_positon_usd: 1\n")
    (conf / "range.yml").write_text(GOOD_RISK.replace("var_limit_pct: 2.0", "var_limit_pct: 250"))
    (conf / "type.yml").write_text(GOOD_RISK.replace("equity_usd: 1000000", "equity_usd: lots"))


def request_for(case: str) -> str:
    message, _ = REJECTIONS[case]
    if message.startswith(("{", "[")):
        return message
    return orjson.dumps({"component": "risk_harmoniser", "config_path": message}).decode()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    write_bad_files(tmp_path / "conf", tmp_path / "secret.yml")
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_every_rejection_kind_names_the_problem(home: Path, case: str) -> None:
    _, reason = REJECTIONS[case]
    with pytest.raises(ConfigError) as err:
        read_request(parse_request(request_for(case)))
    assert reason in str(err.value)
    assert "\n" not in str(err.value)  # one line, fit for a pub/sub note and a log


def test_a_good_request_reads_the_named_file(home: Path) -> None:
    (home / "conf" / "tight.yml").write_text(
        GOOD_RISK.replace("equity_usd: 1000000", "equity_usd: 10")
    )
    req = parse_request('{"component": "risk_harmoniser", "config_path": "conf/tight.yml"}')
    assert read_request(req).equity_usd == 10  # type: ignore[attr-defined]
    # the three accepted spellings of a path inside conf/
    for path in ("tight.yml", str(home / "conf" / "tight.yml"), "conf/./tight.yml"):
        req = parse_request(orjson.dumps({"component": "risk_harmoniser", "config_path": path}))
        assert read_request(req).equity_usd == 10  # type: ignore[attr-defined]


def test_config_path_defaults_to_the_component_file(home: Path) -> None:
    req = parse_request('{"component": "model_router"}')
    assert req.config_path == "conf/model_router_rules.yml"
    assert read_request(req).rules  # type: ignore[attr-defined]


def test_a_symlink_inside_conf_is_fine(home: Path) -> None:
    (home / "conf" / "alias.yml").symlink_to(home / "conf" / "risk_params.yml")
    req = parse_request('{"component": "risk_harmoniser", "config_path": "conf/alias.yml"}')
    assert read_request(req).equity_usd == 1_000_000  # type: ignore[attr-defined]
