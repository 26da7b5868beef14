"""The Redis ACL of the compose stack (scripts/redis/users.acl.template) against the code:
every service can consume its inputs, no service can write a stream it only consumes,
every stream has a writer, and the renderer refuses bad or placeholder passwords.

tests/integration/test_compose_acl.py runs the six services on a real Redis under it."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services import SERVICE_NAMES, service_class
from shared.messages import DLQ, STREAMS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "scripts/redis/users.acl.template"
RENDER = ROOT / "scripts/redis/render_acl.sh"
FEEDER = "feeder"  # writes md.raw from outside the stack (edgebus replay)
PASSWORD_VARS = (
    "REDIS_ADMIN_PASSWORD",
    *(f"REDIS_PASSWORD_{n.upper()}" for n in (*SERVICE_NAMES, FEEDER)),
)


@dataclass
class Rules:
    """One set of ACL rules: the root of a user, or one of its selectors."""

    keys: set[str] = field(default_factory=set)  # full access: ~pattern
    read_keys: set[str] = field(default_factory=set)  # %R~pattern
    channels: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)  # "+cmd" / "-cmd" / "+@cat" in order

    @classmethod
    def parse(cls, text: str) -> Rules:
        rules = cls()
        for token in text.split():
            if token.startswith("~"):
                rules.keys.add(token[1:])
            elif token.startswith("%R~"):
                rules.read_keys.add(token[3:])
            elif token.startswith("&"):
                rules.channels.add(token[1:])
            elif token[0] in "+-":
                rules.commands.add(token)
        return rules


@dataclass
class User:
    name: str
    flags: list[str]
    root: Rules
    selectors: list[Rules]

    def consumes(self) -> set[str]:
        return {k for s in self.selectors if "+xreadgroup" in s.commands for k in s.keys}

    def writes(self) -> set[str]:
        can_write = {"+@write", "+xadd"} & self.root.commands
        return self.root.keys if can_write else set()


def parse_template() -> dict[str, User]:
    users: dict[str, User] = {}
    for line in TEMPLATE.read_text().splitlines():
        if not line.startswith("user "):
            continue
        _, name, rest = line.split(" ", 2)
        selectors = [Rules.parse(s) for s in re.findall(r"\(([^)]*)\)", rest)]
        root_text = re.sub(r"\([^)]*\)", " ", rest)
        flags = [t for t in root_text.split() if t in ("on", "off") or t.startswith("{{")]
        users[name] = User(name, flags, Rules.parse(root_text), selectors)
    return users


USERS = parse_template()


def test_one_user_per_service_plus_admin_and_a_disabled_default() -> None:
    assert set(USERS) == {"default", "admin", FEEDER, *SERVICE_NAMES}
    assert USERS["default"].flags == ["off"]
    for name in SERVICE_NAMES:
        assert USERS[name].flags == ["on", f"{{{{REDIS_PASSWORD_{name.upper()}}}}}"], name
        assert "-@all" in USERS[name].root.commands
        assert "-@dangerous" in USERS[name].root.commands
        assert "*" not in USERS[name].root.keys | USERS[name].root.channels


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_a_service_can_consume_every_input_it_declares(name: str) -> None:
    assert set(service_class(name).inputs) <= USERS[name].consumes()


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_a_service_cannot_write_a_stream_it_only_consumes(name: str) -> None:
    user = USERS[name]
    assert not (user.writes() & set(service_class(name).inputs)) - {DLQ}
    for selector in user.selectors:
        assert not {"+xadd", "+@write", "+@all"} & selector.commands


def test_every_stream_has_exactly_one_writer_but_the_dlq_which_all_consumers_share() -> None:
    for stream in STREAMS:
        writers = sorted(n for n in (*SERVICE_NAMES, FEEDER) if stream in USERS[n].writes())
        if stream == DLQ:
            consumers = {n for n in SERVICE_NAMES if service_class(n).inputs}
            assert consumers <= set(writers)
        else:
            assert len(writers) == 1, f"stream {stream!r} is written by {writers or 'nobody'}"


def test_the_feeder_may_only_add_raw_quotes() -> None:
    feeder = USERS[FEEDER]
    # md.raw and the replay's watermarks (event time: how far the file is complete)
    assert feeder.root.keys == {"md.raw", "wm.replay"} and not feeder.selectors
    assert not feeder.root.channels
    assert not {"+@write", "+@all", "+publish"} & feeder.root.commands


def test_each_merging_service_writes_its_watermarks_and_reads_its_upstreams() -> None:
    for name in SERVICE_NAMES:
        cls = service_class(name)
        if not cls.upstreams:
            continue
        user = USERS[name]
        assert f"wm.{name}" in user.root.keys, name
        readable = set().union(*(sel.keys for sel in user.selectors)) if user.selectors else set()
        for producer in set(cls.upstreams.values()):
            assert f"wm.{producer}" in readable | user.root.keys, (name, producer)


def test_config_and_trading_keys_are_read_only_except_for_their_owners() -> None:
    for name in SERVICE_NAMES:
        root = USERS[name].root
        assert f"edgebus:{name}:*" in root.keys  # its own namespace
        if name == "parameter_server":
            assert "edgebus:config:*" in root.keys
            continue
        # Its own config only (read with EVAL, which Redis checks as read-write).
        own = {"edgebus:config:applied", f"edgebus:config:{name}:*"}
        assert own <= root.keys
        assert not any(k.startswith("edgebus:config:") for k in root.keys - own)
        trading = "edgebus:trading"
        expect_write = service_class(name).persists_trading_state
        assert (trading in root.keys) == expect_write, name
        assert (trading in root.read_keys) == (not expect_write), name


def test_only_the_parameter_server_announces_configs() -> None:
    for name in SERVICE_NAMES:
        publishes = {
            c for s in USERS[name].selectors if "+publish" in s.commands for c in s.channels
        }
        assert ("param.updated" in publishes) == (name == "parameter_server"), name
        assert "+publish" not in USERS[name].root.commands
        assert {"param.updated", "trading.control"} <= USERS[name].root.channels  # subscribe


def render(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE), str(tmp_path / "users.acl")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def good_env() -> dict[str, str]:
    return {v: f"pw-{i:02d}-0123456789abcdef" for i, v in enumerate(PASSWORD_VARS)}


def test_rendering_hashes_every_password_and_keeps_no_clear_text(tmp_path: Path) -> None:
    env = good_env()
    done = render(tmp_path, env)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "users.acl").read_text()
    assert oct((tmp_path / "users.acl").stat().st_mode & 0o777) == "0o600"
    assert "{{" not in text and all(v not in text for v in env.values())
    assert len(re.findall(r" #[0-9a-f]{64} ", text)) == len(PASSWORD_VARS)
    assert all(line.startswith("user ") for line in text.splitlines())


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (None, "is not set"),
        ("change-me-execution", "placeholder"),
        ("short", "too short"),
        ("has space in it 0123456789", "URL-safe"),
        ("at@sign-in-a-url-0123456789", "URL-safe"),
    ],
)
def test_rendering_refuses_a_bad_password_and_names_it(
    tmp_path: Path, value: str | None, complaint: str
) -> None:
    env = good_env()
    if value is None:
        del env["REDIS_PASSWORD_EXECUTION"]
    else:
        env["REDIS_PASSWORD_EXECUTION"] = value
    done = render(tmp_path, env)
    assert done.returncode == 2
    assert "REDIS_PASSWORD_EXECUTION" in done.stderr and complaint in done.stderr
    assert not (tmp_path / "users.acl").exists()
