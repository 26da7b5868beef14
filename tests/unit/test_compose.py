"""docker-compose.yml and its CI override: valid Compose files, the same commands as
`make start`, loopback-only ports, secrets only from the environment.

Running the stack for real is `make test-compose` (scripts/test_compose.sh)."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services import SERVICE_NAMES
from shared.http import DEFAULT_PORTS
from shared.launcher import Stack

ROOT = Path(__file__).resolve().parents[2]
CI_PORT_OFFSET = 20_000
# Ports that belong to the machine's own services or to a developer's `make start`.
TAKEN_PORTS = {6379, 5432, 3306, 5672, 1883, 4222, *DEFAULT_PORTS.values()}


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load("docker-compose.yml")


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return load("docker-compose.ci.yml")


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by check-jsonschema."""
    path = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(path.read_text())
    assert isinstance(schema, dict)
    return schema


def validator() -> Any:
    schema = compose_schema()
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize(
    "name", ["docker-compose.yml", "docker-compose.override.yml", "docker-compose.ci.yml"]
)
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    errors = sorted(validator().iter_errors(load(name)), key=lambda e: e.json_path)
    assert not errors, "\n".join(f"{e.json_path}: {e.message}" for e in errors)


def test_the_schema_check_would_catch_a_broken_file(base: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(base))
    broken["services"]["feature_bus"]["healthcheck"]["interval"] = ["5s"]
    broken["services"]["redis"]["no_such_key"] = 1
    errors = list(validator().iter_errors(broken))
    assert len(errors) >= 2


def spawned_argv(name: str) -> tuple[str, ...]:
    """The argv `edgebus start` (shared/launcher.py) gives the child running ``name``."""
    seen: list[tuple[str, ...]] = []

    class _Proc:
        stdout: Any = None

    async def fake_exec(*argv: str, **_: Any) -> _Proc:
        seen.append(argv)
        proc = _Proc()
        proc.stdout = asyncio.StreamReader()
        proc.stdout.feed_eof()
        return proc

    async def spawn() -> None:
        original = asyncio.create_subprocess_exec
        asyncio.create_subprocess_exec = fake_exec  # type: ignore[assignment]
        try:
            await Stack(None)._spawn(name, 0, {})
            await asyncio.sleep(0)
        finally:
            asyncio.create_subprocess_exec = original

    asyncio.run(spawn())
    assert len(seen) == 1
    return seen[0]


