"""The prover's orchestration (constraints.md §4): every transcript action in order.

``prove(pk, inputs)``: validate the inputs (before any heavy work), sort the present traces,
commit, observe the preamble, run the constraint stage (LogUp GKR + batch constraint sumcheck),
then the stacked opening reduction and WHIR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import mlx.core as mx
import numpy as np

from .. import device
from ..air.check import AirTrace, check_interaction_balance
from ..errors import InvalidInputError, UnbalancedInteractions
from ..field.bb import P
from ..layout import (
    commitment_list, stacked_layout, trace_height_violations, trace_order, trace_parts,
)
from ..poly.host import u_cube
from ..proof.stark import Proof, TraceVData
from ..tracing import read, span
from ..transcript import Transcript
from . import precompile
from .batch_constraints import prove_zerocheck_and_logup
from .stacked_pcs import stacked_commit
from .stacked_reduction import prove_stacked_reduction
from .whir import prove_whir


@dataclass
class AirInput:
    """One present AIR's data: the common main ``(H, width)`` uint32 matrix (NumPy or MLX), its
    public values, and its cached main matrices ``(H, cached_widths[k])`` in declaration order."""

    common_main: Any
    public_values: Sequence[int] = ()
    cached_mains: Sequence[Any] = field(default_factory=tuple)


def prove(pk, inputs: Sequence[Optional[AirInput]]) -> Proof:
    """Prove ``inputs`` (one entry per AIR of ``pk``, ``None`` for an absent optional AIR).

    Raises :class:`~mlx_stark.errors.InvalidInputError` for bad inputs (checked first) and
    :class:`~mlx_stark.errors.ProverError` if no valid proof can exist; unbalanced interactions
    are found by the LogUp GKR's root numerator and raise
    :class:`~mlx_stark.errors.UnbalancedInteractions` naming the first unbalanced messages.
    """
    if inputs is None or isinstance(inputs, (str, bytes)):
        raise InvalidInputError("inputs must be a sequence with one AirInput or None per AIR")
    params = pk.params
    with device.settled(), span("stark_prove_excluding_trace"):
        # the whole call after trace generation: validation and the upload of host traces
        # count too, as a user waits for them
        with span("prover.validate"):
            present = _validate(pk, inputs)
        traces = [present[a] for a in trace_order({a: t.log_height for a, t in present.items()})]
        with span("prover.precompile"):
            # a process's first proof: every kernel compiles in the background from here on
            precompile.start(pk, traces, commit_widths(params, traces))
        transcript = Transcript()
        transcript.observe_commit(pk.vk_pre_hash)

        with span("prover.main_trace_commit") as sp:
            # _validate scanned every matrix for values >= p already
            common = stacked_commit(params, [t.common_main for t in traces], check_values=False)
            cached = {t.air_id: [stacked_commit(params, [m], check_values=False) for m in t.cached_mains]
                      for t in traces}
            sp.produced(common.codewords)
        transcript.observe_commit(common.commit)

        # preamble, in AIR-id order (constraints.md §4.2 step 3)
        trace_vdata, public_values = [], []
        for a, apk in enumerate(pk.per_air):
            vk = apk.vk
            t = present.get(a)
            if not vk.is_required:
                transcript.observe(1 if t is not None else 0)
            if t is None:
                trace_vdata.append(None)
                public_values.append([])
                continue
            if vk.preprocessed_data is not None:
                transcript.observe_commit(vk.preprocessed_data.commit)
            else:
                transcript.observe(t.log_height)
            for c in cached[a]:
                transcript.observe_commit(c.commit)
            transcript.observe_many(t.public_values)
            trace_vdata.append(TraceVData(t.log_height, [c.commit for c in cached[a]]))
            public_values.append(list(t.public_values))

        try:
            gkr_proof, batch_proof, r = prove_zerocheck_and_logup(pk, transcript, traces)
        except UnbalancedInteractions:
            _explain_imbalance(pk, present)
            raise

        with span("prover.openings"):
            commits = commitment_list([
                trace_parts(common, pk.per_air[t.air_id].preprocessed_data, cached[t.air_id])
                for t in traces])
            pcs_datas = [c[0][1] for c in commits]  # commitment 0: every entry holds `common`
            need_rot = [[traces[t].vk.params.need_rot for t, _ in c] for c in commits]
            stacking_proof, u_prism = prove_stacked_reduction(params, transcript, pcs_datas,
                                                              need_rot, r)
            whir_proof = prove_whir(params, transcript, pcs_datas, u_cube(params.l_skip, u_prism))

    return Proof(common.commit, trace_vdata, public_values, gkr_proof, batch_proof,
                 stacking_proof, whir_proof)


# ---------------------------------------------------------------- input validation
def _matrix(x, what: str, width: int) -> mx.array:
    """``x`` as a canonical ``(H, width)`` uint32 MLX array, or :class:`InvalidInputError`.
    Shape and dtype are checked first; the scan for values ``>= p`` comes last."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "ui":
            raise InvalidInputError(f"{what}: integer dtype required, got {x.dtype}")
    elif isinstance(x, mx.array):
        if x.dtype not in (mx.uint32, mx.uint16, mx.uint8):
            raise InvalidInputError(f"{what}: uint32 array required, got {x.dtype}")
    else:
        raise InvalidInputError(f"{what}: NumPy or MLX array required, got {type(x).__name__}")
    if x.ndim != 2:
        raise InvalidInputError(f"{what}: must be 2-D (height, width), got shape {x.shape}")
    h, w = x.shape
    if w != width:
        raise InvalidInputError(f"{what}: width {w}, the AIR declares {width}")
    if h < 1 or h & (h - 1):
        raise InvalidInputError(f"{what}: height {h} is not a power of two")
    return mx.array(x) if isinstance(x, np.ndarray) else x


