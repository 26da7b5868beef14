"""Hostile ``param.reload`` requests against the real parameter server and Redis: each
one is either stored as a new version or announced on ``param.rejected`` with a reason;
nothing escapes, nothing is stored by a rejected request, and the listener goes on."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from services.parameter_server.service import ParameterServer
from shared.bus import connect
from shared.config import COMPONENTS, fetch_version
from shared.messages import PARAM_REJECTED, PARAM_RELOAD, PARAM_UPDATED
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the project's conf/ with one extra file the test rewrites freely."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "conf", home / "conf")
    old = os.environ.get("EDGEBUS_HOME")
    os.environ["EDGEBUS_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("EDGEBUS_HOME", None)
    else:
        os.environ["EDGEBUS_HOME"] = old


component = st.one_of(st.sampled_from(sorted(COMPONENTS)), st.text(max_size=12), st.integers())
config_path = st.one_of(
    st.sampled_from(
        [
            "conf/fuzz.yml",
            "fuzz.yml",
            "conf/risk_params.yml",
            "../pyproject.toml",
            "/etc/passwd",
            "conf/\x00.yml",
            "conf",
            "conf/missing.yml",
        ]
    ),
    st.text(max_size=30),
    st.none(),
    st.integers(),
    st.lists(st.text(max_size=3), max_size=2),
)
request = st.one_of(
    st.text(max_size=60),
    st.fixed_dictionaries(
        {"component": component}, optional={"config_path": config_path, "x": st.text()}
    ).map(json.dumps),
    st.lists(st.integers(), max_size=3).map(json.dumps),
)
yaml_text = st.one_of(
    st.text(max_size=120),
    st.sampled_from(
        [
            "max_position_usd: -1\n",
            "max_positon_usd: 1\n",
            "bus: {maxlen: 5}\n",
            "rules: []\n",
            "- a\n- b\n",
            "a: &x [*x]\n",
            "equity_usd: .nan\n",
            "equity_usd: 1e400\n",
            "!!python/object:os.system ls\n",
            "",
        ]
    ),
)


async def one_reload(url: str, raw: str) -> tuple[Any, list[dict[str, Any]]]:
    svc = ParameterServer()
    svc.r = connect(url)
    listener: Redis = connect(url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(PARAM_REJECTED, PARAM_UPDATED)
        before = {c: await fetch_version(svc.r, c) for c in COMPONENTS}
        result = await svc.reload(raw)
        notes: list[dict[str, Any]] = []
        # Exactly one announcement; get_message also returns None for the (ignored)
        # subscribe confirmations, so wait on a deadline rather than on the first None.
        deadline = time.monotonic() + 2.0
        while not notes and time.monotonic() < deadline:
            msg = await pubsub.get_message(timeout=0.1)
            if msg is not None:
                notes.append({"channel": msg["channel"], **orjson.loads(msg["data"])})
        msg = await pubsub.get_message(timeout=0.05)
        if msg is not None:
            notes.append({"channel": msg["channel"]})
        if result is None:  # rejected
            after = {c: await fetch_version(svc.r, c) for c in COMPONENTS}
            assert after == before, "a rejected reload changed a stored version"
        return result, notes
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await svc.r.aclose()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=request, yaml_doc=yaml_text)
def test_every_reload_request_is_stored_or_rejected_with_a_reason(
    redis_server: str, fuzz_home: Path, raw: str, yaml_doc: str
) -> None:
    (fuzz_home / "conf" / "fuzz.yml").write_text(yaml_doc)
    result, notes = asyncio.run(one_reload(redis_server, raw))
    if result is None:  # rejected: announced with a reason, nothing stored
        assert [n["channel"] for n in notes] == [PARAM_REJECTED]
        assert notes[0]["reason"]
    else:
        assert [n["channel"] for n in notes] == [PARAM_UPDATED]
        assert notes[0]["version"] == result.version


async def test_the_listener_survives_garbage_and_still_applies_a_good_reload(
    r: Redis, redis_url: str
) -> None:
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(PARAM_REJECTED, PARAM_UPDATED)
    garbage = [
        "",
        "{",
        "[]",
        '{"component": "risk_harmoniser", "config_path": "conf/\\u0000.yml"}',
        '{"component": "risk_harmoniser", "config_path": "../pyproject.toml"}',
        '{"component": 7}',
        "\udcff",
    ]
    async with running(ParameterServer(), redis_url) as svc:
        seeded = await fetch_version(r, "risk_harmoniser")
        assert seeded is not None
        for raw in garbage:
            await r.publish(PARAM_RELOAD, raw.encode("utf-8", "surrogateescape"))
        good = {"component": "risk_harmoniser", "config_path": "conf/risk_params.yml"}
        await r.publish(PARAM_RELOAD, json.dumps(good))
        await wait_for(lambda: svc.accepted == 1, what="the good reload applied")
        assert svc.rejected == len(garbage)
    current = await fetch_version(r, "risk_harmoniser")
    assert current is not None and current.version == seeded.version + 1
    await pubsub.aclose()
