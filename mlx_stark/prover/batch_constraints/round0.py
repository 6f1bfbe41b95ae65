"""Round 0 of the batch constraint sumcheck (constraints.md §6.3–§6.4): per trace the round-0
polynomials and sum claims, then the coefficients of ``s_0``; and the error for a trace whose
constraints round 0 found unsatisfied.

The needed columns of a trace's table are extended, once per trace and in one batched
iDFT/DFT per chunk of the hypercube, to the cosets ``g^i·D`` (``i = 1..d_a−1``, ``g`` = F's
generator); the DAG runs over whole base-field arrays of those points (and over ``D`` itself,
the rows, for the LogUp sums). With ``A_t(Z) = Σ_x w_t(x)·C_t(Z,x)``, the zerocheck needs only
the quotient ``A_t/(Z^N − 1)`` (degree ``< (d_a−1)·N``) and the LogUp sums ``B_t, B'_t`` need
degree ``< d_a·N``: ``D ∪ g·D ∪ … ∪ g^(d_a−1)·D`` determines all of them exactly
(:func:`~mlx_stark.poly.interpolate_cosets`). ``s_0`` is then one product of polynomials,
computed by DFT on a large enough subgroup.

Variables are little-endian (row ``k + N·x`` is the point ``(ω^k, bits(x))``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import mlx.core as mx

from ... import custom_kernels
from ...air.check import first_violation
from ...errors import ConstraintNotSatisfied, ProverError
from ...field import ext
from ...field.bb import GENERATOR, P
from ...field.host import EF
from ...poly import coset_lde, dft, eq_table, host, idft, interpolate_cosets
from ...tracing import Rows, read, span
from .traces import TraceData

# Largest block of extended column values (uint32 elements) that round 0 holds at once;
# the hypercube axis is processed in chunks below it.
_LDE_BLOCK_ELEMS = 1 << 25


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


def _checks(tr: TraceData) -> tuple:
    """``(zerocheck, check_on_d, logup)``: the constraints through the quotient on the cosets
    (degree ≥ 2), the constraints checked on ``D`` (degree ≤ 1), the LogUp sums."""
    zerocheck = bool(tr.dag.constraint_idx) and tr.degree >= 2
    check_on_d = bool(tr.dag.constraint_idx) and not zerocheck
    return zerocheck, check_on_d, tr.num_interactions > 0


def round0_forms(tr: TraceData, lam_powers: List[EF], eq3b: List[EF], beta: EF) -> tuple:
    """``(forms, d_forms)``: what round 0 evaluates on the cosets (empty without cosets:
    degree ≤ 1) and on ``D`` (the rows)."""
    zerocheck, check_on_d, logup = _checks(tr)
    logup_forms = tr.interaction_forms(eq3b, beta) if logup else []
    forms = ([tr.constraint_form(lam_powers)] if zerocheck else []) + logup_forms
    d_forms = ([tr.constraint_form(lam_powers)] if check_on_d else []) + logup_forms
    return (forms if tr.degree >= 2 else []), d_forms


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
    zerocheck, check_on_d, logup = _checks(tr)
    if not zerocheck and not logup and not check_on_d:
        return Round0(None, None, None, ext.zeros((2,)))
    extra = max(tr.degree, 1) - 1  # cosets g^1..g^extra besides D
    shifts = [pow(GENERATOR, i, P) for i in range(1, extra + 1)]
    lifted = max(tr.height, n_dom)
    x_len = lifted >> l_skip
    wn = len(tr.needed)
    weights = eq_table(xi[l_skip:l_skip + tr.nt])  # (X, 4)
    evaluator = tr.evaluator if zerocheck else tr.interactions_evaluator
    d_evaluator = tr.evaluator if check_on_d else tr.interactions_evaluator
    forms, d_forms = round0_forms(tr, lam_powers, eq3b, beta)
    # sums over the chunks (None before the first): A_t on the cosets / on D, B_t and B'_t on
    # D (2, N, 4) and on the cosets (2, E', N, 4)
    a_acc = a_on_d = b_on_d = b_cosets = None

    # a power of two, so that every chunk has the same shape (compiled kernels are reused)
    step = 1 << max(0, (_LDE_BLOCK_ELEMS // (wn * max(extra, 1) * n_dom)).bit_length() - 1)
    for x0 in range(0, x_len, step):
        xc = min(step, x_len - x0)
        # the chunk's rows of the needed columns, built per chunk (lifted: one chunk)
        block = tr.column_block(tr.needed, x0 * n_dom, xc * n_dom).reshape(wn, xc, n_dom)
        w = weights[x0:x0 + step]
        if d_forms:  # on D: the rows themselves; (F, N, 4)
            at_d = d_evaluator.contracted(d_forms, block.reshape(wn, xc * n_dom), True, w, (n_dom,))
            if check_on_d:
                a_on_d = ext.accumulate(a_on_d, at_d[0, ...])
            if logup:
                b_on_d = ext.accumulate(b_on_d, at_d[-2:])
        if extra:
            with span("prover.rap_constraints.round0.lde") as sp:
                ext_vals = coset_lde(block, shifts)  # (Wn, Xc, E', N)
                sp.produced(ext_vals)
            values = evaluator.contracted(forms, ext_vals.reshape(wn, xc * extra * n_dom), True, w,
                                          (extra, n_dom))  # (F, E', N, 4)
            if zerocheck:
                a_acc = ext.accumulate(a_acc, values[0, ...])
            if logup:
                b_cosets = ext.accumulate(b_cosets, values[-2:])
        if x_len > step:  # several chunks: bounds the graph and frees the chunk; no host wait
            mx.async_eval([a for a in [a_acc, a_on_d, b_on_d, b_cosets] if a is not None])

    quotient = numer = denom = None
    sums = ext.zeros((2,))
    violated = mx.any(a_on_d != 0) if check_on_d else None
    if zerocheck:
        # A_t vanishes on D: divide by Z^N − 1, the constant s^N − 1 on the coset s·D
        inv = custom_kernels.params(*(pow(pow(s, n_dom, P) - 1, P - 2, P) for s in shifts))
        q_vals = ext.mul_base(a_acc, mx.broadcast_to(inv[:, None], (extra, n_dom)))
        quotient = interpolate_cosets(q_vals, shifts)
        violated = mx.any(quotient[extra * n_dom - extra:] != 0)
    if logup:  # (2, extra + 1, N, 4): on D, then on the cosets
        b_acc = b_on_d[:, None] if b_cosets is None else mx.concatenate([b_on_d[:, None], b_cosets], axis=1)
        all_shifts = [1] + shifts
        numer = interpolate_cosets(b_acc[0, ...], all_shifts)
        denom = interpolate_cosets(b_acc[1, ...], all_shifts)
        # S = Σ_{z∈D} eq#_ξ(z)·B(z), and eq#_ξ(ω^k) = eq(ξ[0..l), bits(k))
        eq_l = _eq_prefix(tuple(xi[:l_skip]))
        sums = ext.mul_sum(b_on_d, eq_l, 1)  # (2, 4)
    return Round0(quotient, numer, denom, sums, violated)


@lru_cache(maxsize=2)
def _eq_prefix(point: tuple) -> mx.array:
    """``eq_table`` of ``ξ[0..l)``: the same for every trace of a proof (one launch, not one
    per trace)."""
    return eq_table(list(point))


@lru_cache(maxsize=1)
def _unchecked() -> mx.array:
    """The flag of a trace whose round 0 checks nothing (kept: a host->device copy each time)."""
    return mx.array(False)


def read_round0_sums(rounds0: List[Round0]) -> None:
    """Fill in every trace's host ``sum_p, sum_q`` from its device ``sums``: one read."""
    sums = ext.host_values(read(Rows([r0.sums for r0 in rounds0], (2, 4)))[0])
    for t, r0 in enumerate(rounds0):
        r0.sum_p, r0.sum_q = sums[2 * t], sums[2 * t + 1]


