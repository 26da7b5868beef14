"""The permutation test's false-positive rate: random positions on random returns.

    .venv/bin/python scripts/permutation_fpr.py [--experiments 30000] [--periods 100]
        [--permutations 200] [--seed 90000]

Each experiment draws Gaussian returns and positions uniform on {-1, 0, 1}, independent
of them (H0 holds), and runs the Sharpe permutation test (shuffle method, vectorised in
services/validation/permutation.p_values_many). Prints one JSON line: the share of
experiments with p <= 0.01 against its exact expectation (k + 1) / (N + 1) with
k = floor(0.01 (N + 1)) - 1, and the binomial tail probability of a count that high.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import orjson
from scipy import stats

from services.validation import permutation as perm

CHUNK = 100  # experiments per vectorised call (memory: CHUNK * N * periods cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--experiments", type=int, default=30_000)
    p.add_argument("--periods", type=int, default=100)
    p.add_argument("--permutations", type=int, default=200)
    p.add_argument("--seed", type=int, default=90_000)
    args = p.parse_args(argv)
    p_values = []
    for chunk in range(math.ceil(args.experiments / CHUNK)):
        rows = min(CHUNK, args.experiments - chunk * CHUNK)
        rng = np.random.default_rng(args.seed + chunk)
        ret = rng.normal(0.0, 0.01, size=(rows, args.periods))
        pos = rng.choice([-1.0, 0.0, 1.0], size=(rows, args.periods))
        p_values.append(perm.p_values_many(pos, ret, n_permutations=args.permutations, rng=rng))
    pv = np.concatenate(p_values)
    rejected = int(np.count_nonzero(pv <= perm.DEFAULT_ALPHA))
    n_perm = args.permutations
    expected = math.floor(perm.DEFAULT_ALPHA * (n_perm + 1) + 1e-9) / (n_perm + 1)
    doc = {
        "experiments": int(pv.size),
        "periods": args.periods,
        "n_permutations": n_perm,
        "rejected": rejected,
        "false_positive_rate": rejected / pv.size,
        "expected_rate": expected,
        "binomial_sf": float(stats.binom(pv.size, expected).sf(rejected - 1)),
    }
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
