"""Round-finish kernels of the multilinear rounds (constraints.md §6.6): the small
extension-field arithmetic between a round's head values and the next round, one launch each
instead of ~35 small launches per round.

The round's running state is ``(4, 4)`` uint32 canonical: ``[claim, zc, lu, tail]`` (the
claim the round polynomial sums to, the zerocheck and LogUp eq factors, the tail traces'
constant). Per round:

- :func:`round_message`: from the head traces' ``a, b, b'`` at ``X = 1..d`` and their μ
  coefficients, the round message ``(d+1, 4)`` (the round polynomial at ``X = 1..d+1``);
- :func:`round_update`: after ``r_j`` is sampled, the next state: the claim ``s_j(r_j)``
  (interpolated through ``(0, claim − msg[0])`` and the message), ``zc, lu`` times
  ``eq(x_j, r_j)``, ``tail·r_j``.

Both read round ``j``'s ``x_j`` (and ``1/(1 − x_j)``) from row ``j`` of one per-proof
``(n, 8)`` table of every round's point (:func:`point_table`: one host→device copy per proof
instead of one parameter array per kernel per round); their other parameters depend on the
degree and the head count only and are kept across proofs.

One thread each; values in Montgomery form inside, canonical in memory. Bit-equal to the MLX-ops
references (:func:`mlx_stark.prover.batch_constraints.mle_rounds.round_message`,
:func:`~mlx_stark.prover.batch_constraints.mle_rounds.round_update`): exact field arithmetic in
another order.
"""
from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np

from ..errors import InvalidInputError
from ..field.host import batch_inv
from . import KernelSource, launch
from . import params as _params
from .prelude import EXTENSION, literal, mont
from .sumcheck import MAX_NODES, interpolation_code

_MONT_ONE = literal(mont(1))


def _load(array: str, offset: str) -> str:
    """An ``ef`` in Montgomery form from four canonical words of ``array`` at ``offset``."""
    return (f"ef_in({array}[{offset}], {array}[{offset} + 1u], {array}[{offset} + 2u], "
            f"{array}[{offset} + 3u])")


def _store(array: str, offset: str, value: str) -> str:
    """Store the Montgomery-form ``ef`` ``value`` canonically at ``offset``."""
    return "".join(f"{array}[{offset} + {k}u] = bb_from_mont({value}.c{k});\n" for k in range(4))


@lru_cache(maxsize=None)
def round_message_source() -> KernelSource:
    """``vals`` ``(H·3·d·4)``, ``coefs`` ``(H·3·4)``, ``state`` ``(16)``, ``points``
    ``(n·8)`` (:func:`point_table`), ``params = [j, H, d, w_0 .. w_d]`` (``w_i``: the Lagrange
    weights of the nodes ``0..d`` at ``d + 1``), all canonical -> ``out`` ``((d+1)·4)``."""
    body = f"""\
if (gid != 0u) return;
const uint32_t row = params[0] * 8u;
const uint32_t heads = params[1];
const uint32_t d = params[2];
const ef x = {_load("points", "row")};
const ef inv = {_load("points", "row + 4u")};
const ef claim = {_load("state", "0u")};
const ef zc = {_load("state", "4u")};
const ef lu = {_load("state", "8u")};
const ef tail = {_load("state", "12u")};
const ef one = ef_make({_MONT_ONE}, 0u, 0u, 0u);
ef sh[{MAX_NODES}];
for (uint32_t k = 0u; k < d; ++k) {{
  ef szc = ef_make(0u, 0u, 0u, 0u);
  ef slu = szc;
  for (uint32_t h = 0u; h < heads; ++h) {{
    const uint32_t v = h * 3u * d + k;
    szc = ef_add(szc, ef_mul({_load("vals", "v * 4u")}, {_load("coefs", "h * 12u")}));
    slu = ef_add(slu, ef_mul({_load("vals", "(v + d) * 4u")}, {_load("coefs", "h * 12u + 4u")}));
    slu = ef_add(slu, ef_mul({_load("vals", "(v + 2u * d) * 4u")}, {_load("coefs", "h * 12u + 8u")}));
  }}
  sh[k + 1u] = ef_add(ef_mul(szc, zc), ef_mul(slu, lu));
}}
// s_head(0) from the claim: claim = s(0) + s(1), s(X) = eq(x, X)·s_head(X) + tail·X
sh[0] = ef_mul(ef_sub(ef_sub(claim, ef_mul(sh[1], x)), tail), inv);
ef ext = ef_make(0u, 0u, 0u, 0u);
for (uint32_t i = 0u; i <= d; ++i) ext = ef_add(ext, ef_mul_b(sh[i], bb_to_mont(params[3u + i])));
sh[d + 1u] = ext;
const ef slope = ef_sub(ef_add(x, x), one);
for (uint32_t k = 1u; k <= d + 1u; ++k) {{
  const uint32_t km = bb_to_mont(k);
  const ef factor = ef_add(ef_sub(one, x), ef_mul_b(slope, km));
  const ef m = ef_add(ef_mul(factor, sh[k]), ef_mul_b(tail, km));
{_store("out", "(k - 1u) * 4u", "m")}}}
"""
    return KernelSource("rounds_message", ("vals", "coefs", "state", "points", "params"), ("out",),
                        EXTENSION, body)


