"""Time whole ``ms.prove`` calls of a workload, then the span split, in one process.

    PYTHONPATH=<checkout> python benchmarks/whole_call.py keccakf|logup|fib [--size N] [--runs 5] [--host-trace] [--out F]

``--size``: keccakf permutations (default 1024), logup scale (65536), fib log height (20).

Works on any checkout that has :mod:`mlx_stark.workloads` with all three workloads (main since
the fib workload's device trace), so main before and after a change can be measured on one
machine in one session.
Reports the first (cold) call, then medians of ``runs`` warm plain calls (no spans), then
medians per span of ``runs`` timed runs; sync/launch counters where the checkout has them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time

import mlx.core as mx
import numpy as np

import mlx_stark as ms
from mlx_stark import tracing


DEFAULT_SIZE = {"keccakf": 1024, "logup": 65536, "fib": 20}  # the flagship instances


def workload(name: str, size: int | None):
    """``(AIRs, parameters, inputs)`` of a workload of :mod:`mlx_stark.workloads` (keccakf's
    and fib's main traces built on the device, as the CLI builds them)."""
    from mlx_stark import workloads

    w = workloads.build(name, size or DEFAULT_SIZE[name])
    return w.airs, w.params, w.inputs


def parser(runs: int) -> argparse.ArgumentParser:
    """The arguments every measurement script takes: the workload, its size and the runs."""
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["keccakf", "logup", "fib"])
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--runs", type=int, default=runs)
    return ap


def prepared(name: str, size: int | None, warmups: int = 2):
    """The workload's proving key and inputs after ``warmups`` proofs (caches filled, kernels
    compiled): ``(pk, inputs)``."""
    airs, params, inputs = workload(name, size)
    pk, _ = ms.keygen(airs, params)
    for _ in range(warmups):
        ms.prove(pk, inputs)
    return pk, inputs


def main() -> None:
    ap = parser(runs=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--memory-limit-gb", type=float, default=None,
                    help="mx.set_memory_limit for the process (MLX then waits for finished work "
                         "to free memory when more is in use)")
    ap.add_argument("--host-trace", action="store_true",
                    help="hand prove NumPy matrices (the upload is then part of every call)")
    args = ap.parse_args()
    counted = hasattr(tracing, "totals")
    if args.memory_limit_gb:
        mx.set_memory_limit(int(args.memory_limit_gb * 1e9))
    t0 = time.perf_counter()
    airs, params, inputs = workload(args.workload, args.size)
    mx.eval([i.common_main for i in inputs if isinstance(i.common_main, mx.array)])
    trace_seconds = time.perf_counter() - t0
    if args.host_trace:
        inputs = [ms.AirInput(np.array(i.common_main), i.public_values, i.cached_mains) for i in inputs]
    pk, vk = ms.keygen(airs, params)
    setup = time.perf_counter() - t0
    t = time.perf_counter()
    proof = ms.prove(pk, inputs)
    cold = time.perf_counter() - t
    ms.prove(pk, inputs)  # second warm-up
    calls = []
    for _ in range(args.runs):
        before = tracing.totals() if counted else {}
        mx.reset_peak_memory()
        t = time.perf_counter()
        proof = ms.prove(pk, inputs)
        calls.append({"seconds": time.perf_counter() - t, "peak_mb": mx.get_peak_memory() / 2**20,
                      **{k: v - before[k] for k, v in (tracing.totals() if counted else {}).items()}})
    spans, counters = [], []
    for _ in range(args.runs):
        with tracing.timing() as roots:
            ms.prove(pk, inputs)
        spans.append(tracing.flatten(roots))
        if counted:
            counters.append(tracing.flatten_counters(roots))
    ms.verify(vk, proof.to_bytes())
    secs = [c["seconds"] for c in calls]
    report = {
        "workload": args.workload, "size": args.size, "device": str(mx.default_device()), "trace_s": trace_seconds,
        "host_trace": args.host_trace, "setup_s": setup,
        "first_call_s": cold, "call_median_s": statistics.median(secs), "call_min_s": min(secs),
        "call_max_s": max(secs), "calls": calls,
        "spans_median_s": {k: statistics.median(s.get(k, 0.0) for s in spans) for k in spans[0]},
        "counters_last": counters[-1] if counters else None,
        "proof_bytes": len(proof.to_bytes()),
        "proof_sha256": hashlib.sha256(proof.to_bytes()).hexdigest(),
        "memory_limit_gb": args.memory_limit_gb,
    }
    print(json.dumps({k: v for k, v in report.items() if k not in ("calls", "counters_last")}, indent=1))
    if counted:
        print(tracing.format_tree(roots))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
