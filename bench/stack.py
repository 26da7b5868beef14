"""The stack as real processes on a Redis the benchmark starts itself."""

from __future__ import annotations

import contextlib
import os
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

from services import SERVICE_NAMES
from shared.embedded_redis import EmbeddedRedis
from shared.http import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parent.parent


def service_env(redis_url: str, port_offset: int) -> dict[str, str]:
    """The environment of a service process run by the bench or the chaos suite."""
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        EDGEBUS_HOME=str(ROOT),
        EDGEBUS_PORT_OFFSET=str(port_offset),
        EDGEBUS_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("EDGEBUS_CONSUMER", None)  # each process its own stable consumer name
    return env


class BenchStack:
    def __init__(self, services: tuple[str, ...] = SERVICE_NAMES) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="edgebus-bench-"))
        self.redis = EmbeddedRedis(self.tmp / "redis", appendonly=True).start()
        self.r = redis.Redis.from_url(self.redis.url, decode_responses=True)
        self.offset = random.randint(300, 900) * 10
        self.services = services
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = service_env(self.redis.url, self.offset)

    def port(self, name: str) -> int:
        return DEFAULT_PORTS[name] + self.offset

    def start(self, only: tuple[str, ...] | None = None) -> None:
        for name in only or self.services:
            log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", "run", name],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        for name in only or self.services:
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{self.port(name)}/ready", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or self.procs[name].poll() is not None:
                    raise RuntimeError(
                        f"{name} did not become ready; see {self.tmp / (name + '.log')}"
                    )
                time.sleep(0.1)

    def health(self, name: str) -> dict[str, Any]:
        return requests.get(f"http://127.0.0.1:{self.port(name)}/health", timeout=2).json()

    def rss_mb(self) -> float:
        total = 0.0
        for p in self.procs.values():
            with contextlib.suppress(psutil.Error):
                total = max(total, psutil.Process(p.pid).memory_info().rss / 2**20)
        return total

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()

    def close(self) -> None:
        self.stop()
        self.r.close()
        self.redis.stop()
