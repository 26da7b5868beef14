"""`.run/stack.json`: where the stack that `edgebus start` runs can be found.

The launcher writes it once its Redis answers (``state`` "starting"), again when every
service is healthy ("ready"), and removes it when it stops. A CLI command run in another
terminal without $REDIS_URL reads it to reach that stack. A file whose launcher is no
longer running (kill -9, power cut) is stale: it is ignored, and the CLI says so.

The run directory is $EDGEBUS_RUN_DIR, else `.run/` under the project root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import psutil

from shared.config import project_root

FILE_NAME = "stack.json"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # redis-py's and redis-cli's default


def run_dir() -> Path:
    explicit = os.environ.get("EDGEBUS_RUN_DIR")
    return Path(explicit) if explicit else project_root() / ".run"


def stack_path() -> Path:
    return run_dir() / FILE_NAME


@dataclass(frozen=True)
class StackInfo:
    """What another terminal needs to reach a running stack."""

    url: str
    launcher_pid: int
    # psutil's create time of the launcher: a recycled pid is not mistaken for it
    launcher_create_time_s: float
    redis_port: int | None  # None when the stack runs on an external $REDIS_URL
    http_ports: dict[str, int] = field(default_factory=dict)
    started_at: str = ""  # ISO-8601, UTC
    state: str = "starting"  # "starting" until every service is healthy, then "ready"

    @classmethod
    def for_this_process(
        cls, url: str, redis_port: int | None, http_ports: dict[str, int]
    ) -> StackInfo:
        me = psutil.Process()
        return cls(
            url=url,
            launcher_pid=me.pid,
            launcher_create_time_s=me.create_time(),
            redis_port=redis_port,
            http_ports=dict(http_ports),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    def launcher_alive(self) -> bool:
        try:
            proc = psutil.Process(self.launcher_pid)
            return abs(proc.create_time() - self.launcher_create_time_s) < 1.0 and (
                proc.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


def write(info: StackInfo, path: Path | None = None) -> Path:
    """Atomically (write + rename), readable by the owner only: the URL may hold a password."""
    path = path or stack_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(asdict(info), option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
    return path


def read(path: Path | None = None) -> StackInfo | None:
    """The recorded stack, alive or not; None when there is no readable file."""
    path = path or stack_path()
    try:
        doc = orjson.loads(path.read_bytes())
        return StackInfo(
            url=str(doc["url"]),
            launcher_pid=int(doc["launcher_pid"]),
            launcher_create_time_s=float(doc["launcher_create_time_s"]),
            redis_port=None if doc.get("redis_port") is None else int(doc["redis_port"]),
            http_ports={str(k): int(v) for k, v in (doc.get("http_ports") or {}).items()},
            started_at=str(doc.get("started_at", "")),
            state=str(doc.get("state", "starting")),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def remove(owner_pid: int, path: Path | None = None) -> None:
    """Remove the file if ``owner_pid`` wrote it (a newer stack's file stays)."""
    path = path or stack_path()
    info = read(path)
    if info is None or info.launcher_pid == owner_pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class Resolved:
    """Where a CLI command goes: the URL, the running stack if it came from one, and a
    note for the user when a file was found but ignored."""

    url: str
    source: str  # "REDIS_URL", "stack file", or "default"
    stack: StackInfo | None = None
    note: str | None = None


def resolve(path: Path | None = None) -> Resolved:
    """$REDIS_URL if set; else the URL of the live stack in the stack file; else the default."""
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        return Resolved(env_url, "REDIS_URL")
    path = path or stack_path()
    info = read(path)
    if info is not None and info.launcher_alive():
        return Resolved(info.url, "stack file", info)
    note = None
    if info is not None:
        note = (
            f"ignoring {path}: its launcher (pid {info.launcher_pid}) is no longer running "
            f"(a stack stopped uncleanly); trying {DEFAULT_REDIS_URL}"
        )
    elif path.exists():
        note = f"ignoring {path}: unreadable; trying {DEFAULT_REDIS_URL}"
    return Resolved(DEFAULT_REDIS_URL, "default", None, note)
