"""Where a warm whole ``ms.prove`` call spends its host time: cProfile over a few warm calls.

    PYTHONPATH=<checkout> python benchmarks/profile_call.py fib|logup|keccakf [--size N] [--runs 3] [--out F]

Writes the top functions by own time and by cumulative time (text) to ``--out`` (default
stdout). On the GPU a small proof is host-bound: this says which Python code builds its graphs.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
from pathlib import Path

import mlx_stark as ms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_call import parser, prepared  # noqa: E402


def main() -> None:
    ap = parser(runs=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    pk, inputs = prepared(args.workload, args.size)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.runs):
        ms.prove(pk, inputs)
    prof.disable()
    text = io.StringIO()
    for key in ("tottime", "cumulative"):
        pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key).print_stats(45)  # no machine paths
    if args.out:
        Path(args.out).write_text(text.getvalue())
    else:
        print(text.getvalue())


if __name__ == "__main__":
    main()
