"""Where a whole ``ms.prove`` call reaches its peak memory: the proof runs untimed (no span
syncs), and at every ``mx.eval`` (each host sync of the prover goes through one) the peak since
the previous one and the memory still active are printed with the prover line that synced.

    PYTHONPATH=<checkout> python benchmarks/memory_probe.py keccakf|logup|fib [--size N] [--fine]

Lazy graphs are evaluated at the syncs, so a stage's working set shows at the sync that ends
it; the second proof is probed (the first one compiles and fills caches). ``--fine`` also
evaluates at every challenge a device transcript samples (extra syncs: a finer split of a
device segment's peak, not the whole call's own evaluation order).
"""
from __future__ import annotations

import argparse
import traceback

import mlx.core as mx

import mlx_stark as ms

_eval = mx.eval
rows: list = []


def _where() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "mlx_stark" in frame.filename and "tracing.py" not in frame.filename:
            return f"{frame.filename.split('mlx_stark')[-1].lstrip('/')}:{frame.lineno} {frame.name}"
    return "?"


def probing_eval(*args):
    _eval(*args)
    rows.append((_where(), mx.get_peak_memory() / 2**30, mx.get_active_memory() / 2**30))
    mx.reset_peak_memory()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["keccakf", "logup", "fib"])
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--fine", action="store_true")
    ap.add_argument("--memory-limit-gb", type=float, default=None, help="mx.set_memory_limit")
    args = ap.parse_args()
    if args.memory_limit_gb:
        mx.set_memory_limit(int(args.memory_limit_gb * 1e9))
    from mlx_stark import workloads
    make = {"keccakf": lambda n: workloads.keccakf(n or 1024), "logup": lambda n: workloads.logup(n or 65536),
            "fib": lambda n: workloads.fib(n or 20)}[args.workload]
    w = make(args.size)
    pk, _ = ms.keygen(w.airs, w.params)
    ms.prove(pk, w.inputs)
    mx.reset_peak_memory()
    from mlx_stark.transcript import DeviceTranscript
    sample_ext = DeviceTranscript.sample_ext

    def evaluated_sample(self):
        x = sample_ext(self)
        mx.eval(x)
        return x

    mx.eval = probing_eval
    if args.fine:
        DeviceTranscript.sample_ext = evaluated_sample
    try:
        ms.prove(pk, w.inputs)
    finally:
        mx.eval = _eval
        DeviceTranscript.sample_ext = sample_ext
    print(f"{w.name}: whole-call peak {max(r[1] for r in rows):.2f} GiB")
    print(f"{'peak GiB':>9} {'active GiB':>10}  synced at")
    for where, peak, active in rows:
        print(f"{peak:9.2f} {active:10.2f}  {where}")


if __name__ == "__main__":
    main()
