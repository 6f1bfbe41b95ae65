"""The flagship workloads, shared by the CLI, the scripts and the benchmarks.

- ``keccakf``: ``KeccakfAir`` proving ``permutations`` Keccak-f[1600] permutations with
  ``app_params_with_100_bits_security(21)`` (the reference benchmark: 1024 permutations, a
  ``2^15 × 2633`` trace).
- ``logup``: the interaction workload of ``test_batch_constraints_with_interactions``
  (constraints.md §9.8: a sender and a receiver DummyInteractionAir on bus 0) as a full proof.
  ``scale`` (a power of two) repeats both traces ``scale`` times (each copy balances), so the
  LogUp path can be measured at sizes where the GPU matters.
- ``fib``: the reference prover's own synthetic benchmark instance: ``FibonacciAir`` with
  ``2^log_height`` rows from ``(0, 1)`` (built on the device) plus four ``DummyInteractionAir`` s (field width 1 on
  bus 0 and width 2 on bus 1, a sender and a receiver each) with fixed small traces, under
  ``system_params_small(4, 16, 4)``. Tiny apart from the Fibonacci column pair, so it
  measures the prover's fixed overhead (syncs and launches).

``keccakf`` and ``logup`` refuse, before allocating anything, a size whose proof would not fit
in the memory available (:func:`check_memory`); ``fib`` is small at every height.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .airs import DummyInteractionAir, FibonacciAir, dummy_interaction_trace, fib_trace
from .airs.fixtures import RECEIVER_11, SENDER_11
from .airs.keccakf import KeccakfAir, keccakf_trace, keccakf_trace_height, random_keccakf_inputs
from .device import available_memory
from .errors import InsufficientMemoryError, InvalidInputError
from .params import (
    SystemParams,
    app_params_with_100_bits_security,
    default_test_params_small,
    system_params_small,
)
from .prover.prove import AirInput


# Peak host memory of a proof, modelled as a base plus bytes per main-trace cell, fitted to the
# peak RSS of CPU proofs (2-core x86 host, ops kernels, whole `mlx-stark keccakf` processes,
# 2026-12-06): keccakf 1.18 / 2.70 GiB at 2^13 / 2^15 rows x 2633 columns (the model allows
# ~10% above both); logup 0.3 / 1.5 GiB at 0.4M / 3.1M cells (scale 2^14 / 2^17). GPU runs
# build the trace on the host too; their device memory is not checked.
_MEMORY_MODEL = {"keccakf": (768 << 20, 28), "logup": (200 << 20, 500)}  # (base bytes, per cell)


def check_memory(kind: str, cells: int) -> None:
    """Raise :class:`InsufficientMemoryError` when a ``kind`` proof of a ``cells``-cell main
    trace would need more than the memory available (see the model above)."""
    base, per_cell = _MEMORY_MODEL[kind]
    need = base + per_cell * cells
    have = available_memory()
    if have is not None and need > have:
        raise InsufficientMemoryError(
            f"a {kind} proof of {cells:,} trace cells needs about {need / 2**30:.1f} GiB, "
            f"{max(have, 0) / 2**30:.1f} GiB available")


@dataclass
class Workload:
    name: str
    airs: list
    params: SystemParams
    inputs: List[Optional[AirInput]]


KINDS = ("keccakf", "logup", "fib")


def key_shape(kind: str, size: int) -> Tuple[str, list, SystemParams]:
    """``(name, AIRs, parameters)`` of the ``kind`` workload of ``size`` (keccakf permutations,
    logup scale, fib log height), without building its traces: what its keys depend on."""
    if kind == "keccakf":
        if size < 1:
            raise InvalidInputError("at least one permutation is needed")
        log_h = keccakf_trace_height(size).bit_length() - 1
        # the reference uses log stacked height 21 for 1024 permutations: 6 more than the trace
        return f"keccakf-{size}", [KeccakfAir()], app_params_with_100_bits_security(max(log_h + 6, 11))
    if kind == "logup":
        if size < 1 or size & (size - 1):
            raise InvalidInputError(f"scale must be a power of two, got {size}")
        airs = [DummyInteractionAir(1, True, 0), DummyInteractionAir(1, False, 0)]
        log_h = (len(RECEIVER_11[0]) * size).bit_length() - 1  # the receiver is the taller
        params = (default_test_params_small() if size == 1
                  else app_params_with_100_bits_security(max(log_h + 2, 11)))
        return f"logup-x{size}", airs, params
    if kind == "fib":
        if not isinstance(size, int) or not 2 <= size <= 20:
            raise InvalidInputError(f"log_height must be in [2, 20] (the stacked height 2^20), "
                                    f"got {size}")
        airs = [FibonacciAir()] + [DummyInteractionAir(len(rows[0]) - 1, is_send, bus)
                                   for bus, rows, is_send in _FIB_BUSES]
        return f"fib-2^{size}", airs, system_params_small(4, 16, 4)
    raise InvalidInputError(f"unknown workload {kind!r}; known: {', '.join(KINDS)}")


def build(kind: str, size: int, seed: int = 0) -> Workload:
    """The ``kind`` workload of ``size`` (see :func:`key_shape`); ``seed`` is keccakf's."""
    if kind == "keccakf":
        return keccakf(size, seed)
    if kind == "logup":
        return logup(size)
    if kind == "fib":
        return fib(size)
    raise InvalidInputError(f"unknown workload {kind!r}; known: {', '.join(KINDS)}")


