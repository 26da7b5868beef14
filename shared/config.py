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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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
    # Least time between two reads when the last batch was not full: entries gather into
    # fewer, larger batches (for consumers off the trading path, like telemetry). 0: read
    # again at once, the next read sent with the commit (lowest latency).
    batch_interval_ms: int = Field(default=0, ge=0, le=5_000)
    # Event time (shared/merge.py): a service that merges inputs waits for a slow
    # upstream's watermark, but an upstream whose heartbeat is older than this is taken
    # for dead and holds nothing back (counted in edgebus_watermark_forced_total).
    max_hold_ms: int = Field(default=5_000, ge=10, le=600_000)
    # How often an idle service repeats its watermark (its heartbeat).
    heartbeat_ms: int = Field(default=200, ge=10, le=60_000)


class ComponentConfig(Frozen):
    """Base of each component's schema: every component can tune its bus section.

    ``RESTART_ONLY``: the dotted keys a running service reads only at start; a reload
    that changes one is applied for the rest and says so (``restart_only`` on
    ``param.applied``). Every other key takes effect at the reload
    (tests/unit/test_reload_every_key.py walks them all)."""

    RESTART_ONLY: ClassVar[tuple[str, ...]] = ()

    bus: BusSettings = BusSettings()

    def restart_only_changes(self, other: ComponentConfig) -> list[str]:
        """The restart-only keys whose value differs in ``other``."""
        a, b = self.model_dump(), other.model_dump()
        out = []
        for key in self.RESTART_ONLY:
            x: Any = a
            y: Any = b
            for part in key.split("."):
                x, y = x.get(part), y.get(part)
            if x != y:
                out.append(key)
        return out


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


MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; refuse anything absurd before parsing


def resolve_conf_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a config path and confine it to `conf/` (no `..`, no symlink out).

    Accepts "conf/x.yml" (relative to the project root), "x.yml" (relative to conf/)
    or an absolute path inside conf/. The path is checked twice: as written (so
    ``conf/../x`` is refused as outside even when ``x`` does not exist) and after
    following symlinks (so a link inside conf/ cannot point out of it).
    """
    root = conf_dir().resolve()
    shown = str(path)
    if not shown or "\x00" in shown:
        raise ConfigError(f"config_path {shown!r}: empty or not a valid path")
    raw = Path(path)
    if raw.is_absolute():
        candidate = raw
    elif raw.parts and raw.parts[0] == "conf":
        candidate = project_root() / raw
    else:
        candidate = root / raw
    if not Path(os.path.normpath(candidate)).is_relative_to(root):
        raise ConfigError(f"config_path {shown!r}: outside conf/ (only files under conf/ are read)")
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise ConfigError(f"config_path {shown!r}: file not found under conf/") from None
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: an embedded NUL byte
        raise ConfigError(f"config_path {shown!r}: cannot be read ({exc})") from None
    if not resolved.is_relative_to(root):
        raise ConfigError(f"config_path {shown!r}: outside conf/ (a symlink to {resolved})")
    if not resolved.is_file():
        raise ConfigError(f"config_path {shown!r}: not a regular file")
    return resolved


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """safe_load that refuses a key given twice (PyYAML silently keeps the last one,
    which would let a pasted duplicate override a limit unnoticed)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,  # type: ignore[arg-type]
)


def parse_yaml(text: str, name: str) -> dict[str, Any]:
    """A YAML document whose top level is a mapping; ConfigError says where it is wrong."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(f"{name}: bad YAML{where}: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: bad YAML ({exc})".replace("\n", " ")) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{name}: top level must be a mapping, got {type(doc).__name__}")
    return doc


def _read_bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path.name}: larger than {MAX_CONFIG_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path.name}: cannot be read ({exc})") from None


def _decode(raw: bytes, name: str) -> str:
    """UTF-8 with universal newlines, as ``Path.read_text`` gives."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: cannot be read ({exc})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def read_yaml(path: Path) -> dict[str, Any]:
    return parse_yaml(_decode(_read_bytes(path), path.name), path.name)


