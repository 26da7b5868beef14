"""The compose stack's Redis ACL on a real Redis: the six services, each logged in as its
own user, still turn ticks into fills with no denial; and each user is refused what it
does not own. (The same ACL file runs in `make test-compose`.)"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from services import SERVICE_NAMES, service_class
from shared.embedded_redis import EmbeddedRedis, find_redis_server
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {
    "admin": "admin-pw-0123456789abcdef",
    **{name: f"{name.replace('_', '-')}-pw-0123456789" for name in (*SERVICE_NAMES, "feeder")},
}


class AclRedis(EmbeddedRedis):
    """Ready when it answers at all: with the default user off, PING says NOAUTH."""

    def ping(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 0.2) as s,
        ):
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        return False


def redis_major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"v=(\d+)\.", out)
    return int(match.group(1)) if match else 0


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis of our own (the ACL needs its own server), under the rendered ACL file."""
    binary = find_redis_server()
    if redis_major(binary) < 7:
        pytest.skip(f"{binary} is older than Redis 7: the ACL uses selectors and %R~")
    tmp = tmp_path_factory.mktemp("acl-redis")
    env = {"PATH": os.environ["PATH"], "REDIS_ADMIN_PASSWORD": PASSWORDS["admin"]}
    env.update({f"REDIS_PASSWORD_{n.upper()}": p for n, p in PASSWORDS.items() if n != "admin"})
    subprocess.run(
        [
            "sh",
            "scripts/redis/render_acl.sh",
            "scripts/redis/users.acl.template",
            tmp / "users.acl",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=30,
    )
    server = AclRedis(tmp, extra_args=["--aclfile", str(tmp / "users.acl")])
    server.binary = binary
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def url(port: int, user: str) -> str:
    return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{port}/0"


@pytest.fixture
def admin(acl_redis: int) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url(acl_redis, "admin"), decode_responses=True)
    client.flushall()
    client.acl_log_reset()
    yield client
    client.close()


@contextlib.contextmanager
def as_user(port: int, user: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url(port, user), decode_responses=True)
    try:
        yield client
    finally:
        client.close()


async def test_six_services_as_their_own_users_make_fills_with_no_denial(
    acl_redis: int, admin: redis.Redis
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        for name in SERVICE_NAMES:
            svc = service_class(name)()
            await stack.enter_async_context(running(svc, url(acl_redis, name)))
        try:
            await wait_for(lambda: admin.xlen("fills") > 0, 60, 0.2, what="fills")
        except AssertionError as exc:
            lengths = {s: admin.xlen(s) for s in ("md.ticks", "signals", "orders", "fills", "dlq")}
            denials = [(d["username"], d["object"], d["reason"]) for d in admin.acl_log()]
            raise AssertionError(f"{exc}; streams {lengths}; ACL denials {denials}") from None
        # telemetry's group on fills moves too: it may read what it consumes.
        await wait_for(
            lambda: any(
                g["name"] == "telemetry" and g["entries-read"] for g in admin.xinfo_groups("fills")
            ),
            30,
            0.2,
            what="telemetry reading fills",
        )
    assert [(d["username"], d["object"], d["reason"], d["context"]) for d in admin.acl_log()] == []
    assert admin.xlen("dlq") == 0
    assert admin.hlen("edgebus:config:applied") == len(SERVICE_NAMES)


def test_default_user_cannot_log_in(acl_redis: int, admin: redis.Redis) -> None:
    anonymous = redis.Redis(port=acl_redis)
    with pytest.raises((AuthenticationError, ResponseError)):
        anonymous.ping()
    anonymous.close()


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("feature_bus", ("XADD", "orders", "*", "v", "1")),  # someone else's stream
        ("model_router", ("XADD", "features", "*", "v", "1")),  # its input, not its output
        ("execution", ("XADD", "md.ticks", "*", "v", "1")),
        ("telemetry", ("XADD", "fills", "*", "v", "1")),
        ("telemetry", ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "md.ticks", ">")),
        ("risk_harmoniser", ("HSET", "edgebus:execution:positions", "BTC-USD", "{}")),
        ("feature_bus", ("HGETALL", "edgebus:execution:positions")),
        ("execution", ("HSET", "edgebus:trading", "state", "ACTIVE")),
        ("execution", ("SET", "edgebus:config:risk_harmoniser:current", "99")),
        ("model_router", ("GET", "edgebus:config:risk_harmoniser:current")),
        ("execution", ("PUBLISH", "trading.control", '{"action": "halt"}')),
        ("feature_bus", ("PUBLISH", "param.updated", "{}")),
        ("model_router", ("FLUSHALL",)),
        ("telemetry", ("KEYS", "*")),
        ("telemetry", ("CONFIG", "GET", "requirepass")),
        ("feeder", ("XADD", "md.ticks", "*", "v", "1")),
        ("feeder", ("PUBLISH", "trading.control", '{"action": "halt"}')),
        ("feeder", ("HSET", "edgebus:feature_bus:session:x", "sent", "1")),
    ],
)
def test_a_user_is_refused_what_it_does_not_own(
    acl_redis: int, admin: redis.Redis, user: str, command: tuple[str, ...]
) -> None:
    with as_user(acl_redis, user) as client, pytest.raises(NoPermissionError):
        client.execute_command(*command)
    assert admin.dbsize() == 0


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("feature_bus", ("XADD", "md.ticks", "*", "v", "1")),
        ("risk_harmoniser", ("HGETALL", "edgebus:execution:positions")),
        ("risk_harmoniser", ("HSET", "edgebus:trading", "state", "HALTED")),
        ("risk_harmoniser", ("PUBLISH", "trading.control", '{"action": "halt"}')),
        ("parameter_server", ("SET", "edgebus:config:execution:current", "1")),
        ("telemetry", ("XLEN", "md.ticks")),
        ("feeder", ("XADD", "md.raw", "*", "v", "1")),
    ],
)
def test_a_user_may_do_what_it_owns(
    acl_redis: int, admin: redis.Redis, user: str, command: tuple[str, ...]
) -> None:
    with as_user(acl_redis, user) as client:
        client.execute_command(*command)
    assert [(d["username"], d["object"], d["reason"], d["context"]) for d in admin.acl_log()] == []
