"""Custom Metal / CUDA kernels and the registry that picks them or the MLX-ops reference.

Stages that have a native kernel ask the registry first and keep their MLX-ops code as the
reference (and the CPU path)::

    kernel = custom_kernels.native("merkle.hash_rows")
    if kernel is not None:
        return kernel(matrix)
    ...  # MLX ops

An operation is named after the stage code that asks for it and holds its reference path:
``<module>.<function>`` (the stage module's last name; ``Class.method`` for a method, the class
alone when the kernel serves the whole class; a private function without its underscore), and
``:<variant>`` after it where one function picks among kernels by an argument
(``mle.fold_lowest:base``).

:func:`native` returns the kernel-backed function when :func:`mlx_stark.device.native_kernels_active`
(a Metal or CUDA default device and ``MLX_STARK_KERNELS`` not ``ops``), else ``None``. Every
native function is bit-equal to its reference.

Kernel sources are :class:`KernelSource` objects in a dialect-neutral form (see
:mod:`.prelude`); :func:`render` turns one into the header and body MLX compiles for CUDA
(``mx.fast.cuda_kernel``) or Metal (``mx.fast.metal_kernel``), and :func:`launch` builds it
once per device dialect and runs it (on CUDA as a cubin kept on disk, :mod:`.cubin`). Kernel modules import the stages they accelerate, so they
are loaded on first use and never at package import (the stages import this package).
"""
from __future__ import annotations

import hashlib
import importlib
import os
from functools import lru_cache
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .. import device, tracing
from .prelude import DIALECTS, prelude, thread_indices

# operation -> (kernel module, function); see each function's docstring for its contract
_NATIVE = {
    "bb.add": ("elementwise", "add"),
    "bb.sub": ("elementwise", "sub"),
    "bb.neg": ("elementwise", "neg"),
    "bb.mul": ("elementwise", "mul"),
    "bb.mont_mul": ("elementwise", "mont_mul"),
    "bb.halve": ("elementwise", "halve"),
    "bb.sum": ("linear", "field_sum"),
    "ext.mul_sum": ("linear", "ext_mul_sum"),
    "ext.mul": ("elementwise", "ext_mul"),
    "ext.mul_base": ("elementwise", "ext_mul_base"),
    "arrays.take": ("indexing", "take"),
    "arrays.scatter_rows": ("indexing", "scatter_rows"),
    "arrays.concat_flat": ("indexing", "concat_flat"),
    "traces.column_block": ("indexing", "column_block"),
    "poseidon2.permute": ("poseidon2", "permute"),
    "poseidon2.find_pow_witness": ("poseidon2", "find_pow_witness"),
    "merkle.hash_rows": ("poseidon2", "hash_rows"),
    "merkle.compress": ("poseidon2", "compress"),
    "merkle.MerkleTree.commit": ("poseidon2", "merkle_blocks"),
    "merkle.MerkleTree.open_device": ("indexing", "merkle_open"),
    "transcript.DeviceTranscript": ("poseidon2", "duplex"),
    "transcript.DeviceTranscript.grind": ("poseidon2", "grind"),
    "ntt.transform": ("ntt", "transform"),
    "ntt.coset_lde": ("ntt", "coset_lde"),
    "mle.zeta": ("ntt", "zeta"),
    "mle.mobius": ("ntt", "mobius"),
    "mle.fold_lowest:ext": ("sumcheck", "fold_ext"),
    "mle.fold_lowest:base": ("sumcheck", "fold_base"),
    "mle.fold_skip:base": ("linear", "weighted_sum"),
    "mle.interpolate_at_integers": ("sumcheck", "interpolate_at_integers"),
    "mle.product_table": ("sumcheck", "product_table"),
    "mle.eq_table": ("sumcheck", "eq_table"),
    "mle.eq_suffix_tables": ("sumcheck", "eq_suffix_tables"),
    "mle.ext_powers": ("sumcheck", "ext_powers"),
    "stacked_pcs.stacked_matrix": ("indexing", "stack_matrix"),
    "stacked_pcs.rs_messages": ("ntt", "rs_messages"),
    "stacked_pcs.stacked_rs_messages": ("ntt", "stacked_rs_messages"),
    "stacked_reduction.weighted_sum": ("linear", "weighted_sum"),
    "sumcheck.product_round_values": ("sumcheck", "product_round"),
    "sumcheck.fold_product_round": ("sumcheck", "fold_product_round"),
    "sumcheck.product_round_step": ("sumcheck", "product_round_step"),
    "sumcheck.fold_product_round_step": ("sumcheck", "fold_product_round_step"),
    "whir.update_weights": ("sumcheck", "update_weights"),
    "whir.powers_at": ("sumcheck", "powers_at"),
    "logup_gkr.layer_tables": ("gkr", "layer_tables"),
    "logup_gkr.fraction_layer": ("gkr", "fraction_layer"),
    "logup_gkr.round_sums": ("gkr", "round_sums"),
    "logup_gkr.fold_round_sums": ("gkr", "fold_round_sums"),
    "logup_gkr.round_sums_step": ("gkr", "round_sums_step"),
    "logup_gkr.fold_round_sums_step": ("gkr", "fold_round_sums_step"),
    "constraint_eval.DagEvaluator.evaluate_blocks": ("constraints", "evaluate_forms"),
    "constraint_eval.DagEvaluator.contracted": ("constraints", "evaluate_parts"),
    "mle_rounds.head_values": ("constraints", "evaluate_mle"),
    "mle_rounds.fold_table": ("linear", "fold_table"),
    "mle_rounds.round_step": ("rounds", "round_step"),
    "round0.shifted_sum": ("linear", "ragged_sum"),
}

