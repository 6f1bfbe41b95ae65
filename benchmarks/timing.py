"""Shared timing helper of the micro-benchmarks (run them as ``python benchmarks/<name>.py``)."""
from __future__ import annotations

import statistics
import time


def median_time(fn, runs: int) -> float:
    """Median wall time (s) of ``runs`` calls of ``fn`` after one untimed warm-up call
    (compilation, caches). ``fn`` must force its own evaluation (e.g. ``mx.eval``)."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
