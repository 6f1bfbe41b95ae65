"""The multilinear round's finish as one kernel (constraints.md §6.6): the small
extension-field arithmetic between a round's head values and the next round, with the
transcript's absorb of the message and the challenge it samples, one launch per round instead
of ~35 small launches (and three kernels before this one).

The round's running state is ``(4, 4)`` uint32 canonical: ``[claim, zc, lu, tail]`` (the
claim the round polynomial sums to, the zerocheck and LogUp eq factors, the tail traces'
constant). :func:`round_step`, per round:

- from the head traces' ``a, b, b'`` at ``X = 1..d`` and their μ coefficients, the round
  message ``(d+1, 4)`` (the round polynomial at ``X = 1..d+1``);
- the device transcript absorbs the message and samples ``r_j``
  (:func:`mlx_stark.custom_kernels.poseidon2.duplex_code`);
- the next state: the claim ``s_j(r_j)`` (interpolated through ``(0, claim − msg[0])`` and the
  message), ``zc, lu`` times ``eq(x_j, r_j)``, ``tail·r_j``.

It reads round ``j``'s ``x_j`` (and ``1/(1 − x_j)``) from row ``j`` of one per-proof
``(n, 8)`` table of every round's point (:func:`point_table`: one host→device copy per proof
instead of one parameter array per kernel per round); its other parameters depend on the
degree, the head count and the transcript's rate position only and are kept across proofs.

Values in Montgomery form inside, canonical in memory. Bit-equal to the MLX-ops reference
(:func:`mlx_stark.prover.batch_constraints.mle_rounds.round_step`: the message, the host
sponge, the update): exact field arithmetic in another order.
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
from .poseidon2 import WIDTH, duplex_code
from .sumcheck import MAX_NODES, interpolation_code

_MONT_ONE = literal(mont(1))


def _load(array: str, offset: str) -> str:
    """An ``ef`` in Montgomery form from four canonical words of ``array`` at ``offset``."""
    return (f"ef_in({array}[{offset}], {array}[{offset} + 1u], {array}[{offset} + 2u], "
            f"{array}[{offset} + 3u])")


def _store(array: str, offset: str, value: str) -> str:
    """Store the Montgomery-form ``ef`` ``value`` canonically at ``offset``."""
    return "".join(f"{array}[{offset} + {k}u] = bb_from_mont({value}.c{k});\n" for k in range(4))


# round step parameters: [j, H, d, a, last, w_0 .. w_d, inv_0 .. inv_{d+1}]
_MESSAGE = f"""\
const uint32_t heads = params[1];
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
for (uint32_t i = 0u; i <= d; ++i) ext = ef_add(ext, ef_mul_b(sh[i], bb_to_mont(params[5u + i])));
sh[d + 1u] = ext;
const ef slope = ef_sub(ef_add(x, x), one);
for (uint32_t k = 1u; k <= d + 1u; ++k) {{
  const uint32_t km = bb_to_mont(k);
  const ef factor = ef_add(ef_sub(one, x), ef_mul_b(slope, km));
  const ef m = ef_add(ef_mul(factor, sh[k]), ef_mul_b(tail, km));
{_store("msg", "(k - 1u) * 4u", "m")}{_store("absorbed", "(k - 1u) * 4u", "m")}}}
"""

_UPDATE = f"""\
const ef x = {_load("points", "row")};
const ef r = {_load("drawn", "0u")};
const ef one = ef_make({_MONT_ONE}, 0u, 0u, 0u);
ef nodes[{MAX_NODES}];
nodes[0] = ef_sub({_load("state", "0u")}, {_load("absorbed", "0u")});
for (uint32_t i = 0u; i <= d; ++i) nodes[i + 1u] = {_load("absorbed", "i * 4u")};
ef claim;
{interpolation_code("d + 2u", "nodes[i]", "r", "params[6u + d + i]", "claim")}\
const ef eq = ef_add(ef_mul(r, x), ef_mul(ef_sub(one, r), ef_sub(one, x)));
const ef zc = ef_mul({_load("state", "4u")}, eq);
const ef lu = ef_mul({_load("state", "8u")}, eq);
const ef tail = ef_mul({_load("state", "12u")}, r);
EF_STORE(next, 0u, claim);
{_store("next", "4u", "zc")}{_store("next", "8u", "lu")}{_store("next", "12u", "tail")}"""


@lru_cache(maxsize=None)
def round_step_source() -> KernelSource:
    """One multilinear round with its transcript step: ``vals`` ``(H·3·d·4)``, ``coefs``
    ``(H·3·4)``, ``state`` ``(16)`` (the round state), ``points`` ``(n·8)``
    (:func:`point_table`), ``transcript`` ``(16 or 24)`` (the device transcript's sponge),
    ``params = [j, H, d, a, last, w_0 .. w_d, inv_0 .. inv_{d+1}]`` (``w_i``: the Lagrange
    weights of the nodes ``0..d`` at ``d + 1``; ``inv_i``: the node inverses of ``d + 2``
    nodes; ``a``, ``last``: the absorb of the message's ``4(d + 1)`` values,
    :func:`~mlx_stark.custom_kernels.poseidon2.duplex_code`), all canonical -> ``msg``
    ``((d+1)·4)`` the round message, ``sponge`` ``(24)`` the transcript after absorbing it,
    ``next`` ``(16)`` the round state after the challenge ``r_j`` (the sponge's first four
    samples, ``sponge[16..19]``). One block of 16 threads: thread 0 computes the message,
    all of them absorb it (the lane-parallel permutation), thread 0 updates the state."""
    header, shared, duplex = duplex_code(
        "absorbed[i]", "4u * (d + 1u)", "params[3]", "params[4]", "transcript", "sponge",
        then="if (tid >= 4u && tid < 8u) drawn[7u - tid] = bb_from_mont(x);\n")
    body = f"""\
{shared}SHARED uint32_t absorbed[{MAX_NODES * 4}];
SHARED uint32_t drawn[4];
const uint32_t row = params[0] * 8u;
const uint32_t d = params[2];
if (tid == 0u) {{
{_MESSAGE}}}
BARRIER();
{duplex}BARRIER();
if (tid == 0u) {{
{_UPDATE}}}
"""
    return KernelSource("rounds_step", ("vals", "coefs", "state", "points", "transcript", "params"),
                        ("msg", "sponge", "next"), EXTENSION + header, body)


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


def round_step(vals: mx.array, coefs: mx.array, state: mx.array, points: mx.array, j: int,
               degree: int, transcript: mx.array, absorb_idx: int, permute_last: bool) -> tuple:
    """:func:`mlx_stark.prover.batch_constraints.mle_rounds.round_step` on a device
    transcript's sponge (bit-equal to the round message, the host sponge's absorb and samples,
    and the state update): ``vals`` ``(H, 3, d, 4)``, ``coefs`` ``(H, 3, 4)``, ``state``
    ``(4, 4)`` uint32 canonical, ``points`` the :func:`point_table`, ``j`` this round's row,
    ``transcript`` the sponge ``(16,)`` or ``(24,)`` absorbing from rate position
    ``absorb_idx`` (a final permutation if ``permute_last``) -> ``(sponge (24,), msg (d+1, 4),
    next state (4, 4))``. One launch of 16 threads. Lazy."""
    heads = vals.shape[0]
    _check(degree)
    _check_point(points, j)
    if vals.shape != (heads, 3, degree, 4) or coefs.shape != (heads, 3, 4) or state.shape != (4, 4):
        raise InvalidInputError(f"round step of {tuple(vals.shape)}, {tuple(coefs.shape)}, "
                                f"{tuple(state.shape)}")
    msg, sponge, nxt = launch(
        round_step_source(),
        [vals.reshape(-1), coefs.reshape(-1), state.reshape(-1), points, transcript,
         _params(j, heads, degree, absorb_idx, int(permute_last), *_extrapolation(degree),
                 *_inverses(degree + 2))],
        (WIDTH, 1), WIDTH, [(degree + 1, 4), (WIDTH + 8,), (4, 4)])
    return sponge, msg, nxt


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
