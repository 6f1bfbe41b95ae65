"""The transcript's serial absorb on the device: ``custom_kernels.poseidon2.duplex`` absorbing
``n`` values (one chain of ``n / 8`` permutations), median of warm runs (issue 13 item 7:
keccakf's ~42k opening values).

    PYTHONPATH=<checkout> python benchmarks/duplex_bench.py [--values 42000] [--runs 9] [--out F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import mlx.core as mx

from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.field import bb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=42000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    state, values = bb.random((16,), 1), bb.random((args.values,), 2)
    mx.eval(state, values)
    times = []
    for _ in range(args.runs + 2):
        t = time.perf_counter()
        mx.eval(kp2.duplex(state, values, 0, True))
        times.append(time.perf_counter() - t)
    times = times[2:]
    report = {"values": args.values, "permutations": -(-args.values // 8), "device": str(mx.default_device()),
              "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times)}
    print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