def _scan_values(matrices: list) -> None:
    """Reject any matrix with a value outside ``[0, p)``: one device pass per matrix and one
    read-back for all of them. The scan also moves host matrices to the default device before
    the heavy stages start (on CUDA the first device read of host data migrates its pages)."""
    flags = []
    for _, x in matrices:
        bad = mx.max(x) >= P
        if mx.issubdtype(x.dtype, mx.signedinteger):
            bad = bad | (mx.min(x) < 0)
        flags.append(bad)
    found = read(mx.stack(flags))[0] if flags else []
    for (what, _), bad in zip(matrices, found):
        if bad:
            raise InvalidInputError(f"{what}: values must be canonical field elements (< p)")


@dataclass
class _Present:
    air_id: int
    vk: Any
    air: Any
    common_main: mx.array
    cached_mains: List[mx.array]
    public_values: List[int]
    log_height: int


def _validate(pk, inputs) -> dict:
    """Check every input against the keys; returns ``{air_id: _Present}``."""
    params = pk.params
    m = params.log_stacked_height
    if len(inputs) != len(pk.per_air):
        raise InvalidInputError(f"{len(inputs)} inputs for {len(pk.per_air)} AIRs "
                                "(pass None for an absent optional AIR)")
    present, scans = {}, []
    for a, (apk, inp) in enumerate(zip(pk.per_air, inputs)):
        vk, name = apk.vk, f"AIR {a} ({apk.air_name})"
        if inp is None:
            if vk.is_required:
                raise InvalidInputError(f"{name} is required but absent")
            continue
        if not isinstance(inp, AirInput):
            raise InvalidInputError(f"{name}: expected AirInput or None, got {type(inp).__name__}")
        width = vk.params.width
        main = _matrix(inp.common_main, f"{name} common main", width.common_main)
        scans.append((f"{name} common main", main))
        h = main.shape[0]
        if len(inp.cached_mains) != len(width.cached_mains):
            raise InvalidInputError(f"{name}: {len(inp.cached_mains)} cached mains, the AIR "
                                    f"declares {len(width.cached_mains)}")
        cached = [_matrix(c, f"{name} cached main {k}", w)
                  for k, (c, w) in enumerate(zip(inp.cached_mains, width.cached_mains))]
        scans += [(f"{name} cached main {k}", c) for k, c in enumerate(cached)]
        if any(c.shape[0] != h for c in cached):
            raise InvalidInputError(f"{name}: every part must have the common main's height {h}")
        log_h = h.bit_length() - 1
        if log_h > m:
            raise InvalidInputError(f"{name}: height 2^{log_h} exceeds the stacked height 2^{m}")
        if vk.preprocessed_data is not None and log_h != params.l_skip + vk.preprocessed_data.hypercube_dim:
            raise InvalidInputError(f"{name}: height {h} differs from its preprocessed trace's")
        pvs = inp.public_values
        # integers only: int(987.5) or int('987') would silently prove another statement
        if (pvs is None or isinstance(pvs, (str, bytes)) or not hasattr(pvs, "__iter__")
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in pvs)):
            raise InvalidInputError(f"{name}: public values must be a sequence of integers")
        pvs = [int(v) for v in pvs]
        if len(pvs) != vk.params.num_public_values:
            raise InvalidInputError(f"{name}: {len(pvs)} public values, the AIR declares "
                                    f"{vk.params.num_public_values}")
        if any(not 0 <= v < P for v in pvs):
            raise InvalidInputError(f"{name}: public values must be canonical field elements")
        present[a] = _Present(a, vk, apk.air, main, cached, pvs, log_h)
    if not present:
        raise InvalidInputError("at least one AIR must be present")
    _check_shapes(pk, present)
    _scan_values(scans)
    for t in present.values():
        t.common_main = t.common_main.astype(mx.uint32)
        t.cached_mains = [c.astype(mx.uint32) for c in t.cached_mains]
    return present


