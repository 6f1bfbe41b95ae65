"""Warm-run measurement of a workload: the KPI contract's spans, medians and spreads.

The KPI is the plain ``prove`` call, timed from outside with no spans: what a user waits for.
Span runs follow (every span synchronises the device at its end, see :mod:`mlx_stark.tracing`)
to split it into stages; the first ``warmup`` runs are discarded (compilation, caches).
"""
from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timezone

import mlx.core as mx

from . import device, tracing
from .keygen import keygen
from .prover.prove import prove
from .verifier.verify import verify
from .workloads import Workload

KPI_SPANS = (
    "stark_prove_excluding_trace",
    "prover.main_trace_commit",
    "rs_code_matrix",
    "merkle_tree",
    "prover.rap_constraints",
    "prover.rap_constraints.logup_gkr",
    "prover.rap_constraints.round0",
    "prover.rap_constraints.mle_rounds",
    "prover.openings",
    "prover.openings.stacked_reduction",
    "prover.openings.whir",
)


CALL = "prove() call"  # the summary row of the plain calls


def measure(workload: Workload, runs: int = 5, warmup: int = 1, check: bool = True,
            progress=None) -> tuple[dict, bytes]:
    """Prove ``workload`` ``warmup`` times untimed, ``runs`` times as plain timed ``prove`` calls
    (no spans, so no span syncs: what a user waits for), then ``runs`` times with spans on.

    Returns a JSON-ready report and the last run's proof bytes (verified when ``check``). The
    report holds per-run raw figures, and a summary whose first row is the plain call (median /
    min / max seconds, syncs, launches, peak MB) followed by each KPI span (median / min / max
    seconds and the median of its counters). ``span_sync_cost`` is how much the timed spans'
    own syncs add to the whole call (median span total minus median call).
    ``progress(i, total, seconds)`` is called after each run ``i``, warm-up runs first."""
    pk, vk = keygen(workload.airs, workload.params)
    total = warmup + 2 * runs
    raw, calls, proof = [], [], None
    for i in range(total):
        if i < warmup + runs:
            before = tracing.totals()
            mx.reset_peak_memory()
            t = time.perf_counter()
            proof = prove(pk, workload.inputs)
            seconds = time.perf_counter() - t
            after = tracing.totals()
            if i >= warmup:
                calls.append({"seconds": seconds, "peak_mb": mx.get_peak_memory() / 2**20,
                              **{k: after[k] - before[k] for k in after}})
        else:
            with tracing.timing() as roots:
                proof = prove(pk, workload.inputs)
            spans = tracing.flatten(roots)
            seconds = spans.get("stark_prove_excluding_trace", 0.0)
            raw.append({"spans": spans, "counters": tracing.flatten_counters(roots),
                        "tree": [r.to_dict() for r in roots]})
        if progress:
            progress(i, total, seconds)
    blob = proof.to_bytes()
    verify_seconds = None
    if check:
        t = time.perf_counter()
        verify(vk, blob)
        verify_seconds = time.perf_counter() - t
    summary = {CALL: {**_spread([c["seconds"] for c in calls]),
                      **{k: statistics.median(c[k] for c in calls)
                         for k in ("syncs", "launches", "peak_mb")}}}
    for name in KPI_SPANS:
        vals = [r["spans"][name] for r in raw if name in r["spans"]]
        if vals:
            counters = [r["counters"][name] for r in raw]
            summary[name] = {**_spread(vals),
                             **{k: statistics.median(c.get(k, 0) for c in counters)
                                for k in ("syncs", "launches", "peak_mb")}}
    span_total = summary.get("stark_prove_excluding_trace", {}).get("median")
    return {
        "workload": workload.name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device.info(),
        "host": {"machine": platform.machine(), "processor": platform.processor(),
                 "cpus": _cpu_count()},
        "runs": runs,
        "warmup": warmup,
        "proof_bytes": len(blob),
        "verify_seconds": verify_seconds,
        "span_sync_cost": None if span_total is None else span_total - summary[CALL]["median"],
        "summary": summary,
        "calls": calls,
        "raw": raw,
    }, blob


def _spread(vals: list) -> dict:
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "runs": len(vals)}


def format_table(report: dict) -> str:
    """A Markdown table: the plain call first, then the KPI spans (ms, counters)."""
    lines = [f"{report['workload']} on {report['device']['device']} "
             f"({report['device']['backend']}, native kernels: {report['device']['native_kernels']}), "
             f"{report['runs']} warm runs",
             "", "| span | median ms | min ms | max ms | syncs | launches | peak MB |",
             "|---|---|---|---|---|---|---|"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | {s['median'] * 1e3:.1f} | {s['min'] * 1e3:.1f} | "
                     f"{s['max'] * 1e3:.1f} | {s['syncs']:g} | {s['launches']:g} | "
                     f"{s['peak_mb']:.0f} |")
    cost = report.get("span_sync_cost")
    if cost is not None:
        lines.append("")
        lines.append(f"Timed spans (a device sync at each span's end) add {cost * 1e3:+.1f} ms "
                     f"to the median call.")
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0
