"""Evaluation of linear forms of a constraint DAG's outputs at many points, for the prover.

The forms and the leaves' inputs are described in :mod:`mlx_stark.air.forms` (``Σ_i λ^i·C_i``
and the eq3b/β-weighted interaction values over output slots). :class:`DagEvaluator` evaluates
them at every point of an input matrix with one of three strategies, all bit-equal:

* where the device has native kernels, a generated kernel
  (:mod:`mlx_stark.custom_kernels.constraints`): one thread per point, each slot computed from
  its own sub-DAG, the slots of one sub-DAG shape sharing one loop of straight-line code;
* otherwise node by node with :func:`mlx_stark.air.evaluate.evaluate_dag` (constraints streamed
  into the forms, dead values dropped): a few dispatches per node, so it suits large base-field
  arrays (round 0);
* or level by level (:class:`LevelPlan`): the nodes are grouped by depth and all nodes of one
  level are computed together — one gather of their left operands, one of their right
  operands, one operation per node kind — into one buffer holding a row per node. A few
  dispatches per level whatever the number of nodes, but about twice the memory traffic:
  it suits small arrays and extension arrays (KeccakfAir: 39273 nodes, depth 47, in the
  multilinear rounds).

Inputs are the trace columns the DAG reads, one row each: ``(Wn, P)`` base or
``(Wn, P, 4)`` extension uint32 for ``P`` points; results are ``(P, 4)`` per form.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import mlx.core as mx

from .. import arrays, custom_kernels
from ..air.dag import NodeKind, SymbolicConstraintsDag
from ..air.evaluate import BaseArrays, evaluate_dag
from ..air.forms import Form, Leaves, slot_node
from ..device import fused
from ..field import bb, ext
from ..field.bb import U32, U64, P
from ..field.host import EF, W
from ..tracing import wait
from .stacked_reduction import weighted_sum

# Largest level-evaluation buffer (uint32 elements, a row per DAG node).
_LEVEL_BUFFER_ELEMS = 1 << 25
# Base-field evaluations of at most this many points go level by level (measured on CPU: the
# node-by-node path wins on larger base-field arrays; extension arrays always go by levels).
_LEVEL_MAX_BASE_POINTS = 1 << 12
# Constraints streamed into the forms between two evaluations of the node-by-node path.
_STREAM_FLUSH = 64


class _Level:
    __slots__ = ("start", "ranges", "left", "right")

    def __init__(self, start: int, ranges: List[Tuple[NodeKind, int, int]], left, right):
        self.start, self.ranges, self.left, self.right = start, ranges, left, right


class LevelPlan:
    """Level-by-level evaluation plan of the nodes of ``leaves.dag`` that ``outputs`` (node
    indices) depend on (:class:`~mlx_stark.air.forms.Leaves`: the input rows and constants of
    the leaves). ``row[node]`` is the buffer row of every evaluated node: the input rows first,
    then the constants, then the levels."""

    def __init__(self, leaves: Leaves, outputs: Sequence[int]):
        dag = leaves.dag
        needed = sorted(dag.closure(outputs))
        num_inputs = leaves.num_inputs
        self.row: Dict[int, int] = {}
        constants: List[int] = []
        for i in needed:
            if dag.children(i):
                continue
            is_input, value = leaves.leaf(i)
            if is_input:
                self.row[i] = value
            else:
                self.row[i] = num_inputs + len(constants)
                constants.append(value)
        self.num_inputs = num_inputs
        self.constants = constants
        self.levels: List[_Level] = []
        start = num_inputs + len(constants)
        for level in dag.levels(needed):
            ranges, order, left, right = [], [], [], []
            for kind, ids, lhs, rhs in level:
                ranges.append((kind, len(order), len(order) + len(ids)))
                order += ids
                left += lhs
                right += rhs
            for k, i in enumerate(order):
                self.row[i] = start + k
            self.levels.append(_Level(start, ranges,
                                      mx.array([self.row[c] for c in left], dtype=U32),
                                      mx.array([self.row[c] for c in right], dtype=U32)))
            start += len(order)
        self.num_rows = start

    def evaluate(self, inputs: mx.array, base: bool) -> mx.array:
        """The buffer ``(R, P)`` (``base``) or ``(R, P, 4)`` for ``inputs`` ``(num_inputs, P)``
        resp. ``(num_inputs, P, 4)`` uint32. Evaluates level by level (each level is written
        in place into the buffer)."""
        if inputs.shape[0] != self.num_inputs:
            raise ValueError(f"expected {self.num_inputs} input rows, got {inputs.shape[0]}")
        tail = inputs.shape[1:]
        algebra = bb if base else ext
        buf = mx.zeros((self.num_rows,) + tail, dtype=U32)
        buf[:self.num_inputs] = inputs
        if self.constants:
            consts = mx.array(self.constants, dtype=U32)
            consts = consts.reshape((-1,) + (1,) * len(tail)) if base else \
                ext.from_base(consts).reshape((-1,) + (1,) * (len(tail) - 1) + (4,))
            buf[self.num_inputs:self.num_inputs + len(self.constants)] = \
                mx.broadcast_to(consts, (len(self.constants),) + tail)
        wait(buf)
        ops = {NodeKind.ADD: algebra.add, NodeKind.SUB: algebra.sub, NodeKind.MUL: algebra.mul}
        for level in self.levels:
            lhs = arrays.take(buf, level.left)
            rhs = arrays.take(buf, level.right)
            # materialise the operands first: a pending read of the buffer would make every
            # write below copy the whole buffer instead of updating it in place
            wait(lhs, rhs)
            for kind, a, b in level.ranges:
                if kind == NodeKind.NEG:
                    out = algebra.neg(lhs[a:b])
                else:
                    out = ops[kind](lhs[a:b], rhs[a:b])
                buf[level.start + a:level.start + b] = out
            wait(buf)
        return buf


# ------------------------------------------------------------------ linear forms
@fused
def _acc_base(acc: mx.array, v: mx.array, w: mx.array) -> mx.array:
    return acc + (v[..., None].astype(U64) * w.astype(U64)) % P


class _Accumulator:
    """``const + Σ w·v`` at ``points`` points for base-field values (uint64 accumulation) or
    host ints."""

    def __init__(self, points: int, const: EF):
        self.points, self.const = points, const
        self.acc = None

    def add(self, v, w: EF) -> None:
        if isinstance(v, int):
            self.const = self.const + w * v
            return
        acc = self.acc if self.acc is not None else mx.zeros((self.points, 4), dtype=U64)
        self.acc = _acc_base(acc, mx.broadcast_to(v, (self.points,)), ext.constant(w))

    def value(self) -> mx.array:
        const = ext.constant(self.const)
        if self.acc is None:
            return mx.broadcast_to(const, (self.points, 4))
        return ext.add((self.acc % P).astype(U32), const)


def _weighted_rows(vals: mx.array, weights: List[EF], base: bool) -> mx.array:
    """``Σ_k weights[k]·vals[k]``: ``vals`` ``(K, P)`` base or ``(K, P, 4)``; ``(P, 4)``."""
    w = ext.from_host(weights)
    points = vals.shape[1]
    if base:
        return weighted_sum(vals[None], w)[0, ...]
    # over EF, from the 16 coefficient products (X^4 = W)
    part = weighted_sum(vals.reshape(1, vals.shape[0], points * 4), w)
    part = part.reshape(points, 4, 4).astype(U64)  # [point, value coeff i, weight coeff j]
    coeffs = []
    for c in range(4):
        low = sum(part[:, i, c - i] for i in range(c + 1))
        if c < 3:
            low = low + (sum(part[:, i, c + 4 - i] for i in range(c + 1, 4)) % P) * W
        coeffs.append(low % P)
    return mx.stack(coeffs, axis=-1).astype(U32)


class DagEvaluator:
    """Evaluates :class:`~mlx_stark.air.forms.Form` s of ``leaves.dag`` at many points
    (module docstring).

    ``leaves``: where the DAG's leaves get their values. ``constraints``: whether constraint
    slots are needed (otherwise only the interaction nodes are evaluated)."""

    def __init__(self, leaves: Leaves, constraints: bool):
        dag = leaves.dag
        outputs = [i for it in dag.interactions for i in (*it.message, it.count)]
        if constraints:
            outputs = list(dag.constraint_idx) + outputs
        self.dag, self.leaves = dag, leaves
        self._outputs = outputs
        self._plan = None
        self.stream_dag = dag if constraints else SymbolicConstraintsDag(dag.nodes, [],
                                                                         dag.interactions)

    @property
    def plan(self) -> LevelPlan:
        """The level plan, built on first use (the generated kernels never need it)."""
        if self._plan is None:
            self._plan = LevelPlan(self.leaves, self._outputs)
        return self._plan

    def evaluate(self, forms: Sequence[Form], inputs: mx.array, base: bool) -> List[mx.array]:
        """Every form at the points of ``inputs`` (``(Wn, P)`` base or ``(Wn, P, 4)``):
        a list of ``(P, 4)`` uint32."""
        return self.evaluate_blocks(forms, inputs[None], base)

    def evaluate_blocks(self, forms: Sequence[Form], blocks: mx.array, base: bool) -> List[mx.array]:
        """Every form at the points ``(q, x)`` of ``blocks`` (``(Q, Wn, X)`` base or
        ``(Q, Wn, X, 4)``: block ``q`` holds the needed columns of ``X`` points): a list of
        ``(Q·X, 4)`` uint32, points in ``(q, x)`` order."""
        kernel = custom_kernels.native("constraint_eval.DagEvaluator.evaluate_blocks")
        if kernel is not None:
            return kernel(self.leaves, forms, blocks, base)
        q, wn, xs = blocks.shape[:3]
        inputs = blocks[0, ...] if q == 1 else \
            mx.contiguous(mx.moveaxis(blocks, 0, 1)).reshape((wn, q * xs) + blocks.shape[3:])
        if not base or inputs.shape[1] <= _LEVEL_MAX_BASE_POINTS:
            return self._by_levels(forms, inputs, base)
        return self._by_nodes(forms, inputs, base)

    def contracted(self, forms: Sequence[Form], inputs: mx.array, base: bool, weights: mx.array,
                   shape: tuple) -> mx.array:
        """``Σ_x weights[x]·form(x, s)`` for every form: ``inputs`` as for :meth:`evaluate`
        with its points in ``(x, s)`` order, ``s`` over ``shape``; ``weights`` ``(X, 4)`` ->
        ``(F, *shape, 4)`` uint32. With native kernels one launch evaluates every form and
        one sums the launch's parts with the weighting."""
        x = weights.shape[0]
        w = weights.reshape((x,) + (1,) * len(shape) + (4,))
        kernel = custom_kernels.native("constraint_eval.DagEvaluator.contracted")
        if kernel is not None:
            parts = kernel(self.leaves, forms, inputs[None], base)  # (K, F, X·S, 4)
            parts = parts.reshape(parts.shape[:2] + (x,) + tuple(shape) + (4,))
            return ext.mul_sum(parts, w, 2, also=0)
        values = mx.stack(self.evaluate(forms, inputs, base))  # (F, X·S, 4)
        return ext.mul_sum(values.reshape((len(forms), x) + tuple(shape) + (4,)), w, 1)

    def _by_levels(self, forms, inputs, base):
        plan = self.plan
        step = max(1, _LEVEL_BUFFER_ELEMS // (plan.num_rows * (1 if base else 4)))
        points = inputs.shape[1]
        parts = []
        for a in range(0, points, step):
            buf = plan.evaluate(inputs[:, a:a + step], base)
            n = buf.shape[1]
            outs = []
            for f in forms:
                out = mx.broadcast_to(ext.constant(f.const), (n, 4))
                if f.terms:
                    rows = [plan.row[slot_node(self.dag, s)] for s, _ in f.terms]
                    out = ext.add(_weighted_rows(arrays.take(buf, rows),
                                                 [w for _, w in f.terms], base), out)
                outs.append(out)
            wait(outs)
            parts.append(outs)
        return [mx.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k]
                for k in range(len(forms))]

    def _by_nodes(self, forms, inputs, base):
        if not base:
            raise ValueError("node-by-node evaluation is for base-field points")
        points = inputs.shape[1]
        accs = [_Accumulator(points, f.const) for f in forms]
        by_constraint: Dict[int, list] = {}
        others = []
        for k, f in enumerate(forms):
            for slot, w in f.terms:
                if slot[0] == "c":
                    by_constraint.setdefault(slot[1], []).append((k, w))
                else:
                    others.append((k, slot, w))

        def sink(i, v):
            for k, w in by_constraint.get(i, ()):
                accs[k].add(v, w)
            if i % _STREAM_FLUSH == _STREAM_FLUSH - 1:
                wait([a.acc for a in accs if a.acc is not None])

        res = evaluate_dag(self.stream_dag, BaseArrays,
                           self.leaves.make_inputs(lambda k: inputs[k, ...]), constraint_sink=sink)
        for k, slot, w in others:
            message, count = res.interactions[slot[1]]
            accs[k].add(count if slot[0] == "n" else message[slot[2]], w)
        outs = [a.value() for a in accs]
        wait(outs)
        return outs