OPERATIONS = tuple(_NATIVE)


def native(operation: str):
    """The native implementation of ``operation`` for the running device, or ``None`` when the
    MLX-ops reference must run (CPU device, or ``MLX_STARK_KERNELS=ops``)."""
    if operation not in _NATIVE:
        raise KeyError(f"unknown kernel operation {operation!r}; known: {OPERATIONS}")
    if not device.native_kernels_active():
        return None
    return resolve(operation)


_RESOLVED: dict = {}


def resolve(operation: str):
    """The kernel-backed function of a registered ``operation``, whatever the device (callers
    that know the native path is active: :func:`mlx_stark.device.fused`)."""
    fn = _RESOLVED.get(operation)
    if fn is None:
        module, attr = _NATIVE[operation]
        fn = _RESOLVED[operation] = getattr(importlib.import_module(f".{module}", __name__), attr)
    return fn


@dataclass(frozen=True)
class KernelSource:
    """A kernel in dialect-neutral form: ``header`` (helper functions, after the prelude) and
    ``body`` (after the thread-index statements). All inputs and outputs are ``uint32``."""

    name: str
    input_names: tuple
    output_names: tuple
    header: str
    body: str

    def mangled(self) -> str:
        """Name unique to this source: MLX caches compiled kernels by name."""
        digest = hashlib.sha256((self.header + "\0" + self.body).encode()).hexdigest()[:12]
        return f"{self.name}_{digest}"


def render(src: KernelSource, dialect: str) -> tuple:
    """``(header, body)`` of ``src`` for ``dialect`` (``cuda`` or ``metal``)."""
    return prelude(dialect) + src.header, thread_indices(dialect) + src.body


_BUILT: dict = {}


def _build(src: KernelSource, dialect: str):
    """A launcher ``f(inputs, grid, threadgroup, output_shapes, output_dtypes, init_value)`` of ``src``: on
    CUDA the cubin kept on disk (:mod:`.cubin`) where it can be had, else MLX's own kernel
    compilation (``mx.fast.cuda_kernel`` / ``metal_kernel``), which sizes grids the same way."""
    kernel = _BUILT.get((src, dialect))  # keyed by the source itself: no digest per launch
    if kernel is None:
        name = src.mangled()
        header, body = render(src, dialect)
        if dialect == "cuda":
            from . import cubin
            kernel = cubin.kernel(name, src.input_names, src.output_names, header, body)
        if kernel is None:
            make = mx.fast.cuda_kernel if dialect == "cuda" else mx.fast.metal_kernel
            jit = make(name=name, input_names=list(src.input_names),
                       output_names=list(src.output_names), source=body, header=header)

            def kernel(inputs, grid, threadgroup, output_shapes, output_dtypes, init_value=None, jit=jit):
                return jit(inputs=inputs, grid=grid, threadgroup=threadgroup,
                           output_shapes=output_shapes, output_dtypes=output_dtypes,
                           init_value=init_value)
        _BUILT[(src, dialect)] = kernel
    return kernel


def params(*values: int) -> mx.array:
    """Host integers (each below 2^32) as a ``(len,)`` uint32 device array: the parameter
    arrays kernels read their sizes from, and the index lists of a proof's fixed layout. Kept
    per values (arrays are immutable): a proof asks for the same few hundred again and again,
    and making one costs more host time than its launch (~20 µs on CUDA)."""
    return _params(tuple(values))


@lru_cache(maxsize=4096)
def _params(values: tuple) -> mx.array:
    return mx.array(np.array(values, dtype=np.uint32))


def launch(src: KernelSource, inputs: list, grid: tuple, threadgroup: int, output_shapes: list,
           zero_outputs: bool = False) -> list:
    """Run ``src`` on the default (GPU) device: ``grid`` counts threads along x (a multiple of
    ``threadgroup`` where the kernel uses barriers) and blocks along y. Returns the uint32
    outputs, zero-filled before the kernel runs when ``zero_outputs`` (else each kernel writes
    every output word). Lazy, like any MLX op."""
    dialect = device.backend()
    if dialect not in DIALECTS:
        raise RuntimeError(f"custom kernels need a CUDA or Metal device, not {dialect!r}")
    gx, gy = grid
    tracing.count_launch()
    return _build(src, dialect)(inputs, (gx, gy, 1), (threadgroup, 1, 1), output_shapes,
                                [mx.uint32] * len(output_shapes), 0 if zero_outputs else None)


