"""Where in a proof MLX compiles a CUDA kernel of its own (a fused graph, or a JIT kernel such
as a gather): one process with a fresh ``MLX_PTX_CACHE_DIR``, spans on, and at every span's
entry the files that appeared in that cache since the previous span's entry. Also lists the
lines of mlx-stark that index an MLX array with a bare integer (``x[0]``: MLX makes that a
Gather, unlike ``x[0, ...]``, a view), with their counts.

    PYTHONPATH=<checkout> python benchmarks/find_compiles.py keccakf|logup|fib

Our own kernels are cubins in ``MLX_STARK_CACHE`` and do not show; on the native path a new
file here is a compile nobody meant to pay for (docs/tracking/cold-start.md).
"""
from __future__ import annotations

import collections
import os
import sys
import tempfile
import traceback

PTX = tempfile.mkdtemp(prefix="mlx-ptx-")
os.environ["MLX_PTX_CACHE_DIR"] = PTX

import mlx.core as mx  # noqa: E402

from mlx_stark import tracing, workloads  # noqa: E402
from mlx_stark.keygen import keygen  # noqa: E402
from mlx_stark.prover.prove import prove  # noqa: E402

seen: set = set()
last = ["(process start)"]
int_indexing: collections.Counter = collections.Counter()
_getitem = mx.array.__getitem__


def _counting_getitem(self, key):
    if isinstance(key, int) and not isinstance(key, bool):
        frame = traceback.extract_stack(limit=2)[0]
        if "mlx_stark" in frame.filename:
            int_indexing[(frame.filename.split("mlx_stark")[-1], frame.lineno)] += 1
    return _getitem(self, key)


def report(entering: str, depth: int = 0) -> None:
    mx.synchronize()
    new = sorted(set(os.listdir(PTX)) - seen)
    if new:
        print(f"between entering {last[0]!r} and {entering!r}: {new}", flush=True)
    seen.update(new)
    last[0] = entering


def main(name: str) -> None:
    tracing.listener = report
    mx.array.__getitem__ = _counting_getitem
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
    for (where, line), count in sorted(int_indexing.items()):
        print(f"x[int] (a gather) at mlx_stark{where}:{line}, {count} times", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
