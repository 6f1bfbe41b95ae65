"""How long a host trace takes to reach the device: the keccakf 1024 matrix ``(2^15, 2633)``
uint32 (345 MB) as ``prove`` receives it from NumPy.

    python benchmarks/upload.py [--runs 5] [--out F]

Times, per run, on a fresh copy: ``mx.array`` alone (the host copy into MLX memory), the first
device read after it (on CUDA, managed pages migrate here), and the same two through 8 row
blocks joined on the device. Medians in ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import mlx.core as mx
import numpy as np


def _ms(f):
    t = time.perf_counter()
    out = f()
    return (time.perf_counter() - t) * 1e3, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    host = np.random.default_rng(0).integers(0, 2**31 - 2**27, size=(1 << 15, 2633), dtype=np.uint32)
    rows = {"whole: mx.array": [], "whole: first device read": [],
            "8 blocks: mx.array": [], "8 blocks: concatenate + first read": []}
    for _ in range(args.runs + 1):
        t, x = _ms(lambda: mx.array(host))
        r, _ = _ms(lambda: mx.max(x).item())
        t2, parts = _ms(lambda: [mx.array(b) for b in np.split(host, 8)])
        r2, _ = _ms(lambda: mx.max(mx.concatenate(parts)).item())
        for k, v in zip(rows, (t, r, t2, r2)):
            rows[k].append(v)
        del x, parts
    med = {k: statistics.median(v[1:]) for k, v in rows.items()}  # the first run warms up
    for k, v in med.items():
        print(f"{k:40s} {v:8.1f} ms")
    if args.out:
        json.dump({"device": str(mx.default_device()), "median_ms": med, "runs_ms": rows},
                  open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
