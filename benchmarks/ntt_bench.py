"""RS encoding (``rs_code_matrix``: per-block iDFT + zeta, coset copies, batched DFT) on the
current MLX device, for the keccakf stacked shape (2^21 × 42 -> 2^22 × 42) and smaller ones.

Usage: python benchmarks/ntt_bench.py [--logs 16,18,21] [--width 42] [--runs 5] [--blowup 1]
Prints the median (and min) of warm runs per stacked height, plus a plain DFT for reference.
"""
from __future__ import annotations

import statistics
import time

import click
import mlx.core as mx

import mlx_stark  # noqa: F401  (process set-up)
from mlx_stark.field import bb
from mlx_stark.poly import dft
from mlx_stark.prover.stacked_pcs import rs_code_matrix


def _times(fn, runs: int) -> list:
    mx.eval(fn())  # warm-up: compilation, twiddle caches
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        mx.eval(fn())
        out.append(time.perf_counter() - t)
    return out


@click.command()
@click.option("--logs", default="16,18,21", help="log2 stacked heights, comma separated")
@click.option("--width", default=42, show_default=True, help="stacked width W")
@click.option("--runs", default=5, show_default=True)
@click.option("--blowup", "log_blowup", default=1, show_default=True)
@click.option("--l-skip", default=4, show_default=True)
def main(logs: str, width: int, runs: int, log_blowup: int, l_skip: int) -> None:
    click.echo(f"device: {mx.default_device()}  width {width}, log_blowup {log_blowup}, "
               f"l_skip {l_skip}  (median [min] of {runs} warm runs)")
    click.echo(f"{'log m':>6}{'rs_code_matrix ms':>20}{'min':>10}{'dft(2^L0) ms':>16}{'Melem/s':>10}")
    for m in (int(s) for s in logs.split(",")):
        q = bb.random((1 << m, width), seed=m)
        mx.eval(q)
        t_rs = _times(lambda: rs_code_matrix(q, l_skip, log_blowup), runs)
        big = bb.random((1 << (m + log_blowup), width), seed=m + 1)
        mx.eval(big)
        t_dft = _times(lambda: dft(big), runs)
        del big
        med = statistics.median(t_rs)
        elems = (width << (m + log_blowup)) / med / 1e6
        click.echo(f"{m:>6}{med * 1e3:>20.1f}{min(t_rs) * 1e3:>10.1f}"
                   f"{statistics.median(t_dft) * 1e3:>16.1f}{elems:>10.1f}")


if __name__ == "__main__":
    main()