@lru_cache(maxsize=None)
def round_update_source() -> KernelSource:
    """``msg`` ``((d+1)·4)``, ``challenge`` ``(4)``, ``state`` ``(16)``, ``points`` ``(n·8)``
    (:func:`point_table`), ``params = [j, d, inv_0 .. inv_{d+1}]`` (the node inverses of
    ``d + 2`` nodes), all canonical -> ``out`` ``(16)``: the next state."""
    interp = interpolation_code("d + 2u", "nodes[i]", "r", "params[2u + i]", "claim")
    body = f"""\
if (gid != 0u) return;
const uint32_t d = params[1];
const ef x = {_load("points", "params[0] * 8u")};
const ef r = {_load("challenge", "0u")};
const ef one = ef_make({_MONT_ONE}, 0u, 0u, 0u);
ef nodes[{MAX_NODES}];
nodes[0] = ef_sub({_load("state", "0u")}, {_load("msg", "0u")});
for (uint32_t i = 0u; i <= d; ++i) nodes[i + 1u] = {_load("msg", "i * 4u")};
ef claim;
{interp}const ef eq = ef_add(ef_mul(r, x), ef_mul(ef_sub(one, r), ef_sub(one, x)));
const ef zc = ef_mul({_load("state", "4u")}, eq);
const ef lu = ef_mul({_load("state", "8u")}, eq);
const ef tail = ef_mul({_load("state", "12u")}, r);
EF_STORE(out, 0u, claim);
{_store("out", "4u", "zc")}{_store("out", "8u", "lu")}{_store("out", "12u", "tail")}"""
    return KernelSource("rounds_update", ("msg", "challenge", "state", "points", "params"), ("out",),
                        EXTENSION, body)


def _check(degree: int) -> None:
    if not 1 <= degree <= MAX_NODES - 2:
        raise InvalidInputError(f"round kernels take 1 <= d <= {MAX_NODES - 2}, got d = {degree}")


def point_table(xs: list) -> mx.array:
    """Every round's ``[x_j, 1/(1 − x_j)]`` (host EF, ``x_j ≠ 1``) as one ``(n, 8)`` uint32
    device array: the round kernels' per-proof parameters, one copy for all rounds."""
    invs = batch_inv([1 - x for x in xs])
    return mx.array(np.array([(*x.c, *inv.c) for x, inv in zip(xs, invs)], dtype=np.uint32).reshape(-1, 8))


def _check_point(points: mx.array, j: int) -> None:
    if points.ndim != 2 or points.shape[1] != 8 or not 0 <= j < points.shape[0]:
        raise InvalidInputError(f"round {j} of a point table of shape {tuple(points.shape)}")


def round_message(vals: mx.array, coefs: mx.array, state: mx.array, points: mx.array, j: int,
                  degree: int) -> mx.array:
    """:func:`mlx_stark.prover.batch_constraints.mle_rounds.round_message` (bit-equal):
    ``vals`` ``(H, 3, d, 4)``, ``coefs`` ``(H, 3, 4)``, ``state`` ``(4, 4)`` uint32 canonical,
    ``points`` the :func:`point_table` and ``j`` this round's row -> ``(d+1, 4)``. One launch
    of one thread. Lazy."""
    heads = vals.shape[0]
    _check(degree)
    _check_point(points, j)
    if vals.shape != (heads, 3, degree, 4) or coefs.shape != (heads, 3, 4) or state.shape != (4, 4):
        raise InvalidInputError(f"round message of {tuple(vals.shape)}, {tuple(coefs.shape)}, "
                                f"{tuple(state.shape)}")
    return launch(round_message_source(), [vals.reshape(-1), coefs.reshape(-1),
                                           state.reshape(-1), points,
                                           _params(j, heads, degree, *_extrapolation(degree))],
                  (1, 1), 1, [(degree + 1, 4)])[0]


def round_update(msg: mx.array, r: mx.array, state: mx.array, points: mx.array, j: int) -> mx.array:
    """:func:`mlx_stark.prover.batch_constraints.mle_rounds.round_update` (bit-equal): ``msg``
    ``(d+1, 4)``, ``r`` ``(4,)``, ``state`` ``(4, 4)`` uint32 canonical, ``points`` the
    :func:`point_table` and ``j`` this round's row -> ``(4, 4)``. One launch of one thread.
    Lazy."""
    degree = msg.shape[0] - 1
    _check(degree)
    _check_point(points, j)
    if msg.shape != (degree + 1, 4) or r.shape != (4,) or state.shape != (4, 4):
        raise InvalidInputError(f"round update of {tuple(msg.shape)}, {tuple(r.shape)}, "
                                f"{tuple(state.shape)}")
    return launch(round_update_source(), [msg.reshape(-1), r, state.reshape(-1), points,
                                          _params(j, degree, *_inverses(degree + 2))],
                  (1, 1), 1, [(4, 4)])[0]


@lru_cache(maxsize=None)
def _extrapolation(degree: int) -> tuple:
    """The Lagrange weights of the nodes ``0..d`` at ``d + 1`` (integers mod p)."""
    from ..poly import host
    return tuple(host.interpolate_at_integers([int(i == k) for i in range(degree + 1)],
                                              degree + 1).c[0] for k in range(degree + 1))


@lru_cache(maxsize=None)
def _inverses(n: int) -> tuple:
    from ..poly.mle import node_inverses
    return tuple(node_inverses(n))
