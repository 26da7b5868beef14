"""parameter_server against a real Redis: seeding, reloads over pub/sub, every kind of
rejection changing nothing, and services (re)starting on the latest version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from services.parameter_server.probe import Announcements
from services.parameter_server.service import ParameterServer
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.service import RiskHarmoniser
from shared.config import (
    COMPONENTS,
    StoredConfig,
    content_hash,
    fetch_version,
    history,
    load_file,
    store_version,
)
from shared.messages import PARAM_APPLIED, PARAM_REJECTED, PARAM_RELOAD, PARAM_UPDATED
from shared.service import APPLIED_KEY
from tests.support import running, wait_for
from tests.unit.test_config_reload import GOOD_RISK, REJECTIONS, request_for, write_bad_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home with a copy of conf/ plus the files the tests reload."""
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    write_bad_files(conf, tmp_path / "secret.yml")
    for cap in (10, 20, 30):
        (conf / f"cap{cap}.yml").write_text(
            GOOD_RISK.replace("equity_usd: 1000000", f"equity_usd: {cap}")
        )
    monkeypatch.setenv("EDGEBUS_HOME", str(tmp_path))
    return tmp_path


async def listening(r: Redis, channel: str, n: int = 1) -> bool:
    """True once ``n`` clients are subscribed to ``channel`` (a publish before is lost)."""
    return int((await r.pubsub_numsub(channel))[0][1]) >= n


async def reload(r: Redis, path: str) -> None:
    await r.publish(
        PARAM_RELOAD, orjson.dumps({"component": "risk_harmoniser", "config_path": path})
    )


