"""The constraint stage of the prover (constraints.md §4.2 steps 4–15): LogUp proof of work,
``α, β``, LogUp GKR (§5), ``ξ``, ``λ``, the sum claims, and the batch constraint sumcheck with
univariate skip (§6): round 0, the multilinear rounds, and the column openings.

Per trace, every column the AIR reads — trace columns, rotated columns and the three selector
columns — lives in one *table* ``(H, W_tot)``: ``[parts in proof order | the same rotated by one
row (if need_rot) | is_first, is_last, is_transition]``. Every stage evaluates λ-, eq3b- and
β-combinations of the DAG's outputs (:mod:`.constraint_eval`) on the columns the DAG reads;
only the points change:

* GKR leaves: the interaction values on the ``H`` rows (base field);
* round 0: the needed columns extended, once per trace and in one batched iDFT/DFT, to the
  cosets ``g^i·D`` (``i = 1..d_a−1``, ``g`` = F's generator); the DAG runs over whole base-field
  arrays of those points (and over ``D`` itself, the rows, for the LogUp sums). With
  ``A_t(Z) = Σ_x w_t(x)·C_t(Z,x)``, the zerocheck needs only the quotient
  ``A_t/(Z^N − 1)`` (degree ``< (d_a−1)·N``) and the LogUp sums ``B_t, B'_t`` need degree
  ``< d_a·N``: ``D ∪ g·D ∪ … ∪ g^(d_a−1)·D`` determines all of them exactly. ``s_0`` is then one
  product of polynomials, computed by DFT on a large enough subgroup;
* multilinear rounds: the tables folded at ``r_0`` (extension field), kept column-major
  ``(W_tot, 2^ñ, 4)`` and evaluated at ``X = 1..d`` on the current variable (the lowest):
  with native kernels the generated kernel reads the pairs ``T[c, 2y], T[c, 2y+1]`` of the
  needed columns directly; ``X = 0`` follows from the running claim (§6.6).

Variables are little-endian everywhere (row ``k + N·x`` is the point ``(ω^k, bits(x))``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import mlx.core as mx

from .. import arrays, custom_kernels
from ..air.dag import NodeKind, SymbolicConstraintsDag
from ..air.evaluate import DagInputs
from ..air.expr import Entry
from ..air.check import first_violation
from ..errors import ConstraintNotSatisfied, InvalidInputError, ProverError
from ..field import bb, ext
from ..field.bb import GENERATOR, P, U32, U64
from ..field.host import EF, horner
from ..layout import n_logup_of, segment_offsets
from ..poly import coset_lde, dft, eq_table, fold_lowest, fold_skip, idft, interpolate_at_integers
from ..poly import host as kernels
from ..proof.constraints import BatchConstraintProof, GkrProof
from ..tracing import read, span
from ..transcript import Transcript, device_segment
from .constraint_eval import DagEvaluator, Form
from .logup_gkr import (
    fraction_leaves,
    logup_challenges,
    prove_fractional_sumcheck,
)

# Largest block of extended column values (uint32 elements) that round 0 holds at once;
# the hypercube axis is processed in chunks below it.
_LDE_BLOCK_ELEMS = 1 << 26


def _contract(values: mx.array, weights: mx.array) -> mx.array:
    """``Σ_x weights[x]·values[x]``: ``values`` ``(X, ..., 4)``, ``weights`` ``(X, 4)``."""
    w = weights.reshape(weights.shape[:1] + (1,) * (values.ndim - 2) + (4,))
    return bb.sum(ext.mul(values, w), axis=0)


# ------------------------------------------------------------------ per-trace data
class _Cols:
    """Columns of one trace part as the DAG interpreter indexes them: ``cols[c]`` is input
    row ``pos[base + c]`` (``pos``: table column -> input row)."""

    __slots__ = ("get", "pos", "base")

    def __init__(self, get, pos: dict, base: int):
        self.get, self.pos, self.base = get, pos, base

    def __getitem__(self, c: int):
        return self.get(self.pos[self.base + c])


@dataclass
class TraceData:
    """One present trace, in sorted order, with its table layout (module docstring).

    ``needed``: the table columns the DAG reads (ascending): the rows of every evaluation's
    input. ``evaluator`` evaluates constraints and interactions, ``interactions_evaluator``
    interactions only."""

    air_id: int
    vk: Any
    dag: SymbolicConstraintsDag
    log_height: int
    n: int  # relative dimension h − l (may be negative)
    nt: int  # ñ = max(n, 0)
    table: mx.array  # (H, W_tot) uint32
    part_offsets: List[int]  # proof part -> first table column
    part_widths: List[int]
    wall: int  # columns of all parts
    need_rot: bool
    public_values: List[int]
    norm: int  # (2^(−n))^(−1) for n < 0, else 1
    needed: List[int] = field(default_factory=list)
    evaluator: Optional[DagEvaluator] = None
    interactions_evaluator: Optional[DagEvaluator] = None

    @property
    def height(self) -> int:
        return 1 << self.log_height

    @property
    def selector_offset(self) -> int:
        return self.wall * (2 if self.need_rot else 1)

    @property
    def degree(self) -> int:
        return self.vk.max_constraint_degree

    @property
    def num_interactions(self) -> int:
        return len(self.dag.interactions)

    def column_of(self, node) -> int:
        """Table column of a trace-variable or selector node (§1.1 part numbering)."""
        if node.kind in _SELECTORS:
            return self.selector_offset + _SELECTORS[node.kind]
        var = node.var
        if var.entry == Entry.MAIN:
            base = self.part_offsets[self.vk.dag_main_part_index_to_commit_index(var.part_index)]
        elif var.entry == Entry.PREPROCESSED:
            base = self.part_offsets[1]
        else:
            raise ProverError(f"AIR {self.air_id}: unsupported variable {var!r}")
        return base + var.index + (self.wall if var.offset else 0)

    def openings(self, values: List[EF]) -> List[List[EF]]:
        """Per proof part, the flat opening list of §6.7 from the folded table values."""
        out = []
        for off, w in zip(self.part_offsets, self.part_widths):
            part = []
            for c in range(w):
                part.append(values[off + c])
                if self.need_rot:
                    part.append(values[self.wall + off + c])
            out.append(part)
        return out

    def needed_columns(self, table: mx.array) -> mx.array:
        """The needed columns (axis 1) of a table ``(rows, W_tot, ...)``."""
        return mx.take(table, mx.array(self.needed, dtype=U32), axis=1)

    # ---------------------------------------------------------------- linear forms
    def constraint_form(self, lam_powers: List[EF]) -> Form:
        """``Σ_i λ^i·C_i``."""
        return Form([(("c", i), lam_powers[i]) for i in range(len(self.dag.constraint_idx))],
                    EF.zero())

    def interaction_forms(self, eq3b: List[EF], beta: EF) -> List[Form]:
        """``[norm·Σ_σ eq3b_σ·count_σ, Σ_σ eq3b_σ·h_σ]`` (§6.1; ``h_σ`` without ``α``)."""
        num, den, const = [], [], EF.zero()
        for s, (it, w) in enumerate(zip(self.dag.interactions, eq3b)):
            num.append((("n", s), w * self.norm))
            bp = w
            for j in range(len(it.message)):
                den.append((("m", s, j), bp))
                bp = bp * beta
            const = const + bp * (it.bus_index + 1)
        return [Form(num, EF.zero()), Form(den, const)]


_SELECTORS = {NodeKind.IS_FIRST_ROW: 0, NodeKind.IS_LAST_ROW: 1, NodeKind.IS_TRANSITION: 2}


def _selectors(height: int) -> mx.array:
    """``(H, 3)`` uint32: is_first, is_last, is_transition."""
    rows = mx.arange(height, dtype=U32)
    last = (rows == height - 1).astype(U32)
    return mx.stack([(rows == 0).astype(U32), last, 1 - last], axis=1)


def _lift(table: mx.array, rows: int) -> mx.array:
    """Cyclic repetition of a ``(H, …)`` table to ``rows ≥ H`` rows (§0.3)."""
    reps = rows // table.shape[0]
    return table if reps == 1 else mx.tile(table, (reps,) + (1,) * (table.ndim - 1))


def _reads_column(node) -> bool:
    return node.kind in _SELECTORS or (
        node.kind == NodeKind.VARIABLE and node.var.entry in (Entry.MAIN, Entry.PREPROCESSED))


def prepare_trace(pk, l_skip: int, t) -> TraceData:
    """Table, layout and evaluators of a present trace ``t`` (attributes ``air_id``,
    ``common_main``, ``cached_mains``, ``public_values``, ``log_height``; matrices ``(H, w)``
    uint32)."""
    apk = pk.per_air[t.air_id]
    vk = apk.vk
    width = vk.params.width
    h = int(t.log_height)
    parts = [t.common_main]
    if width.preprocessed is not None:
        parts.append(apk.preprocessed_trace)
    parts.extend(t.cached_mains)
    expected = [width.common_main] + ([width.preprocessed] if width.preprocessed is not None
                                      else []) + list(width.cached_mains)
    if len(parts) != len(expected):
        raise InvalidInputError(f"AIR {t.air_id}: {len(parts)} trace parts, expected {len(expected)}")
    for m, w in zip(parts, expected):
        if tuple(m.shape) != (1 << h, w):
            raise InvalidInputError(f"AIR {t.air_id}: a trace part has shape {tuple(m.shape)}, "
                                    f"expected {(1 << h, w)}")
    offsets, o = [], 0
    for w in expected:
        offsets.append(o)
        o += w
    cols = mx.concatenate([m.astype(U32) for m in parts], axis=1)
    need_rot = bool(vk.params.need_rot)
    pieces = [cols] + ([mx.concatenate([cols[1:], cols[:1]], axis=0)] if need_rot else [])
    table = mx.concatenate(pieces + [_selectors(1 << h)], axis=1)
    dag = vk.symbolic_constraints
    n = h - l_skip
    tr = TraceData(
        air_id=t.air_id, vk=vk, dag=dag, log_height=h, n=n, nt=max(n, 0), table=table,
        part_offsets=offsets, part_widths=expected, wall=o, need_rot=need_rot,
        public_values=[int(v) for v in t.public_values],
        norm=pow(1 << -n, P - 2, P) if n < 0 else 1,
    )
    tr.needed = sorted({tr.column_of(node) for node in dag.nodes if _reads_column(node)})
    pos = {j: i for i, j in enumerate(tr.needed)}

    def leaf(i: int):
        node = dag.nodes[i]
        if _reads_column(node):
            return True, pos[tr.column_of(node)]
        if node.kind == NodeKind.CONSTANT:
            return False, node.value
        if node.kind == NodeKind.VARIABLE and node.var.entry == Entry.PUBLIC:
            return False, tr.public_values[node.var.index] % P
        raise ProverError(f"AIR {t.air_id}: unsupported DAG leaf {node!r}")

    kinds = {node.kind for node in dag.nodes}

    def make_inputs(get) -> DagInputs:
        def pair(base):
            return _Cols(get, pos, base), (_Cols(get, pos, base + tr.wall) if need_rot else None)

        s = tr.selector_offset
        return DagInputs(
            main=[pair(offsets[vk.dag_main_part_index_to_commit_index(k)])
                  for k in range(len(width.main_widths))],
            preprocessed=pair(offsets[1]) if width.preprocessed is not None else None,
            public_values=tr.public_values,
            is_first_row=get(pos[s]) if NodeKind.IS_FIRST_ROW in kinds else None,
            is_last_row=get(pos[s + 1]) if NodeKind.IS_LAST_ROW in kinds else None,
            is_transition=get(pos[s + 2]) if NodeKind.IS_TRANSITION in kinds else None,
        )

    tr.evaluator = DagEvaluator(dag, True, leaf, len(tr.needed), make_inputs)
    tr.interactions_evaluator = DagEvaluator(dag, False, leaf, len(tr.needed), make_inputs)
    return tr


# ------------------------------------------------------------------ GKR leaves
def gkr_segments(tr: TraceData, l_skip: int, beta: EF) -> list:
    """``(p, h)`` per interaction of ``tr`` (lifted rows, see :func:`fraction_leaves`)."""
    rows = arrays.transpose(tr.needed_columns(tr.table))  # (Wn, H)
    forms = []
    for s, it in enumerate(tr.dag.interactions):
        ws, bp = [], EF.one()
        for j in range(len(it.message)):
            ws.append((("m", s, j), bp))
            bp = bp * beta
        forms += [Form([(("n", s), EF(tr.norm))], EF.zero()), Form(ws, bp * (it.bus_index + 1))]
    values = tr.interactions_evaluator.evaluate(forms, rows, base=True)
    lifted = max(tr.height, 1 << l_skip)
    # the numerator is a base-field value: its first coefficient
    return [(_lift(values[2 * s][:, 0], lifted), _lift(values[2 * s + 1], lifted))
            for s in range(tr.num_interactions)]


# ------------------------------------------------------------------ round 0
def _vandermonde_inverse(nodes: List[int]) -> List[List[int]]:
    """Inverse of ``V[i][m] = nodes[i]^m`` over F (small, host)."""
    e = len(nodes)
    a = [[pow(y, m, P) for m in range(e)] + [int(i == r) for i in range(e)]
         for r, y in enumerate(nodes)]
    for col in range(e):
        piv = next(r for r in range(col, e) if a[r][col])
        a[col], a[piv] = a[piv], a[col]
        inv = pow(a[col][col], P - 2, P)
        a[col] = [x * inv % P for x in a[col]]
        for r in range(e):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [(x - f * y) % P for x, y in zip(a[r], a[col])]
    return [row[e:] for row in a]


def interpolate_cosets(values: mx.array, shifts: Sequence[int]) -> mx.array:
    """Coefficients of the polynomial of degree ``< E·N`` with the given values on the cosets
    ``shifts[i]·D`` (``|D| = N``, shifts with distinct ``shift^N``).

    ``values``: ``(E, N, ..., 4)`` uint32, ``values[i, k]`` at ``shifts[i]·ω^k``. Returns
    ``(E·N, ..., 4)``. With ``c_{r+mN}`` the coefficients, the iDFT of coset ``i`` is
    ``shifts[i]^r·Σ_m c_{r+mN}·(shifts[i]^N)^m``: one ``E × E`` Vandermonde solve per ``r``."""
    e, n = values.shape[0], values.shape[1]
    u = idft(values, axis=1)
    vinv = _vandermonde_inverse([pow(s, n, P) for s in shifts])
    weights = []  # W[m][i][r] = Vinv[m][i]·shifts[i]^{−r}
    for m in range(e):
        row = []
        for i, s in enumerate(shifts):
            si = pow(s, P - 2, P)
            row.append([vinv[m][i] * pow(si, r, P) % P for r in range(n)])
        weights.append(row)
    w = mx.array(weights, dtype=U32).reshape((e, e, n) + (1,) * (values.ndim - 2))
    terms = (w.astype(U64) * u[None].astype(U64)) % P
    coeffs = (mx.sum(terms, axis=1) % P).astype(U32)
    return coeffs.reshape((e * n,) + values.shape[2:])


@dataclass
class Round0:
    """Round-0 polynomials of one trace (coefficient arrays ``(len, 4)``) and its sum claims."""

    quotient: Optional[mx.array]  # A_t / (Z^N − 1), or None
    numer: Optional[mx.array]  # B_t
    denom: Optional[mx.array]  # B'_t
    sums: mx.array  # (2, 4): the sum claims (sum_p, sum_q), on the device
    violated: Optional[mx.array] = None  # () bool: the constraints fail on some row (see below)
    sum_p: EF = EF.zero()  # the same, read back with every trace's (the stage driver)
    sum_q: EF = EF.zero()


def round0_trace(tr: TraceData, l_skip: int, xi: List[EF], lam_powers: List[EF], beta: EF,
                 eq3b: List[EF]) -> Round0:
    """Round-0 polynomials of one trace (§6.4) and its sum claims (§6.3): the needed columns
    are extended to the cosets ``g^1·D … g^(d_a−1)·D`` (one batched iDFT/DFT per chunk of the
    hypercube), the DAG is evaluated there (and, for the LogUp sums, on ``D`` = the rows), the
    results are weighted by ``w_t(x)`` and summed over ``x``, then interpolated.

    ``violated`` checks the witness at no extra cost: ``A_t`` has degree ``≤ d_a·(N−1)``, so for
    valid traces the quotient has degree ``≤ (d_a−1)·N − d_a`` and its top ``d_a − 1``
    coefficients vanish; unsatisfied constraints leave them nonzero (but with probability
    ``~1/p^4`` over ``ξ, λ``). Traces of degree ≤ 1 have no quotient: ``A_t`` itself is checked
    on ``D``."""
    n_dom = 1 << l_skip
    d_a = tr.degree
    zerocheck = bool(tr.dag.constraint_idx) and d_a >= 2
    check_on_d = bool(tr.dag.constraint_idx) and not zerocheck
    logup = tr.num_interactions > 0
    if not zerocheck and not logup and not check_on_d:
        return Round0(None, None, None, ext.zeros((2,)))
    extra = max(d_a, 1) - 1  # cosets g^1..g^extra besides D
    shifts = [pow(GENERATOR, i, P) for i in range(1, extra + 1)]
    lifted = max(tr.height, n_dom)
    x_len = lifted >> l_skip
    wn = len(tr.needed)
    vals = arrays.transpose(_lift(tr.needed_columns(tr.table), lifted)).reshape(wn, x_len, n_dom)
    weights = eq_table(xi[l_skip:l_skip + tr.nt])  # (X, 4)
    evaluator = tr.evaluator if zerocheck else tr.interactions_evaluator
    logup_forms = tr.interaction_forms(eq3b, beta) if logup else []
    forms = ([tr.constraint_form(lam_powers)] if zerocheck else []) + logup_forms
    d_forms = ([tr.constraint_form(lam_powers)] if check_on_d else []) + logup_forms
    a_acc = ext.zeros((extra, n_dom))
    a_on_d = ext.zeros((n_dom,))
    b_acc = [ext.zeros((extra + 1, n_dom)), ext.zeros((extra + 1, n_dom))]

    # a power of two, so that every chunk has the same shape (compiled kernels are reused)
    step = 1 << max(0, (_LDE_BLOCK_ELEMS // (wn * max(extra, 1) * n_dom)).bit_length() - 1)
    for x0 in range(0, x_len, step):
        block = vals[:, x0:x0 + step]  # (Wn, Xc, N)
        xc = block.shape[1]
        w = weights[x0:x0 + step]
        if d_forms:  # on D: the rows themselves
            at_d = (tr.evaluator if check_on_d else tr.interactions_evaluator).evaluate(
                d_forms, block.reshape(wn, xc * n_dom), base=True)
            at_d = [_contract(v.reshape(xc, n_dom, 4), w) for v in at_d]
            if check_on_d:
                a_on_d = ext.add(a_on_d, at_d.pop(0))
            for k, on_d in enumerate(at_d):
                b_acc[k] = ext.add(b_acc[k], mx.pad(on_d[None], [(0, extra), (0, 0), (0, 0)]))
        if extra:
            with span("prover.rap_constraints.round0.lde") as sp:
                ext_vals = coset_lde(block, shifts)  # (Wn, Xc, E', N)
                sp.produced(ext_vals)
            values = evaluator.evaluate(forms, ext_vals.reshape(wn, xc * extra * n_dom), base=True)
            values = [_contract(v.reshape(xc, extra, n_dom, 4), w) for v in values]
            if zerocheck:
                a_acc = ext.add(a_acc, values.pop(0))
            if logup:
                for k, v in enumerate(values):
                    b_acc[k] = ext.add(b_acc[k], mx.pad(v, [(1, 0), (0, 0), (0, 0)]))
        mx.async_eval(a_acc, a_on_d, *b_acc)  # bounds the graph and frees the chunk; no host wait

    quotient = numer = denom = None
    sums = ext.zeros((2,))
    violated = mx.any(a_on_d != 0) if check_on_d else None
    if zerocheck:
        # A_t vanishes on D: divide by Z^N − 1, the constant s^N − 1 on the coset s·D
        inv = mx.array([pow(pow(s, n_dom, P) - 1, P - 2, P) for s in shifts], dtype=U32)
        q_vals = ext.mul_base(a_acc, mx.broadcast_to(inv[:, None], (extra, n_dom)))
        quotient = interpolate_cosets(q_vals, shifts)
        violated = mx.any(quotient[extra * n_dom - (d_a - 1):] != 0)
    if logup:
        all_shifts = [1] + shifts
        numer = interpolate_cosets(b_acc[0], all_shifts)
        denom = interpolate_cosets(b_acc[1], all_shifts)
        # S = Σ_{z∈D} eq#_ξ(z)·B(z), and eq#_ξ(ω^k) = eq(ξ[0..l), bits(k))
        eq_l = eq_table(xi[:l_skip])
        sums = mx.stack([bb.sum(ext.mul(b_acc[0][0], eq_l), axis=0),
                         bb.sum(ext.mul(b_acc[1][0], eq_l), axis=0)])
    return Round0(quotient, numer, denom, sums, violated)


def read_round0_sums(rounds0: List[Round0]) -> None:
    """Fill in every trace's host ``sum_p, sum_q`` from its device ``sums``: one read."""
    sums = ext.host_values(read(mx.stack([r0.sums for r0 in rounds0]))[0])
    for t, r0 in enumerate(rounds0):
        r0.sum_p, r0.sum_q = sums[2 * t], sums[2 * t + 1]