def describe_errors(component: str, exc: ValidationError) -> str:
    """One clause per error, each naming the key path, the rule it broke and the value."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"{key}: unknown key")
        elif err["type"] == "missing":
            parts.append(f"{key}: required key missing")
        else:
            got = repr(err.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            parts.append(f"{key}: {err['msg']} (got {got})")
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
    except (TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        # A schema's own validator tripped on an odd value (a list where a name was
        # expected, say): still a rejection with a reason, never an escaping exception.
        raise ConfigError(f"{component}: invalid document ({type(exc).__name__}: {exc})") from None


# (component, file content) -> its validated config. Keyed by the bytes themselves, not
# by (mtime, size): a rewrite within one coarse kernel tick that keeps the size would
# look unchanged by stat, and reading a few kB costs about 10 us while parsing and
# validating cost 150-400 us. Configs are frozen, so one object can be shared.
_VALIDATED_FILES: dict[tuple[str, bytes], ComponentConfig] = {}
_VALIDATED_FILES_MAX = 32


PRESET_ENV = "EDGEBUS_PRESET"


def preset_path(default: str) -> str:
    """``conf/presets/$EDGEBUS_PRESET/<file>`` when that preset has the file, else
    ``default`` (a preset holds only the components it changes; e.g. ``daily``)."""
    preset = os.environ.get(PRESET_ENV, "").strip()
    if not preset:
        return default
    if not preset.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{PRESET_ENV}={preset!r}: letters, digits, - and _ only")
    candidate = f"conf/presets/{preset}/{Path(default).name}"
    return candidate if (project_root() / candidate).is_file() else default


def load_file(component: str, path: str | None = None) -> ComponentConfig:
    """Read and validate a component's YAML; the default path is its file under conf/.

    The path is resolved and confined and the file read on every call; parsing and
    validation are skipped when the content is byte for byte one already validated."""
    spec = COMPONENTS.get(component)
    if spec is None:
        schema_for(component)  # raises with the list of known components
    assert spec is not None
    resolved = resolve_conf_path(path or preset_path(spec.path))
    raw = _read_bytes(resolved)
    key = (component, raw)
    cfg = _VALIDATED_FILES.get(key)
    if cfg is None:
        cfg = validate(component, parse_yaml(_decode(raw, resolved.name), resolved.name))
        if len(_VALIDATED_FILES) >= _VALIDATED_FILES_MAX:
            del _VALIDATED_FILES[next(iter(_VALIDATED_FILES))]  # the oldest
        _VALIDATED_FILES[key] = cfg
    return cfg


def content_hash(cfg: BaseModel) -> str:
    """sha256 over the canonical JSON of the validated config (sorted keys), first 16 hex."""
    return _doc_hash(cfg.model_dump(mode="json"))


def _doc_hash(doc: dict[str, Any]) -> str:
    canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


# ---- the versioned store in Redis -------------------------------------------------------


def _keys(component: str) -> tuple[str, str, str]:
    base = f"{KEY_PREFIX}:config:{component}"
    return f"{base}:seq", f"{base}:versions", f"{base}:current"


# Allocate a version, store it, make it current and announce it, atomically, so that
# concurrent writers are totally ordered and announcements arrive in version order
# (the last one announced is the current one). With ARGV[5] == "1" (seeding) nothing
# happens when the component already has a current version.
# The announcement is the stored body (ARGV[1], a JSON object) with the component and
# version in front: {"component", "version", "hash", "ts_ns", "source", "config"}, so a
# service applies it without a round trip to fetch it (``StoredConfig.from_note``).
# Spliced as text: cjson would round numbers to 14 digits.
_STORE_SCRIPT = """
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], v, ARGV[1])
redis.call('SET', KEYS[3], v)
redis.call('PUBLISH', ARGV[2],
  '{"component":' .. cjson.encode(ARGV[3]) .. ',"version":' .. v .. ',' .. string.sub(ARGV[1], 2))
return v
"""


_FETCH_CURRENT_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('HGET', KEYS[2], v)}
"""


