"""Component configs: schemas, loading from `conf/`, and the versioned store in Redis.

Each component (one per service) has one YAML file under `conf/` and one pydantic
schema (in its service package, named in ``COMPONENTS``). Schemas are frozen and
forbid unknown keys; errors name the key and the rule. The parameter server stores
every accepted config as a new version in Redis; services start from the current
version in Redis (so a live change survives restarts) and fall back to the file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio import Redis

KEY_PREFIX = "edgebus"


class ConfigError(ValueError):
    """A config that must not be applied; the message says which key and why."""


class Frozen(BaseModel):
    """Base of every config model: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class BusSettings(Frozen):
    """Runtime knobs of the consume loop, per component (section ``bus:``)."""

    batch_size: int = Field(default=200, ge=1, le=10_000)
    block_ms: int = Field(default=200, ge=1, le=5_000)
    maxlen: int = Field(default=100_000, ge=1_000)
    claim_idle_ms: int = Field(default=5_000, ge=50)
    claim_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_deliveries: int = Field(default=5, ge=1, le=1_000)


class ComponentConfig(Frozen):
    """Base of each component's schema: every component can tune its bus section."""

    bus: BusSettings = BusSettings()


@dataclass(frozen=True)
class ComponentSpec:
    path: str  # relative to the project root
    schema: str  # "module:Class"

    def load_schema(self) -> type[ComponentConfig]:
        module, cls = self.schema.split(":")
        schema = getattr(importlib.import_module(module), cls)
        assert issubclass(schema, ComponentConfig)
        return schema


COMPONENTS: dict[str, ComponentSpec] = {
    "parameter_server": ComponentSpec(
        "conf/parameter_server.yml", "services.parameter_server.config:ParameterServerConfig"
    ),
    "feature_bus": ComponentSpec(
        "conf/feature_bus.yml", "services.feature_bus.config:FeatureBusConfig"
    ),
    "model_router": ComponentSpec(
        "conf/model_router_rules.yml", "services.model_router.config:RouterRules"
    ),
    "risk_harmoniser": ComponentSpec(
        "conf/risk_params.yml", "services.risk_harmoniser.config:RiskParams"
    ),
    "execution": ComponentSpec("conf/execution.yml", "services.execution.config:ExecutionConfig"),
    "telemetry": ComponentSpec("conf/telemetry.yml", "services.telemetry.config:TelemetryConfig"),
}


def project_root() -> Path:
    """Where `conf/` lives: $EDGEBUS_HOME, else the current directory."""
    return Path(os.environ.get("EDGEBUS_HOME", os.getcwd())).resolve()


def conf_dir() -> Path:
    return project_root() / "conf"


def resolve_conf_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a config path and confine it to `conf/` (no `..`, no symlink out).

    Accepts "conf/x.yml" (relative to the project root), "x.yml" (relative to conf/)
    or an absolute path inside conf/.
    """
    root = conf_dir().resolve()
    raw = Path(path)
    if raw.is_absolute():
        candidate = raw
    elif raw.parts and raw.parts[0] == "conf":
        candidate = project_root() / raw
    else:
        candidate = root / raw
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise ConfigError(f"config_path {str(path)!r}: file not found") from None
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise ConfigError(f"config_path {str(path)!r}: cannot be read ({exc})") from None
    if not resolved.is_relative_to(root):
        raise ConfigError(f"config_path {str(path)!r}: outside conf/ (resolves to {resolved})")
    if not resolved.is_file():
        raise ConfigError(f"config_path {str(path)!r}: not a file")
    return resolved


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: bad YAML ({exc})".replace("\n", " ")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot be read ({exc})") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path.name}: top level must be a mapping, got {type(doc).__name__}")
    return doc


def describe_errors(component: str, exc: ValidationError) -> str:
    """One line per error, each naming the key path and the rule it broke."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        rule = err["msg"]
        if err["type"] == "extra_forbidden":
            rule = "unknown key"
        parts.append(f"{key}: {rule}")
    return f"{component}: " + "; ".join(parts)