def _padded_sum(terms, length: int) -> mx.array:
    """``Σ w·poly`` over ``(poly (len, 4), w: EF)``, zero-padded to ``(length, 4)``."""
    acc = ext.zeros((length,))
    for poly, w in terms:
        acc = ext.add(acc, mx.pad(ext.mul(poly, ext.constant(w)), [(0, length - poly.shape[0]), (0, 0)]))
    return acc


def s0_coefficients(l_skip: int, degree: int, xi: List[EF], mu_pows: List[EF],
                     rounds0: List[Round0]) -> Tuple[List[EF], List[int]]:
    """Coefficients of ``s_0`` (§6.4): ``eq_D(ξ_0, Z)·(Z^N − 1)·Σ_t μ^(2T+t)·Q_t(Z)
    + eq#_ξ(Z)·Σ_t (μ^(2t)·B_t + μ^(2t+1)·B'_t)(Z)``, exactly ``(d+1)(N−1)+1`` of them, and
    the positions of the traces whose ``violated`` flag is set (read in the same sync).

    Raises :class:`ProverError` if no flag is set but the product exceeds that degree."""
    n_dom = 1 << l_skip
    num_traces = len(rounds0)
    count = (degree + 1) * (n_dom - 1) + 1
    qs = [(r.quotient, mu_pows[2 * num_traces + t]) for t, r in enumerate(rounds0)
          if r.quotient is not None]
    bs = [(p, mu_pows[2 * t + k]) for t, r in enumerate(rounds0) if r.numer is not None
          for k, p in enumerate((r.numer, r.denom))]
    longest = max([q.shape[0] + n_dom for q, _ in qs] + [b.shape[0] for b, _ in bs] + [1])
    size = 1 << max(longest + n_dom - 1, count).bit_length()
    total = ext.zeros((size,))
    xi0 = EF.lift(xi[0])
    inv_n = pow(n_dom, P - 2, P)
    if qs:
        q = _padded_sum(qs, longest - n_dom)
        zq = ext.sub(mx.pad(q, [(n_dom, 0), (0, 0)]), mx.pad(q, [(0, n_dom), (0, 0)]))
        # eq_D(x, Z) = (1/N)·(1 + Σ_{j=1}^{N−1} x^{N−j}·Z^j)
        eq_d = [EF(inv_n)] + [xi0 ** (n_dom - j) * inv_n for j in range(1, n_dom)]
        total = ext.add(total, ext.mul(dft(_pad_to(ext.from_host(eq_d), size)),
                                       dft(_pad_to(zq, size))))
    if bs:
        b = _padded_sum(bs, longest)
        eq_sharp = ext.from_host(kernels.eq_sharp_coeffs(l_skip, xi))
        total = ext.add(total, ext.mul(dft(_pad_to(eq_sharp, size)), dft(_pad_to(b, size))))
    flags = mx.stack([mx.array(False) if r.violated is None else r.violated for r in rounds0])
    coeffs, flags = read(idft(total), flags)
    coeffs = ext.host_values(coeffs)
    violated = [t for t, f in enumerate(flags.tolist()) if f]
    if not violated and any(not c.is_zero() for c in coeffs[count:]):
        raise ProverError("the round-0 polynomial exceeds its degree bound: the traces do not "
                          "satisfy the AIR constraints")
    return coeffs[:count], violated