async def test_files_are_seeded_as_version_1_once_even_by_two_servers(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with running(ParameterServer(), redis_url), running(ParameterServer(), redis_url):
        for component in COMPONENTS:
            stored = await fetch_version(r, component)
            assert stored is not None and stored.version == 1, component
            assert stored.source == f"seed:{COMPONENTS[component].path}"
            assert stored.hash == content_hash(load_file(component))
            assert await r.get(f"edgebus:config:{component}:seq") == "1"


async def test_a_valid_reload_is_stored_announced_and_applied(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with (
        Announcements(r) as seen,
        running(ParameterServer(), redis_url),
        running(RiskHarmoniser(), redis_url) as rh,
    ):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await wait_for(lambda: rh.config_version == 1, what="seed applied")
        await reload(r, "conf/cap10.yml")
        updated = await seen.wait(
            lambda _: seen.on(PARAM_UPDATED, component="risk_harmoniser", version=2)
        )
        applied = await seen.wait(
            lambda _: seen.on(PARAM_APPLIED, service="risk_harmoniser", version=2)
        )
        assert rh.config.equity_usd == 10
        assert updated[0]["hash"] == applied[0]["hash"] == rh.config_hash
        assert applied[0]["hash"] == content_hash(rh.config)
        assert orjson.loads(await r.hget(APPLIED_KEY, "risk_harmoniser"))["version"] == 2
        versions = await history(r, "risk_harmoniser")
        assert [(v.version, v.source) for v in versions] == [
            (1, "seed:conf/risk_params.yml"),
            (2, "reload:conf/cap10.yml"),
        ]
        assert versions[1].config["equity_usd"] == 10


async def test_every_rejection_is_announced_and_changes_nothing(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with (
        Announcements(r) as seen,
        running(ParameterServer(), redis_url),
        running(RiskHarmoniser(), redis_url) as rh,
    ):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await wait_for(lambda: rh.config_version == 1, what="seed applied")
        before = await history(r, "risk_harmoniser")
        for case, (_, reason) in REJECTIONS.items():
            await r.publish(PARAM_RELOAD, request_for(case))
            await seen.wait(
                lambda _, reason=reason: [
                    n for n in seen.on(PARAM_REJECTED) if reason in n["reason"]
                ],
                what=f"rejection of {case}",
            )
        assert len(seen.on(PARAM_REJECTED)) == len(REJECTIONS)
        for channel in (PARAM_UPDATED, PARAM_APPLIED):
            assert [
                n for n in seen.on(channel, component="risk_harmoniser") if n["version"] > 1
            ] == []
        assert await history(r, "risk_harmoniser") == before
        assert await r.get("edgebus:config:risk_harmoniser:seq") == "1"
        assert (rh.config_version, rh.config.equity_usd) == (1, 1_000_000)
        # A good reload after all that is version 2: nothing was stored in between.
        await reload(r, "conf/cap20.yml")
        await wait_for(lambda: rh.config_version == 2, what="version 2 applied")
        assert rh.config.equity_usd == 20


async def current_version(r: Redis, component: str = "risk_harmoniser") -> int:
    return int(await r.get(f"edgebus:config:{component}:current") or 0)


async def test_a_service_starts_on_the_current_version_not_the_file(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with running(ParameterServer(), redis_url):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await reload(r, "conf/cap10.yml")
        await wait_for(lambda: _is(r, 2), what="version 2 current")
        async with running(RiskHarmoniser(), redis_url) as rh:
            assert (rh.config_version, rh.config.equity_usd) == (2, 10)
        # Changed while the service is down: the restarted one comes back on it.
        await reload(r, "conf/cap30.yml")
        await wait_for(lambda: _is(r, 3), what="version 3 current")
        async with running(RiskHarmoniser(), redis_url) as rh:
            assert (rh.config_version, rh.config.equity_usd) == (3, 30)
    # The file on disk still says 1,000,000: the live change survived the restart.
    assert load_file("risk_harmoniser").equity_usd == 1_000_000  # type: ignore[attr-defined]


async def _is(r: Redis, version: int) -> bool:
    return await current_version(r) == version


async def test_a_service_that_missed_the_announcement_still_converges(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with running(RiskHarmoniser(), redis_url) as rh:
        assert rh.config_version == 0  # no version in Redis yet: the file
        # Stored and announced on a channel nobody hears, as if the note were dropped.
        cfg = RiskParams(equity_usd=5.0)
        await store_version(r, "risk_harmoniser", cfg, "test", "nobody.listens")
        await wait_for(lambda: rh.config_version == 1, timeout_s=5, what="caught up")
        assert rh.config.equity_usd == 5.0


async def test_a_stored_version_a_service_cannot_validate_is_refused_by_it(
    r: Redis, redis_url: str, home: Path
) -> None:
    """Only possible with mismatched code versions; the service keeps its config."""
    async with Announcements(r) as seen, running(RiskHarmoniser(), redis_url) as rh:
        body = {"hash": "x", "ts_ns": 1, "source": "test", "config": {"max_positon_usd": 1}}
        await r.hset("edgebus:config:risk_harmoniser:versions", "1", orjson.dumps(body))
        await r.set("edgebus:config:risk_harmoniser:current", "1")
        await r.publish(
            PARAM_UPDATED, orjson.dumps({"component": "risk_harmoniser", "version": 1, "hash": "x"})
        )
        note = await seen.wait(lambda _: seen.on(PARAM_REJECTED, service="risk_harmoniser"))
        assert "max_positon_usd: unknown key" in note[0]["reason"] and note[0]["version"] == 1
        assert rh.config_version == 0 and rh.config.equity_usd == 1_000_000


async def test_a_file_changed_between_two_reloads_is_applied_with_its_new_value(
    r: Redis, redis_url: str, home: Path
) -> None:
    """The parameter server skips parsing a file it has validated byte for byte, so the
    second reload must see the new bytes even at the same size and mtime."""
    live = home / "conf" / "live.yml"
    async with (
        running(ParameterServer(), redis_url),
        running(RiskHarmoniser(), redis_url) as rh,
    ):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await wait_for(lambda: rh.config_version == 1, what="seed applied")
        live.write_text(GOOD_RISK.replace("equity_usd: 1000000", "equity_usd: 1111111"))
        before = live.stat()
        await reload(r, "conf/live.yml")
        await wait_for(lambda: rh.config_version == 2, what="version 2 applied")
        assert rh.config.equity_usd == 1_111_111  # type: ignore[attr-defined]
        await reload(r, "conf/live.yml")  # unchanged: a new version, same content
        await wait_for(lambda: rh.config_version == 3, what="version 3 applied")
        assert rh.config.equity_usd == 1_111_111  # type: ignore[attr-defined]
        live.write_text(GOOD_RISK.replace("equity_usd: 1000000", "equity_usd: 2222222"))
        os.utime(live, ns=(before.st_atime_ns, before.st_mtime_ns))
        await reload(r, "conf/live.yml")
        await wait_for(lambda: rh.config_version == 4, what="version 4 applied")
        assert rh.config.equity_usd == 2_222_222  # type: ignore[attr-defined]
    stored = await fetch_version(r, "risk_harmoniser")
    assert stored is not None and stored.config["equity_usd"] == 2_222_222


async def test_the_announcement_carries_the_stored_version_exactly(
    r: Redis, redis_url: str, home: Path
) -> None:
    """param.updated carries the stored content (services apply it without fetching);
    numbers keep every digit (cjson would round 17 significant digits to 14)."""
    (home / "conf" / "precise.yml").write_text(
        GOOD_RISK.replace("equity_usd: 1000000", "equity_usd: 1234567.8901234567")
    )
    async with Announcements(r) as seen, running(ParameterServer(), redis_url):
        await wait_for(lambda: listening(r, PARAM_RELOAD), what="param.reload subscriber")
        await reload(r, "conf/precise.yml")
        notes = await seen.wait(
            lambda _: seen.on(PARAM_UPDATED, component="risk_harmoniser", version=2)
        )
    stored = await fetch_version(r, "risk_harmoniser")
    assert stored is not None and stored.version == 2
    assert notes[0]["config"]["equity_usd"] == 1234567.8901234567
    assert StoredConfig.from_note(notes[0]) == stored


async def test_an_announced_version_that_was_never_stored_is_undone_by_the_resync(
    r: Redis, redis_url: str, home: Path
) -> None:
    """A service applies a note's content without asking the store; a forged one (only
    possible without ACLs) lasts until the next resync, and later real versions are
    not ignored as older than it."""
    await store_version(r, "risk_harmoniser", RiskParams(equity_usd=7.0), "test", "nobody")
    async with running(RiskHarmoniser(), redis_url) as rh:
        assert (rh.config_version, rh.config.equity_usd) == (1, 7.0)
        forged = {
            "component": "risk_harmoniser",
            "version": 99,
            "hash": "0123456789abcdef",
            "config": {"equity_usd": 5.0},
        }
        await r.publish(PARAM_UPDATED, orjson.dumps(forged))
        await wait_for(lambda: rh.config_version == 99, what="the note applied as it came")
        assert rh.config.equity_usd == 5.0
        await wait_for(lambda: rh.config_version == 1, timeout_s=5, what="back on the store's")
        assert rh.config.equity_usd == 7.0
        await store_version(r, "risk_harmoniser", RiskParams(equity_usd=8.0), "test", PARAM_UPDATED)
        await wait_for(lambda: rh.config_version == 2, what="version 2 applied")
        assert rh.config.equity_usd == 8.0


async def test_an_announced_content_a_service_cannot_validate_is_refused_by_it(
    r: Redis, redis_url: str, home: Path
) -> None:
    async with Announcements(r) as seen, running(RiskHarmoniser(), redis_url) as rh:
        note = {
            "component": "risk_harmoniser",
            "version": 1,
            "hash": "x",
            "config": {"max_positon_usd": 1},
        }
        await r.publish(PARAM_UPDATED, orjson.dumps(note))
        refused = await seen.wait(lambda _: seen.on(PARAM_REJECTED, service="risk_harmoniser"))
        assert "max_positon_usd: unknown key" in refused[0]["reason"]
        assert refused[0]["version"] == 1
        assert rh.config_version == 0 and rh.config.equity_usd == 1_000_000
