"""The KPI contract (warm runs of keccakf, 1024 permutations, and the LogUp workload): a thin
wrapper over ``mlx-stark bench``, kept for its command line. Usage:

    python benchmarks/kpi.py --out docs/tracking/baselines/cpu [--runs 5] [--warmup 1]
        [--permutations 1024] [--logup-scale 1] [--only keccakf|logup]

Writes ``<out>/<workload>.json`` (raw per-run span totals and trees, medians, min, max) and
``<out>/medians.md`` (``medians-<workload>.md`` with ``--only``). Every other ``mlx-stark bench``
option works too.
"""
from __future__ import annotations

import sys

from mlx_stark import cli


def main(argv=None) -> None:
    """``mlx-stark bench`` with ``argv``; this script's ``--logup-scale`` is bench's ``--scale``."""
    args = sys.argv[1:] if argv is None else list(argv)
    cli.main(["bench", *(a.replace("--logup-scale", "--scale", 1) if a.startswith("--logup-scale") else a
                         for a in args)], prog_name="kpi.py")


if __name__ == "__main__":
    main()
