"""Poseidon2 permutations per second and Merkle commit time on the current MLX device.

Usage: python benchmarks/hash_bench.py [--perm-sizes 16,20] [--merkle-log-height 22]
       [--merkle-width 42] [--k 4] [--runs 3]
Prints medians of warm runs (one untimed warm-up run first: compilation, caches).
"""
from __future__ import annotations

import click
import mlx.core as mx

from timing import median_time

import mlx_stark  # noqa: F401  (process set-up)
from mlx_stark.field import bb
from mlx_stark.hash import MerkleTree, permute, permute_host


@click.command()
@click.option("--perm-sizes", default="16,20", show_default=True, help="log2 batch sizes, comma separated")
@click.option("--merkle-log-height", default=22, show_default=True, help="log2 rows of the committed matrix")
@click.option("--merkle-width", default=42, show_default=True, help="columns of the committed matrix")
@click.option("--k", "log_rows_per_query", default=4, show_default=True, help="log2 rows per query")
@click.option("--runs", default=3, show_default=True, help="timed warm runs per figure")
def main(perm_sizes: str, merkle_log_height: int, merkle_width: int, log_rows_per_query: int,
         runs: int) -> None:
    click.echo(f"device: {mx.default_device()}  (median of {runs} warm runs)")
    state = list(range(16))
    t = median_time(lambda: [permute_host(state) for _ in range(200)], runs) / 200
    click.echo(f"permute_host: {t * 1e6:.1f} us per permutation")
    for logn in (int(s) for s in perm_sizes.split(",") if s):
        states = bb.random((1 << logn, 16), logn)
        mx.eval(states)
        t = median_time(lambda: mx.eval(permute(states)), runs)
        click.echo(f"permute batch 2^{logn}: {t * 1e3:.1f} ms, {(1 << logn) / t / 1e6:.3f} M permutations/s")
    if merkle_log_height >= 0:
        matrix = bb.random((1 << merkle_log_height, merkle_width), 1)
        mx.eval(matrix)
        t = median_time(lambda: MerkleTree.commit(matrix, log_rows_per_query), runs)
        perms = (1 << merkle_log_height) * (-(-merkle_width // 8) + 1)  # leaf blocks + compressions
        click.echo(f"Merkle commit 2^{merkle_log_height} x {merkle_width}, k={log_rows_per_query}: "
                   f"{t:.2f} s ({perms / t / 1e6:.3f} M permutations/s)")


if __name__ == "__main__":
    main()
