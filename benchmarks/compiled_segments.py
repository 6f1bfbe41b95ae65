"""Device segments as compiled graphs (``transcript.COMPILE_SEGMENTS``) against the same
segments run as Python, on the GPU: proof bytes and warm whole-call times, in one process.

    PYTHONPATH=<checkout> python benchmarks/compiled_segments.py fib|logup|keccakf [--size N] [--runs 5]
        [--only SEGMENTS] [--blocked] [--out F]

Two inputs of the workload's shape (fib from (0, 1) and from (2, 3); keccakf from seeds 0 and
1; LogUp's data are fixed: one input twice) are proved both ways (a keyed segment runs as Python once, is traced the second time and
replayed after); the second input replays the graph traced for the first, so equal bytes
there show that no per-proof value was baked into the graph. Then ``runs``
warm plain calls each way, interleaved; medians, the launches counted per call, and the
files that appeared in MLX's kernel cache (``MLX_PTX_CACHE_DIR``: its own compiles).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx

import mlx_stark as ms
from mlx_stark import tracing, transcript, workloads
from mlx_stark.airs import fib_trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_call import DEFAULT_SIZE  # noqa: E402


def inputs_pair(name: str, size: int):
    if name == "fib":
        w = workloads.fib(size)
        other = list(w.inputs)
        trace, pv = fib_trace(2, 3, 1 << size, on_device=True)
        other[0] = ms.AirInput(trace, pv)
        return w, [w.inputs, other]
    if name == "logup":  # one input of its shape (its data are fixed)
        w = workloads.logup(size)
        return w, [w.inputs, w.inputs]
    w = workloads.keccakf(size, seed=0)
    return w, [w.inputs, workloads.keccakf(size, seed=1).inputs]


def proof_bytes(pk, inputs, compiled: bool) -> bytes:
    transcript.COMPILE_SEGMENTS = compiled
    return ms.prove(pk, inputs).to_bytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["fib", "logup", "keccakf"])
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default=None,
                    help="compile only these segments (names, comma-separated: logup_gkr, "
                         "mle_rounds, stacked_reduction, whir); the others run as Python")
    ap.add_argument("--blocked", action="store_true",
                    help="all Python calls, then all compiled ones (default: interleaved)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.only:
        names, compiled_segment = set(args.only.split(",")), transcript._compiled_segment

        def only(t, body, inputs, key):
            return compiled_segment(t, body, inputs, key) if key[0] in names else None

        transcript._compiled_segment = only
    size = args.size or DEFAULT_SIZE[args.workload]
    ptx = Path(os.environ.get("MLX_PTX_CACHE_DIR", "/nonexistent"))
    ptx_before = set(ptx.rglob("*")) if ptx.is_dir() else set()
    w, pair = inputs_pair(args.workload, size)
    pk, vk = ms.keygen(w.airs, w.params)
    same = []
    for inputs, runs in zip(pair, (3, 1)):  # Python, the trace, a replay; then a replay
        plain = proof_bytes(pk, inputs, False)
        compiled = [proof_bytes(pk, inputs, True) for _ in range(runs)]
        ms.verify(vk, compiled[-1])
        same.append(all(c == plain for c in compiled))
    compiled_keys = sum(isinstance(v, tuple) for v in transcript._COMPILED.values())
    times = {False: [], True: []}
    launches = {}
    order = ([False] * args.runs + [True] * args.runs if args.blocked
             else [False, True] * args.runs)
    for mode in order:
        transcript.COMPILE_SEGMENTS = mode
        before = tracing.totals()["launches"]
        t = time.perf_counter()
        ms.prove(pk, pair[0])
        times[mode].append(time.perf_counter() - t)
        launches[mode] = tracing.totals()["launches"] - before
    report = {"workload": args.workload, "size": size, "device": str(mx.default_device()),
              "only": args.only, "blocked": args.blocked,
              "bytes_equal_per_input": same, "compiled_segments": compiled_keys,
              "uncompiled_segments": sum(v is None for v in transcript._COMPILED.values()),
              "median_ms_python": 1e3 * statistics.median(times[False]),
              "median_ms_compiled": 1e3 * statistics.median(times[True]),
              "ms_python": [1e3 * t for t in times[False]], "ms_compiled": [1e3 * t for t in times[True]],
              "launches_python": launches[False], "launches_compiled": launches[True],
              # kernels MLX compiled of its own in this process (fused graphs): none is the aim
              "mlx_ptx_files_new": sorted(p.name for p in (set(ptx.rglob("*")) if ptx.is_dir() else set())
                                          - ptx_before)}
    print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    if not all(same):
        raise SystemExit("compiled segments changed the proof bytes")


if __name__ == "__main__":
    main()