def test_each_service_runs_the_command_make_start_runs(base: dict[str, Any]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgebus"] == "shared.cli:main"  # `edgebus` == `python -m shared.cli`
    services = base["services"]
    edgebus_services = {
        n for n, s in services.items() if s.get("image", "").startswith("${EDGEBUS")
    }
    assert edgebus_services == set(SERVICE_NAMES)
    for name in SERVICE_NAMES:
        argv = spawned_argv(name)
        assert argv[1:3] == ("-m", "shared.cli"), argv
        assert services[name]["command"] == ["edgebus", *argv[3:]] == ["edgebus", "run", name]


def test_one_image_and_one_build_for_the_six_services(base: dict[str, Any]) -> None:
    images = {base["services"][n]["image"] for n in SERVICE_NAMES}
    builds = {json.dumps(base["services"][n]["build"], sort_keys=True) for n in SERVICE_NAMES}
    assert len(images) == 1 and len(builds) == 1
    assert (ROOT / base["services"]["feature_bus"]["build"]["context"] / "Dockerfile").is_file()


def test_python_services_use_init_health_and_wait_for_a_healthy_redis(
    base: dict[str, Any],
) -> None:
    for name in SERVICE_NAMES:
        svc = base["services"][name]
        assert svc["init"] is True, name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        test = " ".join(svc["healthcheck"]["test"])
        assert "/health" in test and "EDGEBUS_HTTP_PORT" in test, name
        env = svc["environment"]
        assert env["EDGEBUS_HTTP_PORT"] == str(DEFAULT_PORTS[name]), name
        assert env["EDGEBUS_HTTP_HOST"] == "0.0.0.0", name  # reachable by prometheus
    for name, svc in base["services"].items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_redis_keeps_an_append_only_file() -> None:
    start = (ROOT / "scripts/redis/start.sh").read_text()
    assert "--appendonly yes" in start
    assert "redis-data:/data" in load("docker-compose.yml")["services"]["redis"]["volumes"]


def published(svc: dict[str, Any]) -> list[str]:
    return [p if isinstance(p, str) else json.dumps(p) for p in svc.get("ports", [])]


def test_published_ports_bind_loopback_only_and_only_in_the_override(
    base: dict[str, Any],
) -> None:
    """`docker compose up` merges docker-compose.override.yml; the CI variant (host
    network, where compose v1 refuses published ports) leaves it out."""
    assert all("ports" not in svc for svc in base["services"].values())
    override = load("docker-compose.override.yml")["services"]
    assert set(override) == set(base["services"])
    for name, svc in override.items():
        assert set(svc) == {"ports"}, name
        for port in published(svc):
            assert port.startswith("127.0.0.1:"), port


def test_each_service_gets_only_its_own_redis_password(base: dict[str, Any]) -> None:
    for name in SERVICE_NAMES:
        env = base["services"][name]["environment"]
        own = f"REDIS_PASSWORD_{name.upper()}"
        url = env["REDIS_URL"]
        assert url.startswith(f"redis://{name}:${{{own}:?"), url
        assert set(re.findall(r"REDIS_PASSWORD_[A-Z_]+", json.dumps(env))) == {own}, name
        assert "REDIS_ADMIN_PASSWORD" not in json.dumps(env), name


def referenced_variables(text: str) -> dict[str, bool]:
    """${VAR}, ${VAR:-default}, ${VAR:?error} -> {VAR: has_default}."""
    out: dict[str, bool] = {}
    for name, op in re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(:?[-?])?", text):
        out[name] = out.get(name, False) or op in (":-", "-")
    return out


def test_every_setting_without_a_default_is_in_env_example_as_a_placeholder() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("docker-compose.yml", "docker-compose.override.yml", "docker-compose.ci.yml"):
        for var, has_default in referenced_variables((ROOT / name).read_text()).items():
            if not has_default:
                assert var in example, f"{name} needs ${var}; .env.example lacks it"
    for var, value in example.items():
        if "PASSWORD" in var or "TOKEN" in var:
            assert value.startswith("change-me"), f"{var} in .env.example looks like a real secret"


def test_ci_override_stays_on_loopback_with_free_ports(ci: dict[str, Any]) -> None:
    for name, svc in ci["services"].items():
        assert svc["network_mode"] == "host", name
    text = (ROOT / "docker-compose.ci.yml").read_text()
    assert not re.search(r"\b(10|172|192\.168)\.\d+\.\d+", text)
    assert ci["services"]["grafana"]["profiles"] == ["grafana"]
    redis_port = int(ci["services"]["redis"]["environment"]["REDIS_PORT"])
    assert ci["services"]["redis"]["environment"]["REDIS_BIND"] == "127.0.0.1"
    ports = {redis_port}
    for name in SERVICE_NAMES:
        env = ci["services"][name]["environment"]
        port = int(env["EDGEBUS_HTTP_PORT"])
        assert port == DEFAULT_PORTS[name] + CI_PORT_OFFSET
        assert env["EDGEBUS_HTTP_HOST"] == "127.0.0.1"
        assert env["REDIS_URL"].endswith(f"@127.0.0.1:{redis_port}/0")
        assert env["REDIS_URL"].startswith(f"redis://{name}:${{REDIS_PASSWORD_{name.upper()}}}")
        assert ci["services"][name]["build"]["network"] == "host"
        ports.add(port)
    listen = next(a for a in ci["services"]["prometheus"]["command"] if "listen-address" in a)
    assert listen.startswith("--web.listen-address=127.0.0.1:")
    ports.add(int(listen.rsplit(":", 1)[1]))
    assert not ports & TAKEN_PORTS


@pytest.mark.parametrize(
    ("config", "host_of"),
    [
        ("prometheus.yml", lambda name, port: f"{name}:{port}"),
        ("prometheus.ci.yml", lambda name, port: f"127.0.0.1:{port + CI_PORT_OFFSET}"),
    ],
)
def test_prometheus_scrapes_all_six_services(config: str, host_of: Any) -> None:
    doc = yaml.safe_load((ROOT / "dashboards/prometheus" / config).read_text())
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "edgebus")
    targets = {g["labels"]["service"]: g["targets"] for g in job["static_configs"]}
    assert targets == {n: [host_of(n, p)] for n, p in DEFAULT_PORTS.items()}
    assert doc["rule_files"] == ["/etc/prometheus/edgebus/alerts.yml"]
    # The rules file is mounted from dashboards/ where compose says it is.
    volumes = load("docker-compose.yml")["services"]["prometheus"]["volumes"]
    assert "./dashboards:/etc/prometheus/edgebus:ro" in volumes


def test_grafana_is_provisioned_from_dashboards(base: dict[str, Any]) -> None:
    volumes = base["services"]["grafana"]["volumes"]
    assert "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./dashboards:/var/lib/grafana/dashboards:ro" in volumes


def test_dockerfile_runs_as_a_non_root_user_from_the_wheelhouse_or_pypi() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms and set(froms) == {"python:3.11-slim"}
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "ARG WHEELHOUSE" in text and "PIP_NO_INDEX=1" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".venv" in ignored and ".git" in ignored
