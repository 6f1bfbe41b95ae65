"""Where mlx-stark keeps what it compiles, across processes and sessions.

The root is ``MLX_STARK_CACHE``, else ``~/.cache/mlx-stark`` (a user's cache directory, which
machines keep, unlike the system temp directory that MLX uses by default). Under it:

- ``cubin/``: our CUDA kernels as cubins (:mod:`mlx_stark.custom_kernels.cubin`);
- ``ptx/``: MLX's own CUDA kernels after NVRTC (``MLX_PTX_CACHE_DIR``: fused ops, where fusion is on);
- ``cuda/``: the CUDA driver's PTX→SASS cache (``CUDA_CACHE_PATH``), raised to 4 GiB
  (``CUDA_CACHE_MAXSIZE``; the driver's default is far below a workload's kernels);
- the native host Poseidon2 library (:mod:`mlx_stark.hash.host_native`).

:func:`configure` runs first on ``import mlx_stark``, before MLX starts the GPU, and only fills
in variables the user has not set.
"""
from __future__ import annotations

import os
from pathlib import Path

CUDA_CACHE_BYTES = 4 << 30


def root() -> Path:
    return Path(os.environ.get("MLX_STARK_CACHE") or Path.home() / ".cache" / "mlx-stark")


def configure() -> None:
    os.environ.setdefault("MLX_PTX_CACHE_DIR", str(root() / "ptx"))
    os.environ.setdefault("CUDA_CACHE_PATH", str(root() / "cuda"))
    os.environ.setdefault("CUDA_CACHE_MAXSIZE", str(CUDA_CACHE_BYTES))


def dirs() -> dict:
    """The cache folders in use and their sizes in bytes (0 for a missing one)."""
    out = {}
    for name, path in (("root", root()), ("ptx", os.environ.get("MLX_PTX_CACHE_DIR")),
                       ("cuda", os.environ.get("CUDA_CACHE_PATH"))):
        p = Path(path) if path else None
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p and p.is_dir() else 0
        out[name] = {"path": str(p) if p else None, "bytes": size}
    return out
