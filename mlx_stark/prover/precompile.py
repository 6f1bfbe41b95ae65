"""A proof's kernels compiled ahead, in parallel (CUDA; docs/tracking/cold-start.md).

Without this, a process's first proof compiles each kernel when its first launch comes, one
after another: on a fresh machine most of the first proof's time. The kernels a proof launches
are known before it starts: the fixed ones (:func:`mlx_stark.custom_kernels.fixed_sources`) and
the constraint kernels generated from each present AIR's DAG, which depend on the slot
structure of the forms each stage evaluates and on the trace's layout, not on the challenges or
the data; the row hashes of the commitments depend on their stacked widths. :func:`start`
hands all of them to the background compile pool at the start of the
first proof of a key and height profile in a process, so that they compile concurrently while
the proof runs (a launch of a kernel still compiling waits for it).
"""
from __future__ import annotations

from typing import List, Sequence

from .. import custom_kernels, device
from ..field.host import EF
from .batch_constraints.round0 import round0_forms
from .batch_constraints.traces import describe_trace


def constraint_sources(pk, l_skip: int, traces: Sequence) -> List:
    """The generated constraint kernels a proof of ``traces`` launches on the native path
    (:class:`~mlx_stark.custom_kernels.KernelSource`), for traces with ``air_id``,
    ``log_height`` and ``public_values``, in sorted order. Each stage's forms come from the
    stage's own form builders, with placeholder weights (a kernel depends on the forms' slots
    only): the GKR leaves and round 0 (base field), the multilinear rounds (reading the folded
    table) and a trace's constant tail after its last round (extension field)."""
    from ..custom_kernels.constraints import kernel_for

    one = EF.one()
    trs = [describe_trace(pk, l_skip, t.air_id, t.log_height, t.public_values) for t in traces]
    n_max = trs[0].nt if trs else 0
    sources = []
    for tr in trs:
        lam = [one] * len(tr.dag.constraint_idx)
        eq3b = [one] * tr.num_interactions
        uses = [(forms, True, False) for forms in round0_forms(tr, lam, eq3b, one)]
        if tr.num_interactions:
            uses.append((tr.gkr_forms(one), True, False))
        rounds = tr.round_forms(lam, eq3b, one)
        if tr.nt >= 1:
            uses.append((rounds, False, True))
        if tr.nt < n_max:
            uses.append((rounds, False, False))
        sources += [kernel_for(tr.leaves, forms, base, mle).source
                    for forms, base, mle in uses if forms]
    return list(dict.fromkeys(sources))  # AIRs of one shape share their kernels


def commit_sources(params, widths: Sequence[int]) -> list:
    """The kernels hashing the rows of a proof's commitments: the stacked ones of ``widths``
    (codewords of ``2^(m + log_blowup)`` rows) and WHIR's round codewords (width 4, half as
    many rows each round), with ``2^k`` rows per leaf group: the leaf-group kernel of small
    matrices, the row hashes of large ones (:func:`~mlx_stark.custom_kernels.poseidon2.leaf_source`)."""
    from ..custom_kernels.poseidon2 import leaf_source
    log_rows = params.log_stacked_height + params.log_blowup
    shapes = ([(log_rows, w) for w in widths]
              + [(log_rows - 1 - i, 4) for i in range(params.num_whir_rounds - 1)])
    sources = (leaf_source(1 << h, w, params.k_whir) for h, w in shapes)
    return list(dict.fromkeys(s for s in sources if s is not None))


def start(pk, traces: Sequence, widths: Sequence[int]) -> None:
    """Start compiling, in the background, every kernel a proof of ``traces`` will launch that
    this process has not compiled yet: the constraint kernels, the leaf groups of the
    commitments of ``widths`` (the stacked widths) and of WHIR's extension-field codewords,
    and the fixed kernels. Does nothing off CUDA or after the
    first proof of this key and height profile (each DAG remembers the profiles it was prepared
    for)."""
    if not device.native_kernels_active() or not custom_kernels.compiles_ahead():
        return
    l_skip = pk.params.l_skip
    nts = [max(0, t.log_height - l_skip) for t in traces]
    n_max = max(nts, default=0)
    profiles = [(pk.per_air[t.air_id].vk.symbolic_constraints.cache.get("prover.precompile", set),
                 (l_skip, nt >= 1, nt < n_max)) for t, nt in zip(traces, nts)]
    if all(key in seen for seen, key in profiles):
        return
    custom_kernels.precompile(constraint_sources(pk, l_skip, traces)
                              + commit_sources(pk.params, widths)
                              + custom_kernels.fixed_sources(), wait=False)
    for seen, key in profiles:
        seen.add(key)
