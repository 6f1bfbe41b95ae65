"""What a cold first proof compiled on a CUDA device, read from MLX's kernel cache.

    python benchmarks/compile_table.py [--ptx DIR] [--cubin DIR] [--since EPOCH] [--out F]

MLX's CUDA backend compiles every kernel module with NVRTC (straight to the device's SASS on
sm_90) and writes ``<module>.ptx``, ``.txt`` and ``.cu`` to ``MLX_PTX_CACHE_DIR``, one module at a
time, in the order the proof needs them. So a fresh cache after one cold proof lists every
runtime compilation, and the gap between one module's files and the previous one's bounds its
compile time (it also holds whatever the proof did in between; the first gap is measured from
``--since``). Modules named ``<kernel>_<12 hex digits>`` are ours (:class:`KernelSource`
names); all others are MLX's own (fused ``mx.compile`` graphs and MLX's JIT kernels). Our
kernels compiled by mlx-stark itself (``custom_kernels/cubin.py``) are the ``<kernel>_<24 hex
digits>.cubin`` files of ``--cubin`` (default ``$MLX_STARK_CACHE/cubin``), timed the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from pathlib import Path

OURS = re.compile(r"(?:^|_)([a-z0-9_]+?)_[0-9a-f]{12}(?:_|$)")


CUBIN = re.compile(r"^([a-z0-9_]+?)_[0-9a-f]{12}_[0-9a-f]{24}$")


def modules(ptx_dir: Path, since: float | None, cubin_dir: Path | None = None) -> list:
    rows = []
    for ptx in ptx_dir.glob("*.ptx") if ptx_dir.is_dir() else []:
        files = [ptx] + [ptx.with_suffix(s) for s in (".txt", ".cu")]
        stamps = [f.stat().st_mtime for f in files if f.exists()]
        rows.append({"module": ptx.stem, "done": max(stamps), "start_bound": min(stamps),
                     "bytes": ptx.stat().st_size})
    for cub in cubin_dir.glob("*.cubin") if cubin_dir and cubin_dir.is_dir() else []:
        t = cub.stat().st_mtime
        rows.append({"module": cub.stem, "done": t, "start_bound": t, "bytes": cub.stat().st_size})
    rows.sort(key=lambda r: r["done"])
    prev = since if since is not None else (rows[0]["start_bound"] if rows else 0.0)
    for r in rows:
        r["seconds"] = max(r["done"] - prev, 0.0)
        prev = r["done"]
        m = CUBIN.match(r["module"]) or OURS.search(r["module"])
        r["owner"] = "ours" if m else "mlx"
        r["kernel"] = m.group(1) if m else re.sub(r"_[0-9a-f]{8,}.*$", "", r["module"])[:60]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ptx", default=os.environ.get("MLX_PTX_CACHE_DIR"))
    ap.add_argument("--cubin", default=os.path.join(os.environ.get("MLX_STARK_CACHE", ""), "cubin")
                    if os.environ.get("MLX_STARK_CACHE") else None)
    ap.add_argument("--since", type=float, default=None, help="epoch seconds the process started")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = modules(Path(args.ptx), args.since, Path(args.cubin) if args.cubin else None)
    by = defaultdict(lambda: {"count": 0, "seconds": 0.0})
    for r in rows:
        k = by[(r["owner"], r["kernel"])]
        k["count"] += 1
        k["seconds"] += r["seconds"]
    summary = {o: {"modules": sum(1 for r in rows if r["owner"] == o),
                   "seconds": sum(r["seconds"] for r in rows if r["owner"] == o)} for o in ("ours", "mlx")}
    print(json.dumps(summary))
    print(f"{'owner':5} {'kernel':60} {'count':>5} {'seconds':>8}")
    for (owner, kernel), v in sorted(by.items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"{owner:5} {kernel:60} {v['count']:5d} {v['seconds']:8.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "modules": rows}, f, indent=1)


if __name__ == "__main__":
    main()
