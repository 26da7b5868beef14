"""Least privilege in Redis: the ACL file gives each service a user that can write only
the streams it owns and do exactly what its service needs.

The ACL is the compose stack's ``scripts/redis/users.acl.template`` (placeholders
rendered the way ``render_acl.sh`` does: ``#`` + SHA-256 of the password), loaded into a
real redis-server by ``ACL LOAD`` from ``--aclfile``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError

from services import SERVICE_NAMES
from services.model_router.service import ModelRouter
from shared.embedded_redis import EmbeddedRedis
from shared.messages import (
    DLQ,
    EVENTS,
    FEATURES,
    FILLS,
    MD_TICKS,
    ORDERS,
    PARAM_PROPOSALS,
    POSITIONS,
    REJECTIONS,
    RISK_DECISIONS,
    ROUTER_SWITCHES,
    SIGNALS,
    STREAMS,
    TRADING_CONTROL,
)
from tests.support import complete, features, running, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "scripts" / "redis" / "users.acl.template"

# Who may XADD where (CONTRACT.md, services table); every service may dead-letter.
OWNS: dict[str, set[str]] = {
    "parameter_server": set(),
    "feature_bus": {MD_TICKS, FEATURES},
    "model_router": {SIGNALS, ROUTER_SWITCHES, PARAM_PROPOSALS},
    "risk_harmoniser": {ORDERS, RISK_DECISIONS},
    "execution": {FILLS, POSITIONS, REJECTIONS},
    "telemetry": {EVENTS},
}


@dataclass
class AclRedis:
    server: EmbeddedRedis
    passwords: dict[str, str]  # user -> clear password

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}/0"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), decode_responses=True)


def render(template: str) -> tuple[str, dict[str, str]]:
    """Each {{VAR}} -> "#sha256(password)"; returns the file and user -> password."""
    passwords: dict[str, str] = {}
    out = []
    for line in template.splitlines():
        if not line.startswith("user "):
            continue  # the aclfile takes only user lines
        for var in re.findall(r"{{([A-Z0-9_]+)}}", line):
            clear = secrets.token_urlsafe(18)
            passwords[line.split()[1]] = clear
            line = line.replace("{{" + var + "}}", "#" + hashlib.sha256(clear.encode()).hexdigest())
        out.append(line)
    return "\n".join(out) + "\n", passwords


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    rendered, passwords = render(TEMPLATE.read_text())
    aclfile = tmp_path / "users.acl"
    # Start open (the embedded server's readiness probe is an unauthenticated PING),
    # then switch to the real file with ACL LOAD: Redis itself parses and applies it.
    aclfile.write_text("user default on nopass ~* &* +@all\n")
    server = EmbeddedRedis(tmp_path / "redis", extra_args=["--aclfile", str(aclfile)]).start()
    try:
        aclfile.write_text(rendered)
        opener = redis.Redis(port=server.port)
        opener.execute_command("ACL", "LOAD")
        opener.close()
        yield AclRedis(server, passwords)
    finally:
        server.stop()


def test_the_acl_has_one_user_per_service_and_no_open_default(acl_redis: AclRedis) -> None:
    admin = acl_redis.client("admin")
    users = set(admin.acl_users())
    assert set(SERVICE_NAMES) <= users
    assert admin.acl_getuser("default")["enabled"] is False
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_redis.server.port).ping()
    admin.close()


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_can_xadd_only_to_the_streams_it_owns(acl_redis: AclRedis, service: str) -> None:
    client = acl_redis.client(service)
    allowed: set[str] = set()
    for stream in sorted(STREAMS) + [EVENTS]:
        with contextlib.suppress(NoPermissionError):
            client.xadd(stream, {"probe": "1"}, maxlen=1000, approximate=True)
            allowed.add(stream)
    client.close()
    assert allowed == OWNS[service] | {DLQ}, f"{service} may XADD to {sorted(allowed)}"


def test_a_service_cannot_halt_the_desk_or_touch_the_server(acl_redis: AclRedis) -> None:
    client = acl_redis.client("model_router")
    with pytest.raises(NoPermissionError):
        client.publish(TRADING_CONTROL, '{"action": "halt"}')
    for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("ACL", "LIST"), ("KEYS", "*")):
        with pytest.raises((NoPermissionError, ResponseError)):
            client.execute_command(*command)
    with pytest.raises(NoPermissionError):
        client.hset("edgebus:trading", "state", "ACTIVE")
    client.close()


async def test_model_router_runs_end_to_end_as_its_own_user(acl_redis: AclRedis) -> None:
    admin = acl_redis.client("admin")
    for i in range(20):  # one symbol each: the router decides once per symbol per batch
        admin.xadd(FEATURES, features(i, symbol=f"SYM-{i}"))
    admin.xadd(FEATURES, {"symbol": "X", "mid": "oops"})  # goes to the dlq, as its user
    async with running(ModelRouter(), acl_redis.url("model_router")) as svc:
        admin.xadd(*complete("feature_bus"))  # type: ignore[arg-type]
        await wait_for(lambda: svc.processed == 22, what="21 features entries and the watermark")
        await wait_for(
            lambda: admin.xpending(FEATURES, "model_router")["pending"] == 0, what="all acked"
        )
        assert svc.redis_ok and svc.handler_errors == 0
        # trading.control reaches it over its own subscription
        admin.publish(TRADING_CONTROL, '{"action": "halt", "reason": "acl-test"}')
        await wait_for(lambda: svc.trading.halted, what="halt seen by the router")
    signals = admin.xrange(SIGNALS)
    assert {f["features_hash"] for _, f in signals} == {f"h{i}" for i in range(20)}
    dead = admin.xrange(DLQ)
    assert len(dead) == 1 and dead[0][1]["service"] == "model_router"
    admin.close()