def shifted_sum(terms, length: int) -> mx.array:
    """``Σ w·Z^off·poly`` over ``(poly (len, 4), w, off)`` (``w`` a host EF, ``off + len ≤
    length``) as ``(length, 4)`` coefficients. With native kernels: one launch
    (``round0.shifted_sum``), no padded copies."""
    kernel = custom_kernels.native("round0.shifted_sum")
    if kernel is not None:
        return kernel(terms, length)
    acc = None
    for poly, w, off in terms:
        acc = ext.accumulate(acc, mx.pad(ext.mul(poly, ext.constant(w)),
                                         [(off, length - off - poly.shape[0]), (0, 0)]))
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
    total = None  # Σ of the two products below, in evaluation form on the size-`size` subgroup
    xi0 = EF.lift(xi[0])
    inv_n = pow(n_dom, P - 2, P)
    zeros = [EF.zero()] * size
    if qs:
        # (Z^N − 1)·Σ_t μ^(2T+t)·Q_t
        zq = shifted_sum([(q, w, n_dom) for q, w in qs] + [(q, -EF.lift(w), 0) for q, w in qs], size)
        # eq_D(x, Z) = (1/N)·(1 + Σ_{j=1}^{N−1} x^{N−j}·Z^j)
        eq_d = [EF(inv_n)] + [xi0 ** (n_dom - j) * inv_n for j in range(1, n_dom)]
        total = ext.accumulate(total, ext.mul(dft(ext.from_host((eq_d + zeros)[:size])), dft(zq)))
    if bs:
        b = shifted_sum([(p, w, 0) for p, w in bs], size)
        eq_sharp = host.eq_sharp_coeffs(l_skip, xi)
        total = ext.accumulate(total, ext.mul(dft(ext.from_host((eq_sharp + zeros)[:size])), dft(b)))
    flags = mx.stack([_unchecked() if r.violated is None else r.violated for r in rounds0])
    coeffs, flags = read(idft(ext.zeros((size,)) if total is None else total), flags)
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
    inputs = tr.leaves.make_inputs(lambda k: tr.columns([tr.needed[k]])[:, 0])
    found = first_violation(tr.dag, inputs, tr.height)
    if found is None:
        return ProverError(f"{air_name}: round 0 found the constraints unsatisfied, but no row fails")
    i, row = found
    node = tr.dag.constraint_idx[i]
    return ConstraintNotSatisfied(air_name, i, node, row, tr.dag.expression(node))