def explain_violation(pk, tr: TraceData) -> ProverError:
    """The error for a trace whose round 0 found its constraints unsatisfied: the first failing
    constraint and row, found by the DAG interpreter over the trace's table (the error path
    only, so its cost does not matter)."""
    air_name = pk.per_air[tr.air_id].air_name
    inputs = tr.evaluator.make_inputs(lambda k: tr.table[:, tr.needed[k]])
    found = first_violation(tr.dag, inputs, tr.height)
    if found is None:
        return ProverError(f"{air_name}: round 0 found the constraints unsatisfied, but no row fails")
    i, row = found
    node = tr.dag.constraint_idx[i]
    return ConstraintNotSatisfied(air_name, i, node, row, tr.dag.expression(node))


def _pad_to(a: mx.array, size: int) -> mx.array:
    return mx.pad(a, [(0, size - a.shape[0]), (0, 0)])


# ------------------------------------------------------------------ multilinear rounds
def _mle_evaluate(tr: TraceData, forms: List[Form], cols: mx.array) -> mx.array:
    """``(C, P, Q)`` at points whose needed column values are ``cols`` ``(Wn, P, 4)``
    (extension field): ``(3, P, 4)`` uint32."""
    return mx.stack(tr.evaluator.evaluate(forms, cols, base=False))