def keccakf(permutations: int = 1024, seed: int = 0,
            params: SystemParams | None = None) -> Workload:
    """``permutations`` random Keccak-f permutations (inputs from ``seed``); the trace is built
    on the default device, so ``prove`` uploads nothing."""
    check_memory("keccakf", keccakf_trace_height(max(permutations, 0)) * KeccakfAir.width)
    name, airs, default_params = key_shape("keccakf", permutations)
    trace = keccakf_trace(random_keccakf_inputs(permutations, seed), on_device=True)
    return Workload(name, airs, params or default_params, [AirInput(trace)])


def logup(scale: int = 1) -> Workload:
    """The sender/receiver interaction workload, repeated ``scale`` times."""
    check_memory("logup", sum(len(count) * scale * (1 + len(fields[0]))
                              for count, fields in (SENDER_11, RECEIVER_11)))
    name, airs, params = key_shape("logup", scale)  # checks the scale
    inputs = []
    for count, fields in (SENDER_11, RECEIVER_11):
        count = np.tile(np.asarray(count, dtype=np.uint64), scale)
        fields = np.tile(np.asarray(fields, dtype=np.uint64), (scale, 1))
        common, _ = dummy_interaction_trace(count, fields)
        inputs.append(AirInput(common))
    return Workload(name, airs, params, inputs)


# The reference benchmark's interaction traces, rows ``[count, fields..]``: bus 0 (one field)
# sender and receiver, and the same two rows sent and received on bus 1 (two fields).
FIB_BUS0_SEND = [[0, 1], [3, 5], [7, 4], [546, 889]]
FIB_BUS0_RECEIVE = [[1, 5], [3, 4], [4, 4], [2, 5], [0, 123], [545, 889], [1, 889], [0, 456]]
FIB_BUS1 = [[2, 10, 11], [3, 20, 21]]
_FIB_BUSES = ((0, FIB_BUS0_SEND, True), (0, FIB_BUS0_RECEIVE, False), (1, FIB_BUS1, True),
              (1, FIB_BUS1, False))


def fib(log_height: int = 20) -> Workload:
    """Fibonacci over ``2^log_height`` rows from ``(0, 1)`` with the four interaction AIRs.
    The Fibonacci trace is built on the default device (as keccakf's); the four small traces
    are host arrays, uploaded by ``prove``."""
    name, airs, params = key_shape("fib", log_height)
    trace, public_values = fib_trace(0, 1, 1 << log_height, on_device=True)
    inputs = [AirInput(trace, public_values)]
    for _, rows, _ in _FIB_BUSES:
        rows = np.asarray(rows, dtype=np.uint64)
        common, _ = dummy_interaction_trace(rows[:, 0], rows[:, 1:])
        inputs.append(AirInput(common))
    return Workload(name, airs, params, inputs)
