"""The chaos harness' stack: an AOF Redis and the six services as processes, each of
which can be killed (-9), frozen, restarted or doubled; and the probes that say when
a service is back to normal (its consumer groups' lag and pending)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from redis.asyncio import Redis as AsyncRedis

from bench.stack import service_env
from services import SERVICE_NAMES, service_class
from shared.config import ComponentConfig, fetch_version, load_file, store_version
from shared.embedded_redis import EmbeddedRedis, free_port
from shared.http import DEFAULT_PORTS
from shared.messages import PARAM_UPDATED
from shared.procs import die_with_parent

ROOT = Path(__file__).resolve().parent.parent

# "Normal" lag: about a second of ticks behind at most, two batches in flight.
NORMAL_LAG = 1_000
NORMAL_PENDING = 400


class ChaosStack:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="edgebus-chaos-"))
        self.redis = self._redis().start()
        self.r = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self.offset = random.randint(1000, 2300) * 10  # ports below 32768
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = service_env(self.redis.url, self.offset)

    # ---- processes -------------------------------------------------------------------

    def port(self, name: str) -> int:
        return DEFAULT_PORTS[name] + self.offset

    def spawn(self, name: str, key: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        key = key or name
        with open(self.tmp / f"{key}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", "run", name],
                env={**self.env, **env},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        self.procs[key] = proc
        return proc

    def ready(self, name: str, port: int | None = None) -> bool:
        with contextlib.suppress(requests.RequestException):
            url = f"http://127.0.0.1:{port or self.port(name)}/ready"
            return requests.get(url, timeout=1).ok
        return False

    def health(self, name: str) -> tuple[int, dict[str, Any]]:
        try:
            resp = requests.get(f"http://127.0.0.1:{self.port(name)}/health", timeout=1)
            return resp.status_code, resp.json()
        except (requests.RequestException, ValueError):
            return 0, {}

    def metric(self, name: str, metric: str, **labels: str) -> float | None:
        """One sample of a service's /metrics, or None."""
        with contextlib.suppress(requests.RequestException):
            text = requests.get(f"http://127.0.0.1:{self.port(name)}/metrics", timeout=1).text
            for line in text.splitlines():
                if line.startswith(metric + "{") and all(
                    f'{k}="{v}"' in line for k, v in labels.items()
                ):
                    return float(line.rsplit(" ", 1)[1])
        return None

    def start_all(self) -> None:
        for name in SERVICE_NAMES:
            self.spawn(name)
        self.wait(lambda: all(self.ready(n) for n in SERVICE_NAMES), 60, "all services ready")

    def kill(self, key: str) -> None:
        proc = self.procs[key]
        proc.kill()
        proc.wait()

    def term(self, key: str) -> int:
        proc = self.procs[key]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=20)

    def dead(self) -> list[str]:
        return [k for k, p in self.procs.items() if p.poll() is not None]

    def rss_mb(self) -> dict[str, float]:
        out = {}
        for key, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                out[key] = psutil.Process(p.pid).memory_info().rss / 2**20
        return out

    # ---- redis -----------------------------------------------------------------------

    def _redis(self, port: int | None = None) -> EmbeddedRedis:
        # fsync before every reply: "acknowledged" then means "on disk". With the default
        # everysec a loaded host postpones AOF writes, Redis replies anyway, and a kill -9
        # loses up to ~2 s of acknowledged writes (seen here: fills lost, because
        # execution's in-memory done-set skipped the re-delivered orders).
        return EmbeddedRedis(
            self.tmp / "redis", port=port, appendonly=True, extra_args=["--appendfsync", "always"]
        )

    def restart_redis(self, down_s: float) -> None:
        """kill -9 and a new server on the same port and AOF data dir."""
        port = self.redis.port
        self.redis.kill()
        time.sleep(down_s)
        self.redis = self._redis(port).start()

    def set_config(self, component: str, **changes: Any) -> None:
        """Store a new version (as parameter_server would): a hot reload everywhere."""

        async def store() -> None:
            r = AsyncRedis.from_url(self.redis.url, decode_responses=True)
            try:
                stored = await fetch_version(r, component)
                base: ComponentConfig = (
                    service_class(component)().config
                    if stored is None
                    else load_file(component).model_validate(stored.config)
                )
                cfg = base.model_copy(update=changes)
                await store_version(r, component, cfg, "chaos", PARAM_UPDATED)
            finally:
                await r.aclose()

        asyncio.run(store())

    # ---- consumer groups -------------------------------------------------------------

    def groups(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(stream, group) -> (lag, pending) for every group of every stream. A group
        delivered the stream's last entry has lag 0 whatever XINFO says (Redis 7.0
        restores a wrong entries-read counter from the AOF; see Bus.lag)."""
        out = {}
        for key in self.r.scan_iter(_type="stream"):
            last = _id(self.r.xinfo_stream(key)["last-generated-id"])
            for g in self.r.xinfo_groups(key):
                lag = g.get("lag")
                if _id(g["last-delivered-id"]) >= last:
                    lag = 0
                out[(key, g["name"])] = (int(lag) if lag is not None else 10**9, int(g["pending"]))
        return out

    def normal(self, group: str | None = None) -> bool:
        return all(
            lag <= NORMAL_LAG and pending <= NORMAL_PENDING
            for (_, g), (lag, pending) in self.groups().items()
            if group is None or g == group
        )

    def marks(self, group: str | None = None) -> dict[tuple[str, str], str]:
        """(stream, group) -> the stream's last id now: the backlog to catch up with."""
        out: dict[tuple[str, str], str] = {}
        for stream, g in self.groups():
            if group is None or g == group:
                last = self.r.xrevrange(stream, count=1)
                out[(stream, g)] = str(last[0][0]) if last else "0-0"
        return out

    def caught_up(self, marks: dict[tuple[str, str], str]) -> bool:
        """Every group delivered and acknowledged everything up to its mark."""
        for (stream, group), mark in marks.items():
            info = {g["name"]: g for g in self.r.xinfo_groups(stream)}.get(group)
            if info is None or _id(info["last-delivered-id"]) < _id(mark):
                return False
            if self.r.xpending_range(stream, group, "-", mark, 1):
                return False
        return True

    def drained(self) -> bool:
        return all(lag == 0 and pending == 0 for lag, pending in self.groups().values())

    def consumer_pending(self, stream: str, group: str, consumer: str) -> int:
        with contextlib.suppress(redis.ResponseError):
            for c in self.r.xinfo_consumers(stream, group):
                if c["name"] == consumer:
                    return int(c["pending"])
        return 0

    @staticmethod
    def wait(pred: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> float:
        """Seconds until ``pred()`` is true; raises after ``timeout_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                if pred():
                    return time.monotonic() - t0
            time.sleep(interval_s)
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")

    def free_port(self) -> int:
        return free_port()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.r.close()
        self.redis.stop()


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
