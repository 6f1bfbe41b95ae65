"""What one MLX node costs the host to build and to evaluate, by kind (issue 13: a small proof's
"encode" part): ``count`` nodes of one kind chained in one graph, built, then evaluated with
one ``mx.eval``; medians of warm runs, µs per node. Kinds: views (``Reshape``, ``Slice``),
MLX's own elementwise kernel (``Add``), a 2-array ``mx.concatenate`` (a copy launch per input
on CUDA), and two of our kernels where native kernels run (the concat kernel of one input,
and a Poseidon2 compression, whose cubin is ~100x larger: each launch hands MLX the cubin). fib's proof evaluates ~400 of our kernels, ~65 MLX kernels and
~800 views (``benchmarks/dry_native.py``).

    PYTHONPATH=<checkout> python benchmarks/node_cost.py [--count 1000] [--runs 7] [--out F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import mlx.core as mx

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import indexing
from mlx_stark.custom_kernels import poseidon2 as kp2


def _chains(native: bool) -> dict:
    """Kind -> a function building ``count`` chained nodes of that kind from ``x`` ``(64,)``
    (the slices from one tile of it)."""
    def reshape(x, count):
        for i in range(count):
            x = x.reshape((8, 8) if i % 2 == 0 else (64,))
        return x

    def slice_(x, count):
        x = mx.tile(x, (-(-(count + 1) // 64),))  # (one Tile node: long enough to slice)
        for _ in range(count):
            x = x[1:]
        return x

    def add(x, count):
        for _ in range(count):
            x = x + x
        return x

    def concatenate(x, count):
        for _ in range(count):
            x = mx.concatenate([x[:32], x[32:]])
        return x

    chains = {"reshape": reshape, "slice": slice_, "add": add, "concatenate": concatenate}
    if native:
        def ours(x, count):
            for _ in range(count):
                x = indexing.concat_flat([x])
            return x
        def ours_poseidon2(x, count):  # a kernel with the permutation: a ~100x larger cubin
            y = x[:8].reshape(1, 8)
            for _ in range(count):
                y = kp2.compress(y, y)
            return y
        chains["our_kernel"] = ours
        chains["our_poseidon2_kernel"] = ours_poseidon2
    return chains


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    native = custom_kernels.native("arrays.concat_flat") is not None
    x0 = mx.arange(64, dtype=mx.uint32)
    mx.eval(x0)
    report = {"device": str(mx.default_device()), "count": args.count, "native": native}
    for kind, chain in _chains(native).items():
        builds, evals = [], []
        for _ in range(args.runs + 1):  # the first run warms up
            t0 = time.perf_counter()
            y = chain(x0, args.count)
            t1 = time.perf_counter()
            mx.eval(y)
            t2 = time.perf_counter()
            builds.append(t1 - t0)
            evals.append(t2 - t1)
        report[kind] = {"build_us_per_node": 1e6 * statistics.median(builds[1:]) / args.count,
                        "eval_us_per_node": 1e6 * statistics.median(evals[1:]) / args.count}
        print(f"{kind:12s} build {report[kind]['build_us_per_node']:6.2f} us/node, "
              f"eval {report[kind]['eval_us_per_node']:6.2f} us/node")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
