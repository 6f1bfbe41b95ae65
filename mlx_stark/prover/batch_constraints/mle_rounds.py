"""The multilinear rounds of the batch constraint sumcheck (constraints.md §6.6) and the column
openings (§6.7), on one device transcript segment.

After round 0 every trace's table is folded at ``r_0`` (:func:`fold_tables`) and kept
column-major ``(W_tot, 2^ñ, 4)``: a round reads each column's pairs ``T[c, 2y], T[c, 2y+1]``
contiguously. Round ``j`` evaluates ``a_t, b_t, b'_t`` (the trace's three forms) at
``X = 1..d`` on the lowest variable of every *head* trace (``ñ ≥ j``) — with native kernels the
generated kernel reads the lines through the pairs directly — weighted by
``eq(ξ[l+j..l+ñ), y)`` and summed over ``y``; ``X = 0`` follows from the running claim. A trace
with ``ñ < j`` is a *tail*: its table is a single row, a constant carried in ``tail``. Then
every head table binds its lowest variable to ``r_j``.

The round messages, the challenges and the final folded tables come back in the segment's one
read. The openings are observed in §6.7 order, one chain of permutations: by the native host
sponge after that read where it exists (faster than one GPU warp), else in the segment.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import mlx.core as mx

from ... import arrays, custom_kernels
from ...custom_kernels import constraints
from ...air.forms import Form
from ...custom_kernels.rounds import point_table
from ...field import ext
from ...field.bb import U32
from ...field.host import EF, horner
from ...poly import eq_suffix_tables, fold_lowest, fold_skip, host, interpolate_at_integers
from ...tracing import Rows, span, wait
from ...transcript import Transcript, device_segment
from .traces import TraceData, lift

# Table elements (uint32) that fold_tables builds and folds at once (no more than fold_skip
# folds at once: one fold per chunk).
_FOLD_TABLE_ELEMS = 1 << 22
# Table elements (uint32) that _fold_rows' ops path folds at once.
_FOLD_ROWS_ELEMS = 1 << 20
# Folded tables (uint32 elements, all heads) from which a round's end evaluates them: below it
# the next sync comes before the memory matters.
_BOUND_ELEMS = 1 << 22
# Points (uint32 elements) that _head_values' ops path builds at once: the DAG evaluation's
# temporaries are several times its points.
_HEAD_POINT_ELEMS = 1 << 22


def _column_major(table: mx.array) -> mx.array:
    """``(R, C, 4)`` -> ``(C, R, 4)`` uint32: two transposes of the last two axes, first of
    ``(R, 4C)``, then of the ``C`` blocks ``(4, R)``."""
    r, c = table.shape[:2]
    return arrays.transpose(arrays.transpose(table.reshape(r, 4 * c)).reshape(c, 4, r))


def fold_tables(trs: Sequence[TraceData], l_skip: int, r0: EF) -> List[mx.array]:
    """Every trace's table (lifted to ``max(H, 2^l)`` rows) with its univariate variable bound
    to ``r_0``, column-major: ``(W_tot, 2^ñ, 4)`` uint32 per trace."""
    return [_fold_table(tr, l_skip, r0) for tr in trs]


def _fold_table(tr: TraceData, l_skip: int, r0: EF) -> mx.array:
    """:func:`fold_tables` of one trace. The logical table's rotated and selector columns are
    not stored (:meth:`TraceData.columns`). The native kernel reads them from the parts as it
    folds (one launch: no logical table, whose copy is twice the trace, and no transposes).
    On the MLX-ops path they are built and folded a few row blocks at a time, into a
    preallocated output (written in place: nothing else holds it), with a host wait per
    chunk; on a GPU, chunk updates of a lazy output copy it per chunk (measured: keccakf's
    fold 3 → 64 ms)."""
    width = tr.width_total
    kernel = custom_kernels.native("mle_rounds.fold_table") if tr.wall else None
    if kernel is not None:
        return kernel(tr.table, tr.need_rot, l_skip, ext.from_host(host.lagrange_basis(l_skip, r0)))
    if tr.height < 1 << l_skip:  # one block, lifted
        return _column_major(fold_skip(lift(tr.columns(range(width)), 1 << l_skip), l_skip, r0))
    blocks = tr.height >> l_skip
    step = max(1, _FOLD_TABLE_ELEMS // (width << l_skip))
    if step >= blocks or custom_kernels.native("mle.fold_skip:base") is not None:
        return _column_major(fold_skip(tr.columns(range(width)), l_skip, r0))
    out = mx.zeros((width, blocks, 4), dtype=U32)
    for b in range(0, blocks, step):
        e = min(b + step, blocks)
        out[:, b:e] = _column_major(fold_skip(tr.columns(range(width), b << l_skip, e << l_skip),
                                              l_skip, r0))
        wait(out)  # frees the chunk's columns and temporaries
    return out


def _fold_rows(table: mx.array, r) -> mx.array:
    """Bind the lowest variable of a column-major table ``(W_tot, 2M, 4)`` to ``r``:
    ``T'[c, y] = T[c, 2y] + r·(T[c, 2y+1] − T[c, 2y])``, ``(W_tot, M, 4)``. The ops path's
    temporaries are several times the table: it folds a few ``y`` at a time (evaluated one by
    one, then concatenated: an in-place update of a preallocated output copies it per chunk
    when the chunks are evaluated asynchronously); a native kernel folds all at once."""
    w, m = table.shape[0], table.shape[1] // 2
    step = max(1, _FOLD_ROWS_ELEMS // (8 * w))
    if step >= m or custom_kernels.native("mle.fold_lowest:ext") is not None:
        return _fold_pairs(table, r)
    parts = []
    for lo in range(0, m, step):
        parts.append(_fold_pairs(table[:, 2 * lo:2 * (lo + step)], r))
        mx.async_eval(parts[-1])  # frees the chunk's temporaries; no host wait
    return mx.concatenate(parts, axis=1)


def _fold_pairs(table: mx.array, r) -> mx.array:
    """:func:`_fold_rows` of all rows at once: ``(W_tot, 2M, 4)`` -> ``(W_tot, M, 4)``. The
    pairs ``T[c, 2y], T[c, 2y+1]`` are the flat table's adjacent rows ``2i, 2i+1`` (``i = c·M
    + y``): one fold of the ``(2·W_tot·M, 4)`` view, no transpose."""
    w, rows = table.shape[:2]
    return fold_lowest(table.reshape(w * rows, 4), r).reshape(w, rows // 2, 4)


def _head_values(tr: TraceData, forms: List[Form], table: mx.array, colmap: mx.array,
                 degree: int, weights: mx.array) -> mx.array:
    """``a_t, b_t, b'_t`` at ``X = 1..d`` (§6.6): ``(3, d, 4)`` uint32. ``table``: the folded
    table, column-major ``(W_tot, 2M, 4)``; ``colmap``: ``tr.needed`` ``(Wn,)`` uint32;
    ``weights``: ``eq(ξ[l+j..l+ñ), y)`` ``(M, 4)``. With native kernels the generated kernel
    reads the table's lines directly; otherwise the points are built and evaluated for a few
    ``y`` at a time (their sums added up, exact in F)."""
    kernel = custom_kernels.native("mle_rounds.head_values")
    if kernel is not None:  # the kernel's parts (K, 3, d·M, 4) summed with the weighting
        parts = kernel(tr.leaves, forms, table, colmap, degree)
        return ext.mul_sum(parts.reshape(parts.shape[0], 3, degree, weights.shape[0], 4),
                           weights, 3, also=0)
    m = table.shape[1] // 2
    step = max(1, _HEAD_POINT_ELEMS // (colmap.shape[0] * degree * 4))
    out = None
    for lo in range(0, m, step):
        hi = min(lo + step, m)
        points = line_points(table[:, 2 * lo:2 * hi], colmap, degree)
        part = _weighted_sum(mx.stack(tr.evaluator.evaluate(forms, points, base=False)),
                             weights[lo:hi], degree)
        out = ext.accumulate(out, part)
        if step < m:
            mx.async_eval(out)  # frees the chunk's points and temporaries; no host wait
    return out


def _weighted_sum(values: mx.array, weights: mx.array, degree: int) -> mx.array:
    """``Σ_y v[X, y]·weights[y]`` of the three forms' values ``(3, d·M, 4)`` (points in
    ``(X, y)`` order), ``weights`` ``(M, 4)``: ``(3, d, 4)`` uint32."""
    values = values.reshape(3, degree, weights.shape[0], 4)
    return ext.mul_sum(values, weights, 2)


def line_points(table: mx.array, colmap: mx.array, degree: int) -> mx.array:
    """The points a multilinear round evaluates: ``T[c, 2y] + X·(T[c, 2y+1] − T[c, 2y])`` for
    the columns ``colmap`` ``(Wn,)`` of the column-major table ``(W_tot, 2M, 4)``, at
    ``X = 1..degree``: ``(Wn, degree·M, 4)`` uint32, points in ``(X, y)`` order."""
    wn, m = colmap.shape[0], table.shape[1] // 2
    v = arrays.take(table, colmap).reshape(wn, m, 2, 4)
    diff = ext.sub(v[:, :, 1], v[:, :, 0])
    points = [v[:, :, 1]]
    for _ in range(degree - 1):
        points.append(ext.add(points[-1], diff))
    return mx.stack(points, axis=1).reshape(wn, degree * m, 4)


def _combine(vals: mx.array, coefs: mx.array, zc: mx.array, lu: mx.array) -> mx.array:
    """``Σ_t μ^(2T+t)·a_t·zc + (μ^(2t)·b_t + μ^(2t+1)·b'_t)·lu`` over traces ``t``: ``vals``
    ``(H, 3, ..., 4)`` holds ``a, b, b'``, ``coefs`` ``(H, 3, 4)`` their μ powers (see
    :func:`prove_mle_rounds`); ``zc, lu`` ``(4,)``; returns ``(..., 4)`` uint32."""
    c = coefs.reshape((coefs.shape[0], 3) + (1,) * (vals.ndim - 3) + (4,))
    s_zc = ext.mul_sum(vals[:, 0], c[:, 0], 0)
    s_lu = ext.add(ext.mul_sum(vals[:, 1], c[:, 1], 0), ext.mul_sum(vals[:, 2], c[:, 2], 0))
    return ext.add(ext.mul(s_zc, zc), ext.mul(s_lu, lu))


class RoundPoints:
    """The points ``x_j`` of the multilinear rounds (host EF, round ``j`` at index ``j − 1``)
    and, for the round kernels, all of them as one device table made once per proof
    (:func:`mlx_stark.custom_kernels.rounds.point_table`)."""

    def __init__(self, xs: Sequence[EF], table: Optional[mx.array] = None):
        self.x = [EF.lift(x) for x in xs]
        self._table = table

    def table(self) -> mx.array:
        if self._table is None:
            self._table = point_table(self.x)
        return self._table


def round_message(vals: mx.array, coefs: mx.array, state: mx.array, points: RoundPoints, j: int,
                  degree: int) -> mx.array:
    """Round ``j + 1``'s message ``(d+1, 4)`` (the round polynomial at ``X = 1..d+1``) from the
    head traces' ``a, b, b'`` at ``X = 1..d`` (``vals`` ``(H, 3, d, 4)``, ``coefs`` ``(H, 3,
    4)`` as for :func:`_combine`) and the round state ``[claim, zc, lu, tail]`` ``(4, 4)``:
    with ``x = points.x[j]`` the round polynomial is ``eq(x, X)·s_head(X) + tail·X`` and sums
    to ``claim`` over ``X ∈ {0, 1}``."""
    x_j = points.x[j]
    claim, zc, lu, tail = (state[k, ...] for k in range(4))
    s_head = _combine(vals, coefs, zc, lu)  # (d, 4) at X = 1..d
    s_head0 = ext.mul(ext.sub(ext.sub(claim, ext.mul(s_head[0, ...], ext.constant(x_j))), tail),
                      ext.constant(EF.one() / (1 - x_j)))
    s_head = mx.concatenate([s_head0[None], s_head])
    s_head = mx.concatenate([s_head, interpolate_at_integers(s_head, degree + 1)[None]])
    # msg[X − 1] = ((1 − x_j) + (2x_j − 1)·X)·s_head[X] + tail·X, X = 1..d+1
    factors = ext.from_host([(1 - x_j) + (x_j * 2 - 1) * x for x in range(1, degree + 2)])
    return ext.add(ext.mul(s_head[1:], factors),
                   ext.mul(tail[None], ext.from_host(list(range(1, degree + 2)))))


def round_update(msg: mx.array, r: mx.array, state: mx.array, points: RoundPoints, j: int) -> mx.array:
    """The state ``[claim, zc, lu, tail]`` ``(4, 4)`` after round ``j + 1`` with challenge ``r``
    ``(4,)``: ``s(r)`` (through ``(0, claim − msg[0])`` and ``msg`` ``(d+1, 4)`` at
    ``1..d+1``), ``zc`` and ``lu`` times ``eq(x, r)`` with ``x = points.x[j]``, ``tail·r`` (the
    next round's tail before the traces that end there)."""
    x_j = points.x[j]
    claim = interpolate_at_integers(
        mx.concatenate([ext.sub(state[0, ...], msg[0, ...])[None], msg]), r)
    eq_j = ext.add(ext.mul(r, ext.constant(x_j)), ext.mul(ext.one_minus(r), ext.constant(1 - x_j)))
    return mx.stack([claim, ext.mul(state[1, ...], eq_j), ext.mul(state[2, ...], eq_j),
                     ext.mul(state[3, ...], r)])


def round_step(dt, vals: mx.array, coefs: mx.array, state: mx.array, points: RoundPoints, j: int,
               degree: int) -> tuple:
    """Round ``j + 1`` on the device transcript ``dt``: its message (:func:`round_message`),
    observed, the challenge ``r_j`` sampled after it, and the next state
    (:func:`round_update`): ``(msg (d+1, 4), r_j (4,), state (4, 4))``. One launch with native
    kernels (:func:`mlx_stark.custom_kernels.rounds.round_step`, absorbing in its own copy of
    the transcript's duplex)."""
    kernel = custom_kernels.native("mle_rounds.round_step")
    if kernel is not None and dt.on_device:
        msg, state = dt.absorb_with(4 * (degree + 1), lambda sponge, a, last: kernel(
            vals, coefs, state, points.table(), j, degree, sponge, a, last))
        return msg, dt.sample_ext(), state
    msg = round_message(vals, coefs, state, points, j, degree)
    dt.observe(msg)
    r = dt.sample_ext()
    return msg, r, round_update(msg, r, state, points, j)


def _opening_rows(trs: Sequence[TraceData], tables: Sequence[mx.array]) -> List[int]:
    """Rows of the folded columns of every trace stacked (each trace's ``W_tot`` in turn, then
    one zero row), in the order §6.7 observes the openings: all common mains first, then the
    other parts per trace; each column as (value, rotated value), the rotation the zero row
    where the trace has none (:meth:`TraceData.opening_columns`)."""
    zero = sum(t.shape[0] for t in tables)
    bases, at = [], 0
    for t in tables:
        bases.append(at)
        at += t.shape[0]
    columns = [tr.opening_columns() for tr in trs]
    order = []
    for parts in (slice(0, 1), slice(1, None)):
        for base, trace_parts in zip(bases, columns):
            for part in trace_parts[parts]:
                for col, rot in part:
                    order += [base + col, zero if rot is None else base + rot]
    return order


def _form_kernels(trs: Sequence[TraceData], forms: List[List[Form]], n_max: int) -> list:
    """``(kernel, trace, leaves)`` of every generated kernel the rounds launch with native
    kernels (a trace's round kernel while it is a head, its evaluation where it ends before
    the last round); none on the MLX-ops path."""
    out = []
    if custom_kernels.native("mle_rounds.head_values") is not None:
        out += [(constraints.kernel_for(tr.leaves, forms[t], False, mle=True), t, tr.leaves)
                for t, tr in enumerate(trs) if tr.nt >= 1]
    if custom_kernels.native("constraint_eval.DagEvaluator.evaluate_blocks") is not None:
        out += [(constraints.kernel_for(tr.evaluator.leaves, forms[t], False), t, tr.evaluator.leaves)
                for t, tr in enumerate(trs) if tr.nt < n_max]
    return out


def prove_mle_rounds(transcript: Transcript, trs: Sequence[TraceData], tables: List[mx.array],
                     forms: List[List[Form]], l_skip: int, degree: int, xi: List[EF],
                     mu_pows: List[EF], claim: EF,
                     r0: EF) -> Tuple[List[List[EF]], List[EF], List[List[List[EF]]]]:
    """Rounds ``1..n_max`` (§6.6) and the openings (§6.7) on ``transcript``.

    ``trs``: the traces in sorted order; ``tables``: :func:`fold_tables` at ``r0``; ``forms``:
    per trace ``[Σ_i λ^i·C_i, numerator, denominator]``; ``mu_pows``: ``μ^0..μ^(3T−1)``;
    ``claim``: ``s_0(r_0)``. Returns the round polynomials (``n_max`` lists of ``d+1`` EF, the
    values at ``X = 1..d+1``), ``r_1..r_{n_max}`` and per trace the openings per part."""
    num_traces, n_max = len(trs), trs[0].nt
    e_zc = host.eq_d(l_skip, xi[0], r0)
    e_lu = horner(host.eq_sharp_coeffs(l_skip, xi), r0)
    colmaps = [arrays.indices(tr.needed) for tr in trs]
    # eq(ξ[l+j..l+ñ), ·) of round j at j − 1: the tables of the suffixes (one launch per trace)
    weights = [eq_suffix_tables(xi[l_skip + 1:l_skip + tr.nt]) for tr in trs]
    points = RoundPoints(xi[l_skip:l_skip + n_max])  # x_j of round j at j − 1

    # per trace t: μ^(2T+t), μ^(2t), μ^(2t+1), the weights of its a_t, b_t, b'_t
    coefs = ext.from_host([mu_pows[k] for t in range(num_traces)
                           for k in (2 * num_traces + t, 2 * t, 2 * t + 1)]).reshape(num_traces, 3, 4)
    state0 = ext.from_host([claim, e_zc, e_lu, EF.zero()])  # claim, zc, lu, tail
    # the segment's per-proof arrays, as inputs (it may run as a compiled graph): the tables,
    # the eq weights, the μ weights, the state, the points, and what the generated kernels
    # read of the forms (their weights and the public values)
    kernels = _form_kernels(trs, forms, n_max)
    inputs = [*tables, *(w for ws in weights for w in ws), coefs, state0, points.table(),
              *(a for k, t, leaves in kernels for a in (k.form_arrays(forms[t]), k.consts(leaves.leaf)))]
    counts = [len(ws) for ws in weights]
    rows = _opening_rows(trs, tables)
    # what the segment keeps of the traces: not their tables (a compiled segment keeps its body)
    trs = [replace(tr, table=None) for tr in trs]

    def rounds(dt, *ins):
        ins = iter(ins)
        tabs = [next(ins) for _ in trs]
        weights = [[next(ins) for _ in range(c)] for c in counts]
        coefs, state, table = next(ins), next(ins), next(ins)
        points = RoundPoints(xi[l_skip:l_skip + n_max], table)
        with constraints.bound({(k, id(forms[t])): (next(ins), next(ins)) for k, t, _ in kernels}):
            return _rounds(dt, tabs, weights, coefs, state, points)

    def _rounds(dt, tabs, weights, coefs, state, points):
        final = [None] * num_traces
        for t, tr in enumerate(trs):
            if tr.nt == 0:
                final[t] = tabs[t]
        msgs, rs = [], []
        for j in range(1, n_max + 1):
            # the traces that become tails here (a constant from now on): a run of the traces,
            # sorted by height, whose a, b, b' are combined at once
            ending = [t for t, tr in enumerate(trs) if tr.nt == j - 1]
            if ending:
                assert ending == list(range(ending[0], ending[-1] + 1))
                values = mx.stack([  # (E, 3, 4)
                    mx.stack(trs[t].evaluator.evaluate(forms[t], arrays.take(final[t], colmaps[t]),
                                                       base=False)).reshape(3, 4)
                    for t in ending])
                tail = ext.add(state[3, ...], _combine(values, coefs[ending[0]:ending[-1] + 1],
                                                       state[1, ...], state[2, ...]))
                state = mx.concatenate([state[:3], tail[None]])
            # the traces are sorted by height: the heads are the first ones
            heads = [t for t, tr in enumerate(trs) if tr.nt >= j]
            with span("prover.rap_constraints.mle_rounds.evaluate"):
                head_vals = []
                for t in heads:
                    head_vals.append(_head_values(trs[t], forms[t], tabs[t], colmaps[t], degree,
                                                  weights[t][j - 1]))
            # head_vals: (heads, 3, d, 4), a, b, b' at X = 1..d
            head_vals = mx.stack(head_vals) if len(head_vals) > 1 else head_vals[0][None]
            msg, r_j, state = round_step(dt, head_vals, coefs[:len(heads)], state, points, j - 1,
                                         degree)
            msgs.append(msg)
            rs.append(r_j)
            with span("prover.rap_constraints.mle_rounds.fold"):
                for t in heads:
                    tabs[t] = _fold_rows(tabs[t], r_j)
                    if trs[t].nt == j:
                        final[t] = tabs[t]
                # bounds the graph and frees the old tables while they are large (each
                # evaluation is a submission of its own); no host wait
                if sum(tabs[t].size for t in heads) >= _BOUND_ELEMS:
                    mx.async_eval([tabs[t] for t in heads])
        flat = mx.concatenate([f.reshape(-1, 4) for f in final])
        # the column openings are observed in §6.7 order (a zero row after the values stands
        # for the rotation of a trace without one): one chain of permutations (keccakf: 42k
        # values), which the host runs after the read-back where it can (the host's worker
        # absorbs them while the proof's values below are made)
        dt.observe_after_sync(flat, rows)
        return None, [flat, Rows(msgs, (degree + 1, 4)), Rows(rs, (4,))]

    _, (flat, msgs, rs) = device_segment(transcript, rounds, inputs,
                                         key=("mle_rounds", tuple(id(tr.dag) for tr in trs),
                                              tuple(tr.nt for tr in trs), degree, l_skip))
    round_polys = [ext.host_values(m) for m in msgs]
    challenges = ext.host_values(rs)
    # the column openings for the proof
    values, at, openings = ext.host_values(flat), 0, []
    for tr, table in zip(trs, tables):
        width = table.shape[0]  # every trace's W_tot folded columns in turn
        openings.append(tr.openings(values[at:at + width]))
        at += width
    return round_polys, challenges, openings
