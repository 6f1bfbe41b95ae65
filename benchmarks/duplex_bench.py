"""The transcript's serial absorb of ``n`` values (one chain of ``n / 8`` permutations), median
of warm runs (issue 13 item 7: keccakf's ~42k opening values): on the device
(``custom_kernels.poseidon2.duplex``, one warp; where native kernels run) and on the host
(``Transcript.observe_many`` of a NumPy array: the native sponge on one CPU core).

    PYTHONPATH=<checkout> python benchmarks/duplex_bench.py [--values 42000] [--runs 9] [--out F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import mlx.core as mx
import numpy as np

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.field import bb
from mlx_stark.hash import host_native
from mlx_stark.hash.poseidon2 import DEFAULT_CONSTANTS
from mlx_stark.transcript import Transcript


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=42000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    state, values = bb.random((16,), 1), bb.random((args.values,), 2)
    mx.eval(state, values)
    host_values = np.array(values)

    def host():
        t = Transcript()
        t.observe_many(host_values)
        return t._state  # waits for the worker thread's run

    lib = host_native.library(DEFAULT_CONSTANTS)
    report = {"values": args.values, "permutations": -(-args.values // 8), "device": str(mx.default_device()),
              "native_host_sponge": lib is not None, "host_simd": lib is not None and lib.simd}
    runs = {"host": host}
    if custom_kernels.native("transcript.DeviceTranscript") is not None:
        runs["device"] = lambda: mx.eval(kp2.duplex(state, values, 0, True))
    for name, run in runs.items():
        times = []
        for _ in range(args.runs + 2):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        times = times[2:]
        report.update({f"{name}_median_ms": 1e3 * statistics.median(times),
                       f"{name}_min_ms": 1e3 * min(times), f"{name}_max_ms": 1e3 * max(times)})
    print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
