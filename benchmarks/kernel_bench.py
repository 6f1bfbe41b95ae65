"""Native kernels against the MLX-ops reference on the current GPU (same process, same inputs):
Poseidon2 permutations/s, leaf hashing, Merkle commit, DFT, RS encoding (``rs_code_matrix``)
and proof-of-work search. Every pair of results is also checked for bit-equality.

Usage: python benchmarks/kernel_bench.py [--log-rows 22] [--width 42] [--k 4] [--runs 5]
       [--json results.json]
Prints medians of warm runs (one untimed warm-up run first: kernel compilation, caches).
"""
from __future__ import annotations

import json
import os
import statistics
import time

import click
import mlx.core as mx
import numpy as np

import mlx_stark  # noqa: F401  (process set-up)
from mlx_stark import device
from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.field import bb
from mlx_stark.hash import MerkleTree, hash_rows, permute
from mlx_stark.hash.poseidon2 import find_pow_witness
from mlx_stark.poly import dft
from mlx_stark.poly.ntt import lde
from mlx_stark.prover.stacked_pcs import rs_code_matrix


def _run(fn):
    out = fn()
    if isinstance(out, (mx.array, tuple)):
        mx.eval(out)
    return out


def _median(fn, runs: int) -> tuple:
    """(median seconds, last result) of ``runs`` evaluated calls after one warm-up call."""
    _run(fn)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = _run(fn)
        mx.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _same(a, b) -> bool:
    if isinstance(a, MerkleTree):
        return a.root == b.root
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, mx.array):
        return np.array_equal(np.array(a), np.array(b))
    return a == b


@click.command()
@click.option("--log-rows", default=22, show_default=True, help="log2 rows of the committed codeword matrix")
@click.option("--width", default=42, show_default=True, help="columns (stacked width)")
@click.option("--k", "log_rows_per_query", default=4, show_default=True, help="log2 rows per query")
@click.option("--l-skip", default=4, show_default=True)
@click.option("--pow-bits", default=20, show_default=True)
@click.option("--runs", default=5, show_default=True, help="timed warm runs per figure")
@click.option("--json", "json_path", default=None, help="also write the results to this file")
def main(log_rows: int, width: int, log_rows_per_query: int, l_skip: int, pow_bits: int, runs: int,
         json_path: str | None) -> None:
    results = {"device": str(mx.default_device()), "backend": device.backend(), "runs": runs}
    click.echo(f"device: {results['device']} ({results['backend']}), median of {runs} warm runs")

    def compare(name: str, fn, work: float | None = None, unit: str = "", ops_runs: int = runs):
        os.environ["MLX_STARK_KERNELS"] = "ops"
        t_ops, ref = _median(fn, ops_runs)
        os.environ["MLX_STARK_KERNELS"] = "auto"
        t_nat, got = _median(fn, runs)
        row = {"ops_ms": t_ops * 1e3, "native_ms": t_nat * 1e3, "speedup": t_ops / t_nat,
               "bit_equal": _same(got, ref)}
        if work:
            row[f"ops_{unit}"], row[f"native_{unit}"] = work / t_ops, work / t_nat
        results[name] = row
        click.echo(f"{name:<34} ops {t_ops * 1e3:10.2f} ms   native {t_nat * 1e3:9.2f} ms   "
                   f"x{t_ops / t_nat:7.1f}   equal={row['bit_equal']}"
                   + (f"   native {work / t_nat / 1e6:.1f} M{unit}/s" if work else ""))

    def native_only(name: str, fn):
        t_nat, _ = _median(fn, runs)
        results[name] = {"native_ms": t_nat * 1e3}
        click.echo(f"{name:<34} native {t_nat * 1e3:9.2f} ms")

    for logn in (log_rows - 2, log_rows):
        states = bb.random((1 << logn, 16), logn)
        mx.eval(states)
        compare(f"permute 2^{logn}", lambda: permute(states), 1 << logn, "perm")
    rows = 1 << log_rows
    blocks = -(-width // 8)
    codewords = bb.random((rows, width), 1)
    mx.eval(codewords)
    compare(f"hash_rows 2^{log_rows} x {width}", lambda: hash_rows(codewords), rows * blocks, "perm")
    compare(f"merkle commit 2^{log_rows} x {width} k={log_rows_per_query}",
            lambda: MerkleTree.commit(codewords, log_rows_per_query), rows * (blocks + 1), "perm",
            ops_runs=max(1, runs // 2))
    compare(f"dft 2^{log_rows} x {width}", lambda: dft(codewords), rows * width, "elem")
    if device.native_kernels_active():  # kernels alone, without MerkleTree's host copies
        native_only(f"merkle layers 2^{log_rows} x {width} k={log_rows_per_query}",
                    lambda: kp2.merkle_blocks(codewords, log_rows_per_query))
    del codewords
    stacked = bb.random((rows // 2, width), 2)
    mx.eval(stacked)
    compare(f"rs_code_matrix 2^{log_rows - 1} x {width} -> 2^{log_rows}",
            lambda: rs_code_matrix(stacked, l_skip, 1), rows * width, "elem")
    if device.native_kernels_active():
        native_only(f"rs_messages 2^{log_rows - 1} x {width}", lambda: kntt.rs_messages(stacked, l_skip))
        native_only(f"lde 2^{log_rows - 1} x {width} -> 2^{log_rows}", lambda: lde(stacked, 1))
    del stacked
    state = list(range(16))
    compare(f"pow grind {pow_bits} bits", lambda: find_pow_witness(state, 0, pow_bits), ops_runs=1)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
