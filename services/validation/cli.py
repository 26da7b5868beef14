"""`edgebus validate permutation | walk-forward | cpcv | robustness ...` (docs/validation.md).

Each subcommand is a ``main(argv) -> int`` in ``COMMANDS``; it prints one JSON document on
stdout and reports bad input rows on stderr. Exit codes: 0 done (bad rows skipped), 1 an
unreadable input, 2 a usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from services.validation import permutation_cli, robustness_cli, splits_cli

COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "permutation": permutation_cli.main,
    "walk-forward": splits_cli.walk_forward_main,
    "cpcv": splits_cli.cpcv_main,
    "robustness": robustness_cli.main,
}


def _usage() -> str:
    return "usage: edgebus validate {" + ",".join(sorted(COMMANDS)) + "} [options]"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if argv else sys.stderr)
        print(__doc__, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"edgebus validate: unknown test {argv[0]!r}; {_usage()}", file=sys.stderr)
        return 2
    return int(command(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
