"""Warm-run measurement of a workload: the KPI contract's spans, medians and spreads.

Each run proves the workload with timing on (every span synchronises the device at its end,
see :mod:`mlx_stark.tracing`); the first ``warmup`` runs are discarded (compilation, caches).
"""
from __future__ import annotations

import platform
import statistics
import time
from datetime import datetime, timezone

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


def measure(workload: Workload, runs: int = 5, warmup: int = 1, check: bool = True,
            progress=None) -> tuple[dict, bytes]:
    """Prove ``workload`` ``warmup + runs`` times; returns a JSON-ready report with the raw
    per-run span totals and, per KPI span, the median / min / max over the warm runs, and the
    last run's proof bytes (the proof verified when ``check``). ``progress(i, total, seconds)``
    is called after each run ``i``, warm-up runs first."""
    pk, vk = keygen(workload.airs, workload.params)
    raw, proof = [], None
    for i in range(warmup + runs):
        with tracing.timing() as roots:
            proof = prove(pk, workload.inputs)
        spans = tracing.flatten(roots)
        if i >= warmup:
            raw.append({"spans": spans, "tree": [r.to_dict() for r in roots]})
        if progress:
            progress(i, warmup + runs, spans.get("stark_prove_excluding_trace", 0.0))
    blob = proof.to_bytes()
    verify_seconds = None
    if check:
        t = time.perf_counter()
        verify(vk, blob)
        verify_seconds = time.perf_counter() - t
    summary = {}
    for name in KPI_SPANS:
        vals = [r["spans"][name] for r in raw if name in r["spans"]]
        if vals:
            summary[name] = {"median": statistics.median(vals), "min": min(vals),
                             "max": max(vals), "runs": len(vals)}
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
        "summary": summary,
        "raw": raw,
    }, blob


def format_table(report: dict) -> str:
    """A Markdown table of the KPI medians (ms) with min and max."""
    lines = [f"{report['workload']} on {report['device']['device']} "
             f"({report['device']['backend']}, native kernels: {report['device']['native_kernels']}), "
             f"{report['runs']} warm runs",
             "", "| span | median ms | min ms | max ms |", "|---|---|---|---|"]
    for name, s in report["summary"].items():
        lines.append(f"| {name} | {s['median'] * 1e3:.1f} | {s['min'] * 1e3:.1f} | "
                     f"{s['max'] * 1e3:.1f} |")
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0