@dataclass(frozen=True)
class StoredConfig:
    """One stored version: what it is (hash), when and where from (ts_ns, source)."""

    component: str
    version: int
    hash: str
    ts_ns: int
    source: str
    config: dict[str, Any]

    @classmethod
    def from_blob(cls, component: str, version: int, blob: str | bytes) -> StoredConfig:
        body = orjson.loads(blob)
        return cls(component, version, body["hash"], body["ts_ns"], body["source"], body["config"])

    @classmethod
    def from_note(cls, note: dict[str, Any]) -> StoredConfig | None:
        """The version a ``param.updated`` note announces, when it carries the content
        (as the store script sends it); None for a bare {"component", "version"} note.
        Raises ValueError, KeyError or TypeError when it is malformed."""
        version = int(note["version"])
        if "config" not in note:
            return None
        config, digest = note["config"], note["hash"]
        if not isinstance(config, dict) or not isinstance(digest, str):
            raise TypeError("config must be an object and hash a string")
        return cls(
            str(note["component"]),
            version,
            digest,
            int(note.get("ts_ns", 0)),
            str(note.get("source", "")),
            config,
        )


async def _store(
    r: Redis, component: str, cfg: ComponentConfig, source: str, channel: str, seeding: bool
) -> StoredConfig | None:
    doc: dict[str, Any] = cfg.model_dump(mode="json")
    digest = _doc_hash(doc)
    ts_ns = time.time_ns()
    body = {"hash": digest, "ts_ns": ts_ns, "source": source, "config": doc}
    seq, versions, current = _keys(component)
    version = int(
        await r.eval(  # type: ignore[misc]
            _STORE_SCRIPT,
            3,
            seq,
            versions,
            current,
            orjson.dumps(body),
            channel,
            component,
            digest,
            "1" if seeding else "0",
        )
    )
    return StoredConfig(component, version, digest, ts_ns, source, doc) if version else None


def store_op(
    component: str, cfg: ComponentConfig, source: str, channel: str
) -> Callable[[Any], Any]:
    """``store_version`` as one operation of a batch's transaction (``Outbox.call``): the
    version is stored exactly when the batch's acknowledgement is, so a proposal read
    again after a crash is never stored twice."""
    doc: dict[str, Any] = cfg.model_dump(mode="json")
    digest = _doc_hash(doc)
    body = orjson.dumps({"hash": digest, "ts_ns": time.time_ns(), "source": source, "config": doc})
    seq, versions, current = _keys(component)

    def op(pipe: Any) -> Any:
        return pipe.eval(
            _STORE_SCRIPT, 3, seq, versions, current, body, channel, component, digest, "0"
        )

    return op


async def store_version(
    r: Redis, component: str, cfg: ComponentConfig, source: str, channel: str
) -> StoredConfig:
    """Store a validated config as a new version, make it current, publish it on ``channel``."""
    stored = await _store(r, component, cfg, source, channel, seeding=False)
    assert stored is not None
    return stored


async def seed_version(
    r: Redis, component: str, cfg: ComponentConfig, source: str, channel: str
) -> StoredConfig | None:
    """Like ``store_version`` but only when ``component`` has no version yet (else None);
    atomic, so two parameter servers starting together seed once."""
    return await _store(r, component, cfg, source, channel, seeding=True)


async def fetch_version(
    r: Redis, component: str, version: int | None = None
) -> StoredConfig | None:
    """A stored version (the current one when ``version`` is None), or None."""
    _, versions, current = _keys(component)
    if version is None:
        # One round trip: this is on the hot path of every service's reload.
        reply = await r.eval(_FETCH_CURRENT_SCRIPT, 2, current, versions)  # type: ignore[misc]
        if not reply or len(reply) < 2 or reply[1] is None:  # none, or a body missing
            return None
        return StoredConfig.from_blob(component, int(reply[0]), reply[1])
    raw = await r.hget(versions, str(version))  # type: ignore[misc]
    if raw is None:
        return None
    return StoredConfig.from_blob(component, version, raw)


async def history(r: Redis, component: str) -> list[StoredConfig]:
    """Every stored version of ``component``, oldest first (kept for audit, never trimmed)."""
    _, versions, _ = _keys(component)
    raw = await r.hgetall(versions)  # type: ignore[misc]
    out = [StoredConfig.from_blob(component, int(ver), blob) for ver, blob in raw.items()]
    return sorted(out, key=lambda s: s.version)


async def load_current(r: Redis | None, component: str) -> tuple[ComponentConfig, int, str]:
    """The config a starting service uses: Redis' current version, else the file (version 0)."""
    if r is not None:
        stored = await fetch_version(r, component)
        if stored is not None:
            return validate(component, stored.config), stored.version, stored.hash
    cfg = load_file(component)
    return cfg, 0, content_hash(cfg)
