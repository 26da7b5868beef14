"""What the end-to-end tests share: the environment of a stack started as processes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from shared.http import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The test's Redis, ports moved by a random offset, the run dir under tmp_path."""
    offset = random.randint(200, 2000) * 10
    return dict(
        os.environ,
        REDIS_URL=redis_url,
        EDGEBUS_PORT_OFFSET=str(offset),
        EDGEBUS_HOME=str(ROOT),
        EDGEBUS_RUN_DIR=str(tmp_path / "run"),
        PYTHONUNBUFFERED="1",
    )


def port(env: dict[str, str], name: str) -> int:
    return DEFAULT_PORTS[name] + int(env["EDGEBUS_PORT_OFFSET"])