def _column_major(table: mx.array) -> mx.array:
    """``(R, C, 4)`` -> ``(C, R, 4)`` uint32: two transposes of the last two axes, first of
    ``(R, 4C)``, then of the ``C`` blocks ``(4, R)``."""
    r, c = table.shape[:2]
    return arrays.transpose(arrays.transpose(table.reshape(r, 4 * c)).reshape(c, 4, r))


def _fold_rows(table: mx.array, r: EF) -> mx.array:
    """Bind the lowest variable of a column-major table ``(W_tot, 2M, 4)`` to ``r``:
    ``T'[c, y] = T[c, 2y] + r·(T[c, 2y+1] − T[c, 2y])``, ``(W_tot, M, 4)``."""
    w, rows = table.shape[:2]
    pairs = mx.moveaxis(table.reshape(w, rows // 2, 2, 4), 2, 0)  # (2, W_tot, M, 4)
    return fold_lowest(pairs, r)[0]


def _head_values(tr: TraceData, forms: List[Form], table: mx.array, colmap: mx.array,
                 degree: int, weights: mx.array) -> mx.array:
    """``a_t, b_t, b'_t`` at ``X = 1..d`` (§6.6): ``(3, d, 4)`` uint32. ``table``: the folded
    table, column-major ``(W_tot, 2M, 4)``; ``colmap``: ``tr.needed`` ``(Wn,)`` uint32;
    ``weights``: ``eq(ξ[l+j..l+ñ), y)`` ``(M, 4)``. With native kernels the generated kernel
    reads the table's lines directly; otherwise the points are built and evaluated."""
    m = table.shape[1] // 2
    kernel = custom_kernels.native("constraints.evaluate_mle")
    if kernel is not None:
        values = kernel(tr.evaluator, forms, table, colmap, degree)
    else:
        v = mx.take(table, colmap, axis=0).reshape(len(tr.needed), m, 2, 4)
        diff = ext.sub(v[:, :, 1], v[:, :, 0])
        points = [v[:, :, 1]]
        for _ in range(degree - 1):
            points.append(ext.add(points[-1], diff))
        tx = mx.stack(points, axis=1).reshape(len(tr.needed), degree * m, 4)  # X = 1..d
        values = tr.evaluator.evaluate(forms, tx, base=False)
    values = mx.stack(values).reshape(3, degree, m, 4)
    return bb.sum(ext.mul(values, weights), axis=2)


# ------------------------------------------------------------------ the constraint stage
def eq3b_weights(l_skip: int, xi: List[EF], n_logup: int, nt: int, offsets: List[int]) -> List[EF]:
    """``eq3b_{t,σ} = eq(ξ[l+ñ .. l+n_logup), bits(off(t,σ) >> (l+ñ)))`` (§6.1)."""
    out = []
    for off in offsets:
        b = off >> (l_skip + nt)
        bits = [(b >> k) & 1 for k in range(n_logup - nt)]
        out.append(kernels.eq(xi[l_skip + nt:l_skip + n_logup], bits))
    return out


def prove_zerocheck_and_logup(pk, transcript: Transcript, traces: Sequence):
    """constraints.md §4.2 steps 4–15 on ``transcript`` (the preamble already observed).

    ``pk``: :class:`~mlx_stark.keygen.MultiStarkProvingKey`. ``traces``: the present traces in
    sorted order (§0.4), each with ``air_id``, ``common_main`` ``(H, w_c)`` and
    ``cached_mains`` (``(H, w_k)`` uint32 MLX arrays), ``public_values`` and ``log_height``
    (the preprocessed trace comes from ``pk``).

    Returns ``(GkrProof, BatchConstraintProof, r)`` with ``r = (r_0, …, r_{n_max})`` (host EF)
    for the stacked opening reduction. Raises :class:`ProverError` when the interactions do not
    balance or the round-0 polynomial cannot exist (unsatisfied constraints)."""
    params = pk.params
    l_skip, degree = params.l_skip, params.max_constraint_degree
    if not traces:
        raise InvalidInputError("the constraint stage needs at least one trace")
    heights = [int(t.log_height) for t in traces]
    if any(a < b for a, b in zip(heights, heights[1:])):
        raise InvalidInputError("traces must be sorted by descending height")
    with span("prover.prepare_traces") as sp:
        trs = [prepare_trace(pk, l_skip, t) for t in traces]
        sp.produced(*[tr.table for tr in trs])
    num_traces = len(trs)
    n_max = trs[0].nt
    offsets, total = segment_offsets(l_skip, [(tr.num_interactions, tr.nt) for tr in trs])
    n_logup = n_logup_of(l_skip, total)

    with span("prover.rap_constraints"):
        with span("prover.rap_constraints.logup_gkr"):
            witness, alpha, beta = logup_challenges(transcript, params.logup.pow_bits)
            if total:
                with span("prover.rap_constraints.logup_gkr.leaves") as sp:
                    segments = [s for tr in trs if tr.num_interactions
                                for s in gkr_segments(tr, l_skip, beta)]
                    p, q = fraction_leaves(segments, alpha, l_skip + n_logup)
                    sp.produced(p, q)
                q0, claims, polys, xi = prove_fractional_sumcheck(transcript, p, q)
            else:
                q0, claims, polys, xi = EF.one(), [], [], []
        gkr_proof = GkrProof(witness, q0, claims, polys)

        while len(xi) < l_skip + max(n_max, n_logup):
            xi.append(transcript.sample_ext())
        lam = transcript.sample_ext()
        lam_powers = _powers(lam, max(len(tr.dag.constraint_idx) for tr in trs))
        eq3b = [eq3b_weights(l_skip, xi, n_logup, tr.nt, offs) for tr, offs in zip(trs, offsets)]

        with span("prover.rap_constraints.round0") as sp:
            with span("prover.rap_constraints.round0.traces"):
                rounds0 = [round0_trace(tr, l_skip, xi, lam_powers, beta, e3)
                           for tr, e3 in zip(trs, eq3b)]
                if total:
                    read_round0_sums(rounds0)
            for r0 in rounds0:
                transcript.observe_ext(r0.sum_p)
                transcript.observe_ext(r0.sum_q)
            mu = transcript.sample_ext()
            mu_pows = _powers(mu, 3 * num_traces)
            with span("prover.rap_constraints.round0.s0"):
                s0, violated = s0_coefficients(l_skip, degree, xi, mu_pows, rounds0)
            if violated:
                raise explain_violation(pk, trs[violated[0]])
            for c in s0:
                transcript.observe_ext(c)
            r = [transcript.sample_ext()]
            with span("prover.rap_constraints.round0.fold_skip") as sp_fold:
                # column-major (W_tot, 2^ñ, 4): a round reads each column's pairs contiguously
                tables = [_column_major(fold_skip(_lift(tr.table, max(tr.height, 1 << l_skip)),
                                                  l_skip, r[0]))
                          for tr in trs]
                sp_fold.produced(*tables)

        with span("prover.rap_constraints.mle_rounds"):
            claim = horner(s0, r[0])
            mle_forms = [[tr.constraint_form(lam_powers)] + tr.interaction_forms(e3, beta)
                         for tr, e3 in zip(trs, eq3b)]
            e_zc = kernels.eq_d(l_skip, xi[0], r[0])
            e_lu = horner(kernels.eq_sharp_coeffs(l_skip, xi), r[0])
            colmaps = [mx.array(tr.needed, dtype=U32) for tr in trs]
            # eq(ξ[l+j..l+ñ), ·) of round j: round j+1's table sums pairs (eq(ξ, 0) + eq(ξ, 1) = 1)
            weights = [eq_table(xi[l_skip + 1:l_skip + tr.nt]) for tr in trs]

            def combine(vals, ts, zc, lu):
                """``Σ_t μ_zc,t·a_t·zc + (μ_p,t·b_t + μ_q,t·b'_t)·lu`` over traces ``ts``:
                ``vals`` ``(len(ts), 3, ..., 4)`` holds ``a, b, b'``; returns ``(..., 4)``."""
                def coef(k):
                    c = ext.from_host([mu_pows[k(t)] for t in ts])
                    return c.reshape((len(ts),) + (1,) * (vals.ndim - 3) + (4,))

                s_zc = bb.sum(ext.mul(vals[:, 0], coef(lambda t: 2 * num_traces + t)), axis=0)
                s_lu = bb.sum(ext.add(ext.mul(vals[:, 1], coef(lambda t: 2 * t)),
                                      ext.mul(vals[:, 2], coef(lambda t: 2 * t + 1))), axis=0)
                return ext.add(ext.mul(s_zc, zc), ext.mul(s_lu, lu))

            # rounds 1..n_max on a device transcript: the round messages, the challenges and
            # the folded tables' final values come back in one read
            def rounds(dt):
                tabs, final = list(tables), [None] * num_traces
                for t, tr in enumerate(trs):
                    if tr.nt == 0:
                        final[t] = tabs[t]
                ws = list(weights)
                claim_d, zc, lu = (ext.constant(v) for v in (claim, e_zc, e_lu))
                tail = ext.zeros(())
                msgs, rs = [], []
                for j in range(1, n_max + 1):
                    if j > 1:
                        tail = ext.mul(tail, rs[-1])
                    for t, tr in enumerate(trs):
                        if tr.nt == j - 1:  # becomes a tail trace: a constant from now on
                            cols = mx.take(final[t], colmaps[t], axis=0)  # (Wn, 1, 4)
                            values = _mle_evaluate(tr, mle_forms[t], cols).reshape(1, 3, 4)
                            tail = ext.add(tail, combine(values, [t], zc, lu))
                    heads = [t for t, tr in enumerate(trs) if tr.nt >= j]
                    with span("prover.rap_constraints.mle_rounds.evaluate"):
                        head_vals = []
                        for t in heads:
                            if j > 1:
                                w = ws[t].reshape(-1, 2, 4)
                                ws[t] = ext.add(w[:, 0], w[:, 1])
                            head_vals.append(_head_values(trs[t], mle_forms[t], tabs[t], colmaps[t],
                                                          degree, ws[t]))
                    # (heads, 3, d, 4): a, b, b' at X = 1..d -> s_head (d, 4)
                    s_head = combine(mx.stack(head_vals), heads, zc, lu)
                    x_j = EF.lift(xi[l_skip + j - 1])
                    s_head0 = ext.mul(ext.sub(ext.sub(claim_d, ext.mul(s_head[0], ext.constant(x_j))),
                                              tail), ext.constant(EF.one() / (1 - x_j)))
                    s_head = mx.concatenate([s_head0[None], s_head])
                    s_head = mx.concatenate([s_head, interpolate_at_integers(s_head, degree + 1)[None]])
                    # msg[X − 1] = ((1 − x_j) + (2x_j − 1)·X)·s_head[X] + tail·X, X = 1..d+1
                    factors = ext.from_host([(1 - x_j) + (x_j * 2 - 1) * x for x in range(1, degree + 2)])
                    msg = ext.add(ext.mul(s_head[1:], factors),
                                  ext.mul(tail[None], ext.from_host(list(range(1, degree + 2)))))
                    dt.observe(msg)
                    msgs.append(msg)
                    r_j = dt.sample_ext()
                    rs.append(r_j)
                    claim_d = interpolate_at_integers(
                        mx.concatenate([ext.sub(claim_d, msg[0])[None], msg]), r_j)
                    eq_j = ext.add(ext.mul(r_j, ext.constant(x_j)),
                                   ext.mul(ext.one_minus(r_j), ext.constant(1 - x_j)))
                    zc, lu = ext.mul(zc, eq_j), ext.mul(lu, eq_j)
                    with span("prover.rap_constraints.mle_rounds.fold"):
                        for t in heads:
                            tabs[t] = _fold_rows(tabs[t], r_j)
                            if trs[t].nt == j:
                                final[t] = tabs[t]
                        # bounds the graph and frees the old tables; no host wait
                        mx.async_eval([tabs[t] for t in heads])
                flat = mx.concatenate([f.reshape(-1, 4) for f in final])
                # the column openings, observed in §6.7 order (a zero row after the values
                # stands for the rotation of a trace without one)
                dt.observe(mx.take(mx.concatenate([flat, ext.zeros((1,))]),
                                   mx.array(_opening_order(trs, tables), dtype=U32), axis=0))
                return None, [flat, arrays.stack(msgs, (degree + 1, 4)), arrays.stack(rs, (4,))]

            _, (flat, msgs, rs) = device_segment(transcript, rounds)
            round_polys = [ext.host_values(m) for m in msgs]
            r += ext.host_values(rs)
            # the column openings for the proof (the segment observed them)
            values, at, openings = ext.host_values(flat), 0, []
            for t, tr in enumerate(trs):
                width = tables[t].shape[0]  # every trace's W_tot folded columns in turn
                openings.append(tr.openings(values[at:at + width]))
                at += width

    batch_proof = BatchConstraintProof(
        numerator_term_per_air=[r0.sum_p for r0 in rounds0],
        denominator_term_per_air=[r0.sum_q for r0 in rounds0],
        univariate_round_coeffs=s0,
        sumcheck_round_polys=round_polys,
        column_openings=openings,
    )
    return gkr_proof, batch_proof, r


def _opening_order(trs: List[TraceData], tables: list) -> List[int]:
    """Rows of the folded columns of every trace, stacked (each trace's ``W_tot`` in turn, then
    one zero row), in the order §6.7 observes the openings: all common mains first, then the
    other parts per trace; each column as (value, rotated value), the rotation the zero row
    where the trace has none."""
    zero = sum(t.shape[0] for t in tables)
    bases, at = [], 0
    for t in tables:
        bases.append(at)
        at += t.shape[0]
    order = []
    for parts in (slice(0, 1), slice(1, None)):
        for tr, base in zip(trs, bases):
            for off, w in list(zip(tr.part_offsets, tr.part_widths))[parts]:
                for c in range(w):
                    order += [base + off + c, base + tr.wall + off + c if tr.need_rot else zero]
    return order


def _powers(x: EF, n: int) -> List[EF]:
    out, acc = [], EF.one()
    for _ in range(n):
        out.append(acc)
        acc = acc * x
    return out
