"""The flagship workloads, shared by the CLI, the scripts and the benchmarks.

- ``keccakf``: ``KeccakfAir`` proving ``permutations`` Keccak-f[1600] permutations with
  ``app_params_with_100_bits_security(21)`` (the reference benchmark: 1024 permutations, a
  ``2^15 × 2633`` trace).
- ``logup``: the interaction workload of ``test_batch_constraints_with_interactions``
  (constraints.md §9.8: a sender and a receiver DummyInteractionAir on bus 0) as a full proof.
  ``scale`` (a power of two) repeats both traces ``scale`` times (each copy balances), so the
  LogUp path can be measured at sizes where the GPU matters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .airs import DummyInteractionAir, dummy_interaction_trace
from .airs.fixtures import RECEIVER_11, SENDER_11
from .airs.keccakf import KeccakfAir, keccakf_trace, random_keccakf_inputs
from .errors import InvalidInputError
from .params import SystemParams, app_params_with_100_bits_security, default_test_params_small
from .prover.prove import AirInput


@dataclass
class Workload:
    name: str
    airs: list
    params: SystemParams
    inputs: List[Optional[AirInput]]


def keccakf(permutations: int = 1024, seed: int = 0,
            params: SystemParams | None = None) -> Workload:
    """``permutations`` random Keccak-f permutations (inputs from ``seed``)."""
    if permutations < 1:
        raise InvalidInputError("at least one permutation is needed")
    trace = keccakf_trace(random_keccakf_inputs(permutations, seed))
    log_h = trace.shape[0].bit_length() - 1
    if params is None:
        # the reference uses log stacked height 21 for 1024 permutations: 6 more than the trace
        params = app_params_with_100_bits_security(max(log_h + 6, 11))
    return Workload(f"keccakf-{permutations}", [KeccakfAir()], params, [AirInput(trace)])


def logup(scale: int = 1) -> Workload:
    """The sender/receiver interaction workload, repeated ``scale`` times."""
    if scale < 1 or scale & (scale - 1):
        raise InvalidInputError(f"scale must be a power of two, got {scale}")
    airs, inputs = [], []
    for is_send, (count, fields) in ((True, SENDER_11), (False, RECEIVER_11)):
        count = np.tile(np.asarray(count, dtype=np.uint64), scale)
        fields = np.tile(np.asarray(fields, dtype=np.uint64), (scale, 1))
        common, _ = dummy_interaction_trace(count, fields)
        airs.append(DummyInteractionAir(1, is_send, 0))
        inputs.append(AirInput(common))
    if scale == 1:
        params = default_test_params_small()
    else:
        log_h = max(inp.common_main.shape[0] for inp in inputs).bit_length() - 1
        params = app_params_with_100_bits_security(max(log_h + 2, 11))
    return Workload(f"logup-x{scale}", airs, params, inputs)