def fixed_sources() -> list:
    """Every kernel source that does not depend on an AIR, in the variants the prover launches
    for common shapes (hash widths: WHIR's extension-field codewords have 4; NTT radices, RS
    block sizes, LDE factors, weight counts):
    what ``mlx-stark warmup`` compiles ahead, in parallel, before its proof. The DAG-generated
    constraint kernels come with the proof."""
    from . import elementwise, gkr, indexing, linear, ntt, poseidon2, rounds, sumcheck
    return (list(elementwise.sources()) + [poseidon2.permute_source(), poseidon2.hash_rows_source(1), poseidon2.hash_rows_source(4),
             poseidon2.hash_rows_source(8),
             poseidon2.hash_rows_source(42), poseidon2.compress_source(), poseidon2.compress_layer_source(),
             poseidon2.tree_levels_source(), poseidon2.pow_source(),
             poseidon2.duplex_source(), poseidon2.grind_source(True),
             poseidon2.grind_source(False)]
            + [ntt.stockham_source(s) for s in range(1, ntt.MAX_LOG_RADIX + 1)]
            + [ntt.rs_messages_source(l, stacked) for l in range(0, 5) for stacked in (False, True)]
            + [ntt.subset_source(r, inv) for r in range(1, ntt.MAX_LOG_SUBSET + 1) for inv in (False, True)]
            + [ntt.coset_lde_source(n) for n in (1, 2, 4, 8, 16, 32)]
            + [linear.weighted_sum_source(c) for c in (1, 4, 8)]
            + [linear.field_sum_source(), linear.ext_mul_sum_source(), linear.fold_table_source()]
            + [gkr.round_sums_source(), gkr.fold_round_sums_source(), *linear.absorbing_sources(),
               *gkr.absorbing_sources(), *sumcheck.absorbing_sources(),
               gkr.layer_tables_source(), gkr.fraction_layer_source(), sumcheck.product_round_source(),
               sumcheck.fold_product_round_source(), sumcheck.fold_source(False), sumcheck.fold_source(True),
               sumcheck.update_weights_source(), sumcheck.powers_at_source(), sumcheck.interpolate_source(),
               sumcheck.product_table_source(), sumcheck.eq_suffix_source(), sumcheck.powers_source(), rounds.round_step_source(),
               indexing.take_source(), indexing.scatter_source(), indexing.stack_source(),
               indexing.column_block_source()]
            + [indexing.merkle_open_source(b) for b in range(1, 5)]
            + [indexing.concat_source(1 << k, mont) for k in range(1, 6) for mont in (False, True)]
            + [linear.ragged_sum_source(1 << k) for k in range(1, 5)])


def compiles_ahead() -> bool:
    """Whether :func:`precompile` can compile ahead here: CUDA with the cubin cache usable."""
    if device.backend() != "cuda":
        return False
    from . import cubin
    return cubin.usable_arch() is not None


_POOL: list = []  # the background compile pool, made on first use
_SUBMITTED: dict = {}  # source -> Future of its compile in this process


def precompile(sources: list, wait: bool = True) -> int:
    """Compile ``sources`` for the running device ahead of their first launch, concurrently
    (NVRTC releases the interpreter while it compiles; one thread per core), each at most once
    per process. CUDA with the cubin cache only. ``wait``: block until done and return how many
    were compiled or found cached; otherwise return at once (0), the compiles going on in the
    background while the caller launches (a launch of a kernel still compiling waits for it,
    :func:`.cubin.cached_cubin`)."""
    if not compiles_ahead():
        return 0
    from . import cubin
    arch = cubin.usable_arch()

    def one(src):
        try:
            cubin.build(src.mangled(), src.input_names, src.output_names, *render(src, "cuda"), arch)
            return 1
        except cubin.CompileError:
            return 0  # the launch will warn and fall back, as without precompiling

    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                        thread_name_prefix="mlx-stark-compile"))
    futures = []
    for src in sources:
        fut = _SUBMITTED.get(src)
        if fut is None:
            fut = _SUBMITTED[src] = _POOL[0].submit(one, src)
        futures.append(fut)
    return sum(f.result() for f in futures) if wait else 0


def precompiled() -> int:
    """Wait for every compile :func:`precompile` took in this process; how many kernels were
    compiled or found cached."""
    return sum(f.result() for f in list(_SUBMITTED.values()))


__all__ = ["native", "resolve", "fixed_sources", "precompile", "precompiled", "compiles_ahead", "params", "OPERATIONS", "KernelSource", "render", "launch", "DIALECTS"]
