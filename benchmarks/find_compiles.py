"""Where in a proof MLX compiles a CUDA kernel of its own (a fused graph, or a JIT kernel such
as a gather): one process with a fresh ``MLX_PTX_CACHE_DIR``, spans on, and at every span's
entry the files that appeared in that cache since the previous span's entry.

    PYTHONPATH=<checkout> python benchmarks/find_compiles.py keccakf|logup|fib

Our own kernels are cubins in ``MLX_STARK_CACHE`` and do not show; on the native path a new
file here is a compile nobody meant to pay for (docs/tracking/cold-start.md).
"""
from __future__ import annotations

import os
import sys
import tempfile

PTX = tempfile.mkdtemp(prefix="mlx-ptx-")
os.environ["MLX_PTX_CACHE_DIR"] = PTX

import mlx.core as mx  # noqa: E402

from mlx_stark import tracing, workloads  # noqa: E402
from mlx_stark.keygen import keygen  # noqa: E402
from mlx_stark.prover.prove import prove  # noqa: E402

seen: set = set()
last = ["(process start)"]


def report(entering: str, depth: int = 0) -> None:
    mx.synchronize()
    new = sorted(set(os.listdir(PTX)) - seen)
    if new:
        print(f"between entering {last[0]!r} and {entering!r}: {new}", flush=True)
    seen.update(new)
    last[0] = entering


def main(name: str) -> None:
    tracing.listener = report
    with tracing.timing():
        with tracing.span("workload (trace generation)"):
            w = {"keccakf": workloads.keccakf, "logup": lambda: workloads.logup(65536),
                 "fib": workloads.fib}[name]()
            mx.eval([x.common_main for x in w.inputs if isinstance(x.common_main, mx.array)])
        with tracing.span("keygen"):
            pk, _ = keygen(w.airs, w.params)
        prove(pk, w.inputs)
        report("(end)")
    print(f"{len(seen)} files in MLX's cache", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
