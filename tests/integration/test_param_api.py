"""The parameter server's REST API, on the app built from a running ParameterServer
connected to the test Redis: reads, token-guarded writes, rollback, trading control."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from services.parameter_server.probe import Announcements
from services.parameter_server.service import ParameterServer
from services.risk_harmoniser.service import RiskHarmoniser
from shared.config import fetch_version, history
from shared.control import load_state
from shared.http import build_app
from shared.messages import PARAM_REJECTED, TRADING_CONTROL
from tests.support import running, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RISK_DOC = {"equity_usd": 12_345.0, "limits": {"var_limit_pct": 1.5}}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEBUS_ADMIN_TOKEN", TOKEN)
    return tmp_path


@pytest.fixture
async def stack(
    redis_url: str, home: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, RiskHarmoniser]]:
    """A parameter server (its HTTP app in-process) and one service that applies configs."""
    async with (
        running(ParameterServer(), redis_url) as ps,
        running(RiskHarmoniser(), redis_url) as rh,
    ):
        await wait_for(lambda: rh.config_version == 1, what="seed applied")
        transport = httpx.ASGITransport(app=build_app(ps))
        async with httpx.AsyncClient(transport=transport, base_url="http://ps") as client:
            yield client, rh


async def test_writes_need_the_bearer_token_and_change_nothing_without_it(
    r: Redis, stack: tuple[httpx.AsyncClient, RiskHarmoniser]
) -> None:
    api, rh = stack
    writes = [
        ("PUT", "/config/risk_harmoniser", {"json": RISK_DOC}),
        ("POST", "/config/risk_harmoniser/rollback", {"json": {"version": 1}}),
        ("POST", "/trading/control", {"json": {"action": "halt"}}),
    ]
    for method, url, body in writes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN + "x"}):
            resp = await api.request(method, url, headers=headers, **body)  # type: ignore[arg-type]
            assert resp.status_code == 401, (method, url, headers)
            assert resp.headers["www-authenticate"] == "Bearer"
    assert [v.version for v in await history(r, "risk_harmoniser")] == [1]
    assert (await load_state(r)).state == "ACTIVE"
    assert rh.config_version == 1 and not rh.trading.halted


async def test_put_validates_stores_announces_and_every_service_applies(
    r: Redis, stack: tuple[httpx.AsyncClient, RiskHarmoniser]
) -> None:
    api, rh = stack
    resp = await api.put("/config/risk_harmoniser", json=RISK_DOC, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["component"], body["version"], body["source"]) == (
        "risk_harmoniser",
        2,
        "http:put",
    )
    await wait_for(lambda: rh.config_version == 2, what="version 2 applied")
    assert rh.config.equity_usd == 12_345 and rh.config.limits.var_limit_pct == 1.5
    assert rh.config.limits.var_z == 1.645  # omitted keys take the schema default

    current = (await api.get("/config/risk_harmoniser")).json()
    assert current["version"] == 2 and current["hash"] == body["hash"] == rh.config_hash
    assert current["config"]["equity_usd"] == 12_345
    first = (await api.get("/config/risk_harmoniser/versions/1")).json()
    assert first["config"]["equity_usd"] == 1_000_000 and first["source"].startswith("seed:")
    hist = (await api.get("/config/risk_harmoniser/history")).json()
    assert [(h["version"], h["source"]) for h in hist] == [
        (1, "seed:conf/risk_params.yml"),
        (2, "http:put"),
    ]
    assert all("config" not in h for h in hist)

    await wait_for(lambda: _consistent(api, "risk_harmoniser"), what="status consistent")
    status = {c["component"]: c for c in (await api.get("/config")).json()}
    assert status["risk_harmoniser"]["current"]["version"] == 2
    assert [(a["service"], a["version"]) for a in status["risk_harmoniser"]["applied"]] == [
        ("risk_harmoniser", 2)
    ]

    yaml_body = b"equity_usd: 777\n"
    headers = {**AUTH, "Content-Type": "application/yaml"}
    resp = await api.put("/config/risk_harmoniser", content=yaml_body, headers=headers)
    assert resp.status_code == 200 and resp.json()["version"] == 3
    await wait_for(lambda: rh.config.equity_usd == 777, what="yaml put applied")


async def _consistent(api: httpx.AsyncClient, component: str) -> bool:
    status = {c["component"]: c for c in (await api.get("/config")).json()}
    return bool(status[component]["consistent"] and status[component]["applied"])


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b'{"max_positon_usd": 1}', "application/json", "max_positon_usd: unknown key"),
        (
            b'{"limits": {"var_limit_pct": 250}}',
            "application/json",
            "limits.var_limit_pct: Input should be less than or equal to 100 (got 250)",
        ),
        (b'{"equity_usd": ', "application/json", "body is not JSON"),
        (b"[1, 2]", "application/json", "(top level): Input should be a valid dictionary"),
        (b"a: [1\n", "application/yaml", "body: bad YAML at line 2"),
        (b"a: 1\na: 2\n", "application/yaml", "duplicate key 'a'"),
    ],
)
async def test_a_bad_put_is_422_naming_the_key_announced_and_changes_nothing(
    r: Redis,
    stack: tuple[httpx.AsyncClient, RiskHarmoniser],
    body: bytes,
    content_type: str,
    reason: str,
) -> None:
    api, rh = stack
    async with Announcements(r) as seen:
        headers = {**AUTH, "Content-Type": content_type}
        resp = await api.put("/config/risk_harmoniser", content=body, headers=headers)
        assert resp.status_code == 422
        assert reason in resp.json()["detail"]
        note = await seen.wait(lambda _: seen.on(PARAM_REJECTED, component="risk_harmoniser"))
        assert reason in note[0]["reason"] and note[0]["source"] == "http:put"
    assert [v.version for v in await history(r, "risk_harmoniser")] == [1]
    assert rh.config_version == 1


async def test_reads_of_unknown_components_and_versions_are_404(
    stack: tuple[httpx.AsyncClient, RiskHarmoniser],
) -> None:
    api, _ = stack
    for url in ("/config/risk", "/config/risk/history", "/config/risk_harmoniser/versions/9"):
        resp = await api.get(url)
        assert resp.status_code == 404, url
        assert resp.json()["detail"]
    resp = await api.put("/config/risk", json={}, headers=AUTH)
    assert resp.status_code == 404 and "known: execution" in resp.json()["detail"]


async def test_rollback_makes_an_old_content_current_as_a_new_version(
    r: Redis, stack: tuple[httpx.AsyncClient, RiskHarmoniser]
) -> None:
    api, rh = stack
    assert (
        await api.put("/config/risk_harmoniser", json=RISK_DOC, headers=AUTH)
    ).status_code == 200
    resp = await api.post("/config/risk_harmoniser/rollback", json={"version": 1}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["version"], body["source"]) == (3, "rollback:1")
    v1 = await fetch_version(r, "risk_harmoniser", 1)
    assert v1 is not None and body["hash"] == v1.hash
    await wait_for(lambda: rh.config_version == 3, what="rollback applied")
    assert rh.config.equity_usd == 1_000_000
    # versions are kept for audit: nothing was overwritten
    assert [v.version for v in await history(r, "risk_harmoniser")] == [1, 2, 3]

    missing = await api.post("/config/risk_harmoniser/rollback", json={"version": 42}, headers=AUTH)
    assert missing.status_code == 404
    bad = await api.post("/config/risk_harmoniser/rollback", json={"version": 0}, headers=AUTH)
    assert bad.status_code == 422
    assert [v.version for v in await history(r, "risk_harmoniser")] == [1, 2, 3]


async def test_trading_control_is_validated_persisted_and_announced(
    r: Redis, stack: tuple[httpx.AsyncClient, RiskHarmoniser]
) -> None:
    api, rh = stack
    bad = await api.post("/trading/control", json={"action": "pause"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("action:")
    extra = await api.post("/trading/control", json={"action": "halt", "why": 1}, headers=AUTH)
    assert extra.status_code == 422 and "why" in extra.json()["detail"]
    assert (await load_state(r)).state == "ACTIVE"

    pubsub = r.pubsub()
    await pubsub.subscribe(TRADING_CONTROL)
    await wait_for(lambda: pubsub.get_message(timeout=0.1), what="subscribed")
    resp = await api.post(
        "/trading/control", json={"action": "halt", "reason": "desk"}, headers=AUTH
    )
    assert resp.status_code == 200 and resp.json()["state"] == "HALTED"
    msg = await wait_for(lambda: pubsub.get_message(timeout=0.1), what="trading.control")
    sent = orjson.loads(msg["data"])
    assert (sent["action"], sent["reason"], sent["source"]) == ("halt", "desk", "http")
    await pubsub.aclose()
    state = await load_state(r)
    assert (state.state, state.reason) == ("HALTED", "desk")
    await wait_for(lambda: rh.trading.halted, what="service halted")
    assert (await api.get("/trading")).json()["state"] == "HALTED"

    resp = await api.post("/trading/control", json={"action": "resume"}, headers=AUTH)
    assert resp.json()["state"] == "ACTIVE"
    await wait_for(lambda: not rh.trading.halted, what="service resumed")


async def test_the_openapi_page_documents_every_route(
    stack: tuple[httpx.AsyncClient, RiskHarmoniser],
) -> None:
    api, _ = stack
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    expected = {
        ("/config", "get"),
        ("/config/{component}", "get"),
        ("/config/{component}", "put"),
        ("/config/{component}/versions/{version}", "get"),
        ("/config/{component}/history", "get"),
        ("/config/{component}/rollback", "post"),
        ("/trading", "get"),
        ("/trading/control", "post"),
    }
    for path, method in expected:
        op = paths[path][method]
        assert op["summary"], (path, method)
        assert "schema" in op["responses"]["200"]["content"]["application/json"]
    for path, method in [("/config/{component}", "put"), ("/trading/control", "post")]:
        assert "401" in paths[path][method]["responses"]
        assert "requestBody" in paths[path][method]
    schemas = spec["components"]["schemas"]
    assert {"VersionOut", "VersionInfo", "ComponentStatus", "TradingStateOut"} <= set(schemas)
    assert (await api.get("/docs")).status_code == 200
