"""Tiled transpose of the last two axes (``(B, R, C) -> (B, C, R)`` uint32): the native path
of :func:`mlx_stark.arrays.transpose`.

A block of 256 threads moves one 32 x 32 tile through shared memory (row stride 33, so that
neither the writes nor the reads of a warp hit one bank): reads along rows of the input and
writes along rows of the output are both contiguous. MLX's general strided copy reads or
writes with a stride of the other axis, which is several times slower on wide matrices.
Bit-equal to the MLX-ops reference (it moves words).
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np

from . import KernelSource, launch

TILE = 32
THREADS = 256  # 8 rows of 32 threads; each thread moves 4 words of its tile
MAX_BLOCKS_Y = 65535


@lru_cache(maxsize=1)
def transpose_source() -> KernelSource:
    """``x`` (B·R·C), ``params = [R, C, tiles_c, tiles]`` -> ``out`` (B·C·R). Block ``bid``
    handles tile ``bid`` of matrix ``bid_y``."""
    body = f"""\
SHARED uint32_t tile[{TILE} * {TILE + 1}];
const uint32_t rows = params[0];
const uint32_t cols = params[1];
const uint32_t tile_r = bid / params[2];
const uint32_t tile_c = bid - tile_r * params[2];
const uint32_t tx = tid & {TILE - 1}u;
const uint32_t ty = tid >> 5;
const uint64_t base = (uint64_t)bid_y * rows * cols;
for (uint32_t k = 0; k < {TILE}u; k += {THREADS // TILE}u) {{
  const uint32_t r = tile_r * {TILE}u + ty + k;
  const uint32_t c = tile_c * {TILE}u + tx;
  if (r < rows && c < cols) {{
    tile[(ty + k) * {TILE + 1}u + tx] = x[base + (uint64_t)r * cols + c];
  }}
}}
BARRIER();
for (uint32_t k = 0; k < {TILE}u; k += {THREADS // TILE}u) {{
  const uint32_t c = tile_c * {TILE}u + ty + k;
  const uint32_t r = tile_r * {TILE}u + tx;
  if (r < rows && c < cols) {{
    out[base + (uint64_t)c * rows + r] = tile[tx * {TILE + 1}u + ty + k];
  }}
}}
"""
    return KernelSource("transpose_tiles", ("x", "params"), ("out",), "", body)


def transpose(x: mx.array) -> mx.array:
    """:func:`mlx_stark.arrays.transpose` with the tiled kernel: ``(B, R, C)`` uint32 ->
    ``(B, C, R)``, one launch per ``MAX_BLOCKS_Y`` matrices."""
    b, rows, cols = x.shape
    if b == 0 or rows == 0 or cols == 0:
        return mx.zeros((b, cols, rows), dtype=mx.uint32)
    tiles_c = -(-cols // TILE)
    tiles = -(-rows // TILE) * tiles_c
    params = mx.array(np.array([rows, cols, tiles_c, tiles], dtype=np.uint32))
    outs = []
    for lo in range(0, b, MAX_BLOCKS_Y):
        part = x[lo:lo + MAX_BLOCKS_Y]
        outs.append(launch(transpose_source(), [part, params], (tiles * THREADS, part.shape[0]),
                           THREADS, [(part.shape[0], cols, rows)])[0])
    return outs[0] if len(outs) == 1 else mx.concatenate(outs)
