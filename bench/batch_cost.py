"""CPU per batch of the consume loop's Redis work: read, decode, commit (acks) and the
next read sent with it, on a Redis the script starts itself.

    python -m bench.batch_cost [--entries 5000] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from shared.bus import Bus, Outbox, connect
from shared.config import BusSettings
from shared.embedded_redis import EmbeddedRedis
from shared.messages import MD_TICKS, Tick


async def measure(url: str, n: int, batch_size: int) -> None:
    r = connect(url)
    bus = Bus(r, "cost", (MD_TICKS,), BusSettings(block_ms=100, batch_size=batch_size))
    await bus.ensure_groups()
    ticks = [
        Tick(symbol="BTC-USD", ts_ns=1_000 + i, bid=100.0, ask=100.5, bid_size=1, ask_size=1)
        for i in range(500)
    ]
    for _ in range(n // 500):
        await bus.publish(ticks)
    cpu0, batches, got = time.process_time(), 0, 0
    while got < n:
        entries = await bus.read()
        got += len(entries)
        batches += 1
        await bus.commit(Outbox(), entries, prefetch=True)
    cpu = time.process_time() - cpu0
    print(
        f"batch_size {batch_size}: {batches} batches, CPU per batch {cpu / batches * 1e6:.1f} us,"
        f" per entry {cpu / got * 1e6:.1f} us"
    )
    bus.close()
    await r.aclose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=5_000)
    ap.add_argument("--batch-size", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(tmp, appendonly=False).start()
        try:
            import uvloop

            uvloop.run(measure(server.url, args.entries, args.batch_size))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