def schema_for(component: str) -> type[ComponentConfig]:
    spec = COMPONENTS.get(component)
    if spec is None:
        known = ", ".join(sorted(COMPONENTS))
        raise ConfigError(f"component {component!r}: unknown (known: {known})")
    return spec.load_schema()


def validate(component: str, doc: dict[str, Any]) -> ComponentConfig:
    schema = schema_for(component)
    try:
        return schema.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(describe_errors(component, exc)) from None


def load_file(component: str, path: str | None = None) -> ComponentConfig:
    """Read and validate a component's YAML; the default path is its file under conf/."""
    spec = COMPONENTS.get(component)
    if spec is None:
        schema_for(component)  # raises with the list of known components
    assert spec is not None
    return validate(component, read_yaml(resolve_conf_path(path or spec.path)))


def content_hash(cfg: BaseModel) -> str:
    """sha256 over the canonical JSON of the validated config (sorted keys), first 16 hex."""
    canonical = orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


# ---- the versioned store in Redis -------------------------------------------------------


def _keys(component: str) -> tuple[str, str, str]:
    base = f"{KEY_PREFIX}:config:{component}"
    return f"{base}:seq", f"{base}:versions", f"{base}:current"


# Allocate a version, store it, make it current and announce it, atomically, so that
# concurrent reloads are totally ordered and the last announced is the current one.
_STORE_SCRIPT = """
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[1])
redis.call('SET', KEYS[3], v)
redis.call('PUBLISH', ARGV[2], cjson.encode({component=ARGV[3], version=v, hash=ARGV[4]}))
return v
"""


@dataclass(frozen=True)
class StoredConfig:
    component: str
    version: int
    hash: str
    ts_ns: int
    source: str
    config: dict[str, Any]


async def store_version(
    r: Redis, component: str, cfg: ComponentConfig, source: str, channel: str
) -> StoredConfig:
    """Store a validated config as a new version and publish it on ``channel``."""
    digest = content_hash(cfg)
    ts_ns = time.time_ns()
    doc: dict[str, Any] = cfg.model_dump(mode="json")
    body = {"hash": digest, "ts_ns": ts_ns, "source": source, "config": doc}
    seq, versions, current = _keys(component)
    version = await r.eval(  # type: ignore[misc]
        _STORE_SCRIPT, 3, seq, versions, current, orjson.dumps(body), channel, component, digest
    )
    return StoredConfig(component, int(version), digest, ts_ns, source, doc)


async def fetch_version(
    r: Redis, component: str, version: int | None = None
) -> StoredConfig | None:
    """A stored version (the current one when ``version`` is None), or None."""
    _, versions, current = _keys(component)
    if version is None:
        cur = await r.get(current)
        if cur is None:
            return None
        version = int(cur)
    raw = await r.hget(versions, str(version))  # type: ignore[misc]
    if raw is None:
        return None
    body = orjson.loads(raw)
    return StoredConfig(
        component, version, body["hash"], body["ts_ns"], body["source"], body["config"]
    )


async def history(r: Redis, component: str) -> list[StoredConfig]:
    _, versions, _ = _keys(component)
    raw = await r.hgetall(versions)  # type: ignore[misc]
    out = []
    for ver, blob in raw.items():
        body = orjson.loads(blob)
        out.append(
            StoredConfig(
                component, int(ver), body["hash"], body["ts_ns"], body["source"], body["config"]
            )
        )
    return sorted(out, key=lambda s: s.version)


async def load_current(r: Redis | None, component: str) -> tuple[ComponentConfig, int, str]:
    """The config a starting service uses: Redis' current version, else the file (version 0)."""
    if r is not None:
        stored = await fetch_version(r, component)
        if stored is not None:
            return validate(component, stored.config), stored.version, stored.hash
    cfg = load_file(component)
    return cfg, 0, content_hash(cfg)
