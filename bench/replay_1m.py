"""Replay of a 1,000,000-row quote file through feature_bus: rows/s and peak memory.

Not part of `make test`. Run: `.venv/bin/python bench/replay_1m.py [ROWS]`.
Starts an embedded Redis and feature_bus (source: replay) as separate processes,
generates the CSV in a temp dir, runs `edgebus replay FILE --speed 0`, and samples the
resident memory of the replay process, feature_bus and Redis every 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.config import store_version, validate  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.messages import PARAM_UPDATED  # noqa: E402


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(1)
    mids = {"BTC-USD": 65000.0, "ETH-USD": 3400.0, "SOL-USD": 150.0}
    names = list(mids)
    t0 = 1_704_067_200_000_000_000
    with path.open("w") as fh:
        fh.write("ts,symbol,bid,ask,bid_size,ask_size\n")
        for i in range(rows):
            s = names[i % 3]
            m = mids[s] = mids[s] * (1 + rng.gauss(0, 2e-4))
            h = m * 1e-4
            fh.write(
                f"{t0 + i * 1_000_000},{s},{m - h:.4f},{m + h:.4f},{rng.random() * 5:.3f},1.5\n"
            )


async def configure(url: str) -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "conf/feature_bus.yml").read_text())
    doc["source"] = "replay"
    doc.setdefault("bus", {})["batch_size"] = 1000
    r = Redis.from_url(url, decode_responses=True)
    await store_version(r, "feature_bus", validate("feature_bus", doc), "bench", PARAM_UPDATED)
    await r.aclose()


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    edgebus = str(Path(sys.executable).parent / "edgebus")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "quotes.csv"
        t = time.perf_counter()
        write_csv(csv_path, rows)
        print(
            f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s"
        )
        redis = EmbeddedRedis(Path(tmp) / "redis", appendonly=False).start()
        env = {
            **os.environ,
            "REDIS_URL": redis.url,
            "EDGEBUS_HOME": str(ROOT),
            "EDGEBUS_PORT_OFFSET": str(20000 + random.randint(0, 20000)),
            "EDGEBUS_LOG_LEVEL": "WARNING",
        }
        fb = None
        try:
            asyncio.run(configure(redis.url))
            fb = subprocess.Popen([edgebus, "run", "feature_bus"], env=env)
            time.sleep(2.0)
            t = time.perf_counter()
            rp = subprocess.Popen([edgebus, "replay", str(csv_path), "--speed", "0"], env=env)
            procs = {
                "replay": rp.pid,
                "feature_bus": fb.pid,
                "redis": redis.proc.pid if redis.proc else 0,
            }
            peak = dict.fromkeys(procs, 0.0)
            while rp.poll() is None:
                for name, pid in procs.items():
                    with contextlib.suppress(psutil.Error):
                        peak[name] = max(peak[name], psutil.Process(pid).memory_info().rss / 2**20)
                time.sleep(0.2)
            elapsed = time.perf_counter() - t
            print(
                f"exit code {rp.returncode}; {rows:,} rows in {elapsed:.1f} s = {rows / elapsed:,.0f} rows/s"
            )
            for name, mb in peak.items():
                print(f"peak RSS {name}: {mb:.0f} MB")
            return rp.returncode
        finally:
            if fb is not None:
                fb.terminate()
                fb.wait(10)
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
