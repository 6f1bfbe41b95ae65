"""Proofs per second of ``mlx-stark prove-batch`` with 1 and with N ranks, in one process tree.

    python benchmarks/batch_throughput.py [--jobs 12] [--workload logup] [--size 4] [--ranks 2]
                                          [--repeats 3] [--out F]

Writes a manifest of ``--jobs`` identical small jobs, runs the batch once to warm the on-disk
compile caches, then ``--repeats`` times with one rank and with ``--ranks`` ranks
(``prove-batch --local-ranks``: ring-backend ranks on loopback, started directly; ``mlx.launch``
adds a relay process that busy-polls a core, which a 2-core machine cannot spare), each into a
fresh output directory. Reports the
median wall time of the whole command (start-up and key generation included: what a user
waits for) and the proofs per second it gives.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(cmd, cwd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--workload", default="logup")
    ap.add_argument("--size", type=int, default=4)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "mlx_stark.cli", "prove-batch"]
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp, "jobs.json")
        manifest.write_text(json.dumps({"jobs": [
            {"name": f"j{i}", "workload": args.workload, "size": args.size, "seed": i}
            for i in range(args.jobs)]}))
        _timed(cli + [str(manifest), "--out", "warm"], tmp)
        runs = {1: [], args.ranks: []}
        for r in range(args.repeats):
            for ranks in runs:
                out = f"out-{ranks}-{r}"
                extra = [] if ranks == 1 else ["--local-ranks", str(ranks)]
                runs[ranks].append(_timed(cli + [str(manifest), "--out", out] + extra, tmp))
    report = {"workload": f"{args.workload} {args.size}", "jobs": args.jobs}
    for ranks, secs in runs.items():
        med = statistics.median(secs)
        report[f"ranks_{ranks}"] = {"median_s": med, "min_s": min(secs), "max_s": max(secs),
                                    "proofs_per_s": args.jobs / med}
    report["speedup"] = report[f"ranks_{args.ranks}"]["proofs_per_s"] / report["ranks_1"]["proofs_per_s"]
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