def _explain_imbalance(pk, present: dict) -> None:
    """Name the unbalanced (bus, message) pairs with the exact host scan of
    :func:`~mlx_stark.air.check.check_interaction_balance` (raises when it finds them). Run only
    after the GKR found a nonzero root numerator, so balanced proofs never pay for it."""
    check_interaction_balance([
        AirTrace(pk.per_air[a].air, present[a].common_main, present[a].public_values,
                 present[a].cached_mains, dag=present[a].vk.symbolic_constraints)
        if a in present else None
        for a in range(len(pk.per_air))
    ])


def _check_shapes(pk, present: dict) -> None:
    """Trace-height constraints and the total stacked width, as the verifier will check them."""
    params = pk.params
    l = params.l_skip
    heights = {a: t.log_height for a, t in present.items()}
    broken = trace_height_violations(pk.trace_height_constraints, l, heights)
    if broken:
        i, total = broken[0]
        raise InvalidInputError(f"trace heights violate trace-height constraint {i} "
                                f"({total} >= {pk.trace_height_constraints[i].threshold})")
    widths = commit_widths(params, [present[a] for a in trace_order(heights)])
    if widths[0] == 0:
        raise InvalidInputError("the common main commitment would have width 0")
    width = sum(widths)
    if width > params.w_stack:
        raise InvalidInputError(f"total stacked width {width} exceeds w_stack = {params.w_stack}")


def commit_widths(params, traces: Sequence) -> List[int]:
    """The stacked width of every commitment of a proof of ``traces`` (sorted ``_Present``s),
    the common main's first (constraints.md §0.4)."""
    commits = commitment_list([
        trace_parts(t.common_main.shape[1], t.vk.params.width.preprocessed,
                    [c.shape[1] for c in t.cached_mains]) for t in traces])
    return [stacked_layout(params.l_skip, params.log_stacked_height,
                           [(w, traces[t].log_height) for t, w in c]).width for c in commits]
