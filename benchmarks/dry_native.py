"""The native (CUDA) path's host work, on a machine without a GPU: a dry run.

    PYTHONPATH=<checkout> python benchmarks/dry_native.py fib|logup|keccakf [--size N] [--runs 3] [--profile F]

Every custom-kernel launch returns lazy zero arrays of its output shapes instead of running,
and the device reports itself as CUDA, so a proof walks the native path's Python exactly as on
the GPU: the same stages, kernel selections, launches and MLX nodes between them (zeros keep
every check of the proof satisfied: no proof-of-work miss, a balanced GKR root, no violated
constraint; the host-synced proof-of-work search's witness is accepted). The proof it makes is meaningless and is not verified. What it measures is the
host side that a small proof on the GPU is bound by: launches per span, and (``--profile``)
where the Python time goes, and (``--nodes``) how many MLX nodes each proof evaluates, our
kernels (``CustomKernel``) among them. MLX's CPU evaluation of the nodes between kernels is in the wall
time too, so the seconds are not the GPU's; compare counts, and profiles of the same machine.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import mlx.core as mx

import mlx_stark as ms
from mlx_stark import custom_kernels, device, tracing, transcript

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_call import parser, prepared  # noqa: E402


_COUNTING = False  # count_nodes() is on


def _dry_build(src, dialect):
    def launch(inputs, grid, threadgroup, output_shapes, output_dtypes, init_value=None):
        zeros = [mx.zeros(shape, dtype=dtype) for shape, dtype in zip(output_shapes, output_dtypes)]
        if not _COUNTING:
            return zeros
        # the outputs depend on the inputs (a Depends node), so the count sees the graph above
        # them (the CPU then evaluates it: the call is slower, so only when counting)
        return mx.depends(zeros, [x for x in inputs if isinstance(x, mx.array)])
    return launch


def dry() -> None:
    """Route every launch to :func:`_dry_build` and make the CPU look like a CUDA device."""
    custom_kernels._build = _dry_build
    device._gpu_backend = lambda: "cuda"
    device.backend = lambda: "cuda"

    def accept(self, bits, witness):  # the host-synced search's witness (zero) is no witness here
        if bits:
            self.observe(witness)
            self.sample_bits(bits)
        return True
    transcript.Transcript.check_witness = accept


_NODES: Counter = Counter()  # primitive name -> nodes evaluated (with --nodes)
_EVAL, _ASYNC = mx.eval, mx.async_eval


def _flat(args) -> list:
    out = []
    for a in args:
        if isinstance(a, mx.array):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out += _flat(a)
        elif isinstance(a, dict):
            out += _flat(list(a.values()))
    return out


def _count(args) -> None:
    arrays = _flat(args)
    if arrays:
        text = io.StringIO()
        mx.export_to_dot(text, *arrays)  # the unevaluated graph behind the arrays
        _NODES.update(re.findall(r'label ="([^"]+)", shape=rectangle', text.getvalue()))


def _counted_eval(*args):
    _count(args)
    return _EVAL(*args)


def _counted_async_eval(*args):
    _count(args)
    return _ASYNC(*args)


def count_nodes(on: bool = True) -> None:
    """Count the MLX nodes every evaluation runs, by primitive (``_NODES``), or stop."""
    global _COUNTING
    _COUNTING = on
    mx.eval, mx.async_eval = (_counted_eval, _counted_async_eval) if on else (_EVAL, _ASYNC)


def _spans(roots) -> dict:
    out = {}
    for root in roots:
        for depth, rec in root.walk():
            out.setdefault(rec.name, []).append((depth, rec.counters.get("launches", 0)))
    return out


def main() -> None:
    ap = parser(runs=3)
    ap.add_argument("--profile", default=None, help="write a cProfile of the runs here")
    ap.add_argument("--nodes", action="store_true",
                    help="count the MLX nodes one proof evaluates, by primitive (slows the runs)")
    args = ap.parse_args()
    dry()
    mx.set_default_device(mx.cpu)
    pk, inputs = prepared(args.workload, args.size, warmups=1)
    if args.nodes:
        count_nodes()
    with tracing.timing() as roots:
        ms.prove(pk, inputs)
    if args.nodes:
        count_nodes(False)
        print(f"MLX nodes evaluated in one proof (with the spans' own evaluations; a Depends "
              f"stands for one of our kernels, with a Full and a Broadcast for its zero outputs): "
              f"{sum(_NODES.values())}: " + ", ".join(f"{k} {v}" for k, v in _NODES.most_common()))
    for name, rows in _spans(roots).items():
        depth, launches = rows[0]
        total = sum(n for _, n in rows)
        print(f"{'  ' * depth}{name:<{60 - 2 * depth}} launches={total}" + (f" x{len(rows)}" if len(rows) > 1 else ""))
    prof = cProfile.Profile() if args.profile else None
    walls = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        ms.prove(pk, inputs)
        if prof:
            prof.disable()
        walls.append(time.perf_counter() - t0)
    print(f"{args.workload}: dry call median {1e3 * statistics.median(walls):.1f} ms over {args.runs} "
          f"({', '.join(f'{1e3 * w:.1f}' for w in walls)})")
    if prof:
        text = io.StringIO()
        for key in ("tottime", "cumulative"):
            pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key).print_stats(60)
        Path(args.profile).write_text(text.getvalue())


if __name__ == "__main__":
    main()
