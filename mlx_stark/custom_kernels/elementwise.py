"""Field arithmetic as one kernel per call: the native paths of the elementwise functions of
:mod:`mlx_stark.field.bb` and :mod:`mlx_stark.field.ext` on CUDA with fusion off
(``MLX_STARK_FUSE=0``, :func:`mlx_stark.device.fusing`).

Between its kernels the native prover still does small field arithmetic in MLX ops (challenge
powers, eq tables, folds of per-round arrays). MLX runs an extension-field product as ~50
separate ops unless ``mx.compile`` fuses them, and on CUDA every distinct fused graph is an
NVRTC compile of MLX's headers, 5-35 s on a machine's first proof (docs/tracking/cold-start.md).
These kernels give one launch per call without a fused graph: eight small sources, kept as
cubins, serving every shape.

Operands broadcast as NumPy arrays do. Extension operands are ``(..., 4)`` and broadcast over
their leading shape ("elements" below are extension elements for them). :func:`plan` turns the
operand shapes into at most :data:`MAX_DIMS` output dimensions (adjacent dimensions merged
where every operand is contiguous or broadcast across both) and per-operand element strides,
0 along broadcast dimensions; each thread loops over output elements and finds its operands
from those. Every result is canonical and equal to the MLX-ops reference.
"""
from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Optional, Sequence, Tuple

import mlx.core as mx
import numpy as np

from ..field.bb import U32
from . import KernelSource, launch, params
from .prelude import EXTENSION
from .sizing import THREADS, plan_blocks

MAX_DIMS = 4
_LIMIT = 1 << 31  # element counts and word offsets stay in 32 bits

# name -> (operand kinds: "b" base / "e" extension, result kind, C expression of the result)
# over the loaded operands ``x`` and ``y`` (uint32_t for base, ef for extension).
_OPS = {
    "add": ("bb", "b", "bb_add(x, y)"),
    "sub": ("bb", "b", "bb_sub(x, y)"),
    "neg": ("b", "b", "bb_neg(x)"),
    "mul": ("bb", "b", "bb_mont(bb_to_mont(x), y)"),
    "mont_mul": ("bb", "b", "bb_mont(x, y)"),
    "halve": ("b", "b", "bb_half(x)"),
    "ext_mul": ("ee", "e", "ef_mul(x, ef_in(y.c0, y.c1, y.c2, y.c3))"),
    "ext_mul_base": ("eb", "e", "ef_mul_b(x, bb_to_mont(y))"),
}


@lru_cache(maxsize=None)
def source(op: str) -> KernelSource:
    """The kernel of ``op`` (a key of ``_OPS``): operands ``x`` [, ``y``] (flat words), ``params
    = [total, dims, n_0..n_3, (stride_0..stride_3 per operand), loop]`` uint32 -> ``out``
    (flat words of the ``total`` output elements). Dimension ``d`` of ``dims`` has length
    ``n_d``; an operand's element offset is the sum of index·stride over the dimensions."""
    kinds, result, expr = _OPS[op]
    names = ("x", "y")[:len(kinds)]
    lines = ["const uint32_t total = params[0];", "const uint32_t dims = params[1];",
             f"for (uint32_t e = gid; e < total; e += params[{2 + MAX_DIMS * (1 + len(kinds))}]) {{",
             "  uint32_t rest = e;"]
    lines += [f"  uint32_t o_{n} = 0u;" for n in names]
    lines += ["  for (uint32_t d = dims; d-- > 0u;) {",
              "    const uint32_t len = params[2u + d];",
              "    const uint32_t i = rest % len;",
              "    rest /= len;"]
    lines += [f"    o_{n} += i * params[{2 + MAX_DIMS * (1 + k)}u + d];" for k, n in enumerate(names)]
    lines += ["  }"]
    for kind, n in zip(kinds, names):
        lines.append(f"  const ef {n} = EF_LOAD({n}_in, 4u * o_{n});" if kind == "e"
                     else f"  const uint32_t {n} = {n}_in[o_{n}];")
    if result == "e":
        lines += [f"  const ef r = {expr};", "  EF_STORE(out, 4u * e, r);"]
    else:
        lines.append(f"  out[e] = {expr};")
    lines.append("}")
    return KernelSource(f"field_{op}", tuple(f"{n}_in" for n in names) + ("params",), ("out",),
                        EXTENSION, "\n".join(lines) + "\n")


