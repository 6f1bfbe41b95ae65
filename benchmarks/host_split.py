"""Where a warm whole ``ms.prove`` call's time goes: the Python that builds the lazy graphs,
MLX's evaluation of them (encoding every node and submitting it), and the wait for the device.

    PYTHONPATH=<checkout> python benchmarks/host_split.py fib|logup|keccakf [--size N] [--runs 5] [--out F]

Every evaluation a proof asks for goes through ``mx.eval`` (the reads of
:mod:`mlx_stark.tracing`) or ``mx.async_eval`` (the stages that bound their graphs). Here both
are wrapped: an evaluation first runs as ``mx.async_eval`` (MLX encodes the nodes and submits
them, then returns: *encode*), then as ``mx.eval``, which only waits for the device (*wait*).
The rest of the call is Python and the building of MLX nodes (*build*). The split costs a few
µs per evaluation, so the whole call is reported beside it, with medians over ``runs`` warm
calls. The device's own busy time is not known here: *wait* is the part of it that the host
did not hide behind its own work; it is also reported per prover function that asked for the
evaluation (mean per call).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import mlx.core as mx

import mlx_stark as ms
from mlx_stark import tracing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_call import parser, prepared  # noqa: E402

_EVAL, _ASYNC = mx.eval, mx.async_eval
_T = {"encode": 0.0, "wait": 0.0, "evals": 0, "async_evals": 0}
_SITES: dict = {}  # "module:function" of the prover code that evaluated -> seconds waited


def _site() -> str:
    """The innermost prover frame (outside the read-back choke point) that asked to evaluate."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        if "mlx_stark" in name and not name.endswith(("tracing.py", "arrays.py")):
            return f"{Path(name).stem}:{f.f_code.co_name}"
        f = f.f_back
    return "?"


def _timed_eval(*args, **kw):
    t0 = time.perf_counter()
    _ASYNC(*args, **kw)
    t1 = time.perf_counter()
    _EVAL(*args, **kw)
    t2 = time.perf_counter()
    _T["encode"] += t1 - t0
    _T["wait"] += t2 - t1
    _T["evals"] += 1
    site = _site()
    _SITES[site] = _SITES.get(site, 0.0) + t2 - t1


def _timed_async(*args, **kw):
    t0 = time.perf_counter()
    _ASYNC(*args, **kw)
    _T["encode"] += time.perf_counter() - t0
    _T["async_evals"] += 1


def main() -> None:
    ap = parser(runs=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    pk, inputs = prepared(args.workload, args.size)
    plain = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ms.prove(pk, inputs)
        plain.append(time.perf_counter() - t0)
    mx.eval, mx.async_eval = _timed_eval, _timed_async
    rows = []
    try:
        for _ in range(args.runs):
            for k in _T:
                _T[k] = 0
            before = tracing.totals()
            t0 = time.perf_counter()
            ms.prove(pk, inputs)
            total = time.perf_counter() - t0
            after = tracing.totals()
            rows.append(dict(_T, total=total, build=total - _T["encode"] - _T["wait"],
                             launches=after["launches"] - before["launches"],
                             syncs=after["syncs"] - before["syncs"]))
    finally:
        mx.eval, mx.async_eval = _EVAL, _ASYNC
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    report = {"wait_per_site_s": {k: v / args.runs for k, v in _SITES.items()}, "workload": args.workload, "size": args.size, "device": str(mx.default_device()),
              "plain_call_median_s": statistics.median(plain), "split_median": med, "runs": rows}
    text = json.dumps(report, indent=1)
    print(f"{args.workload}: plain call {1e3 * report['plain_call_median_s']:.1f} ms; split call "
          f"{1e3 * med['total']:.1f} ms = build {1e3 * med['build']:.1f} + encode "
          f"{1e3 * med['encode']:.1f} + wait {1e3 * med['wait']:.1f} ms "
          f"({med['evals']:.0f} evals, {med['async_evals']:.0f} async evals, "
          f"{med['launches']:.0f} launches)")
    print("wait per evaluating site, mean per call (ms): " + ", ".join(
        f"{k} {1e3 * v / args.runs:.2f}" for k, v in sorted(_SITES.items(), key=lambda kv: -kv[1])))
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
