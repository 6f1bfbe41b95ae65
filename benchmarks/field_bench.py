"""F and EF multiplications per second on the current MLX device, next to NumPy's best idiom.

Usage: python benchmarks/field_bench.py [--sizes 20,24] [--runs 7]
Prints medians of warm runs and the MLX/NumPy ratio measured in the same run.
"""
from __future__ import annotations

import click
import mlx.core as mx
import numpy as np

from timing import median_time

import mlx_stark  # noqa: F401  (process set-up)
from mlx_stark.field import P, bb, ext


@click.command()
@click.option("--sizes", default="20,24", help="log2 element counts, comma separated")
@click.option("--runs", default=7, show_default=True)
def main(sizes: str, runs: int) -> None:
    click.echo(f"device: {mx.default_device()}  (median of {runs} warm runs)")
    click.echo(f"{'op':<22}{'log n':>6}{'ms':>10}{'M mul/s':>12}{'numpy ms':>10}{'ratio':>8}")
    for logn in (int(s) for s in sizes.split(",")):
        n = 1 << logn
        a, b = bb.random((n,), 1), bb.random((n,), 2)
        an, bn = np.array(a), np.array(b)
        mx.eval(a, b)
        # both sides: canonical uint32 in, canonical uint32 out (NumPy's best idiom: widen, %)
        t_mlx = median_time(lambda: mx.eval(bb.mul(a, b)), runs)
        t_np = median_time(lambda: ((an.astype(np.uint64) * bn) % P).astype(np.uint32), runs)
        click.echo(f"{'F mul':<22}{logn:>6}{t_mlx * 1e3:>10.2f}{n / t_mlx / 1e6:>12.0f}"
                   f"{t_np * 1e3:>10.2f}{t_np / t_mlx:>8.2f}")
        m = n // 4
        ea, eb = ext.random((m,), 3), ext.random((m,), 4)
        mx.eval(ea, eb)
        ean, ebn = np.array(ea), np.array(eb)

        def np_ext_mul():
            a0, a1, a2, a3 = (ean[:, i].astype(np.uint64) for i in range(4))
            b0, b1, b2, b3 = (ebn[:, i].astype(np.uint64) for i in range(4))
            c0 = (a0 * b0 + (a1 * b3 + a2 * b2 + a3 * b1) % P * 11) % P
            c1 = (a0 * b1 + a1 * b0 + (a2 * b3 + a3 * b2) % P * 11) % P
            c2 = (a0 * b2 + a1 * b1 + a2 * b0 + (a3 * b3) % P * 11) % P
            c3 = (a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0) % P
            return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)

        t_mlx = median_time(lambda: mx.eval(ext.mul(ea, eb)), runs)
        t_np = median_time(np_ext_mul, runs)
        click.echo(f"{'EF mul (n/4 elems)':<22}{logn:>6}{t_mlx * 1e3:>10.2f}{m / t_mlx / 1e6:>12.0f}"
                   f"{t_np * 1e3:>10.2f}{t_np / t_mlx:>8.2f}")


if __name__ == "__main__":
    main()