def _contiguous_strides(shape: Tuple[int, ...]) -> list:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


def operand_strides(shapes, out: tuple) -> list:
    """Per operand of element shape ``shapes[k]`` (broadcast to ``out``, NumPy rules), its
    element stride along each dimension of ``out``: 0 where it broadcasts."""
    strides = []
    for s in shapes:
        padded = (1,) * (len(out) - len(s)) + tuple(s)
        strides.append([0 if n == 1 else st for n, st in zip(padded, _contiguous_strides(padded))])
    return strides


def merged_dims(out: tuple, strides: list, drop: int = -1) -> Tuple[list, list]:
    """``(dims, per-operand strides)`` over the dimensions of ``out`` but ``drop`` and those of
    length 1 (they index nothing), adjacent ones merged where every operand steps through both
    as one dimension."""
    keep = [d for d, n in enumerate(out) if n != 1 and d != drop]
    dims = [out[d] for d in keep]
    cols = [[st[d] for d in keep] for st in strides]
    d = len(dims) - 1
    while d > 0:
        if all(c[d - 1] == c[d] * dims[d] for c in cols):
            dims[d - 1:d + 1] = [dims[d - 1] * dims[d]]
            for c in cols:
                c[d - 1:d + 1] = [c[d]]
        d -= 1
    return dims, cols


def plan(shapes: Tuple[Tuple[int, ...], ...]) -> Optional[Tuple[tuple, int, tuple]]:
    """``(out_shape, total, params)`` for operands of element shapes ``shapes`` (NumPy
    broadcasting), with ``params`` the kernel's words before its loop stride; ``None`` where
    the kernel cannot serve them (shapes that do not broadcast, more than :data:`MAX_DIMS`
    dimensions after merging, counts beyond 32 bits) and the reference must run."""
    try:
        out = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None
    total = math.prod(out)
    if total >= _LIMIT or any(math.prod(s) * 4 >= _LIMIT for s in shapes):
        return None
    dims, cols = merged_dims(out, operand_strides(shapes, out))
    if len(dims) > MAX_DIMS:
        return None
    pad = [1] * (MAX_DIMS - len(dims))
    words = [total, len(dims)] + dims + pad
    for c in cols:
        words += c + [0] * len(pad)
    return out, total, tuple(words)


def apply(op: str, *operands) -> Optional[mx.array]:
    """``op`` on ``operands`` in one launch, or ``None`` where the reference must run instead
    (operands that are not uint32 MLX arrays, extension operands without a trailing axis of 4,
    shapes :func:`plan` refuses). Lazy."""
    kinds, result, _ = _OPS[op]
    shapes = []
    for kind, a in zip(kinds, operands):
        if not isinstance(a, mx.array) or a.dtype != U32:
            return None
        if kind == "e":
            if a.ndim == 0 or a.shape[-1] != 4:
                return None
            shapes.append(tuple(a.shape[:-1]))
        else:
            shapes.append(tuple(a.shape))
    planned = _launch_plan(tuple(shapes))
    if planned is None:
        return None
    out_shape, total, words, threads = planned
    full = out_shape + ((4,) if result == "e" else ())
    if total == 0:
        return mx.zeros(full, dtype=U32)
    return launch(source(op), list(operands) + [words], (threads, 1), THREADS, [full])[0]


@lru_cache(maxsize=4096)
def _launch_plan(shapes: Tuple[Tuple[int, ...], ...]):
    """:func:`plan` with the launch's thread count and its parameter array, made once per shape
    combination (a small proof makes ~1,400 of these calls: the array is host overhead)."""
    planned = plan(shapes)
    if planned is None:
        return None
    out_shape, total, words = planned
    threads = plan_blocks(total) * THREADS
    return out_shape, total, params(*words, threads), threads


# the registry's functions (custom_kernels._NATIVE): the result, or None for the reference
add, sub, neg, mul, mont_mul, halve, ext_mul, ext_mul_base = (
    partial(apply, op) for op in ("add", "sub", "neg", "mul", "mont_mul", "halve", "ext_mul", "ext_mul_base"))


def sources() -> Sequence[KernelSource]:
    """Every kernel of this module (for warmup)."""
    return [source(op) for op in _OPS]
