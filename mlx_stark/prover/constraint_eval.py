"""Evaluation of linear forms of a constraint DAG's outputs at many points, for the prover.

The prover never needs single constraint values, only combinations with host EF weights:
``Σ_i λ^i·C_i``, ``Σ_σ eq3b_σ·count_σ``, ``Σ_σ eq3b_σ·Σ_j β^j·m_{σ,j} + const`` (a
:class:`Form` over output *slots*: ``("c", i)`` = constraint ``i`` in ``constraint_idx`` order,
``("n", σ)`` = the count of interaction ``σ``, ``("m", σ, j)`` = its message field ``j``).

A generated kernel (:mod:`mlx_stark.custom_kernels.constraints`: the whole DAG as
straight-line code, one thread per point) runs where the device has native kernels; otherwise
two evaluation strategies give identical results:

* node by node with :func:`mlx_stark.air.evaluate.evaluate_dag` (constraints streamed into the
  forms, dead values dropped): a few dispatches per node, so it suits large base-field arrays
  (round 0);
* level by level (:class:`LevelPlan`): the nodes are grouped by depth and all nodes of one
  level are computed together — one gather of their left operands, one of their right
  operands, one operation per node kind — into one buffer holding a row per node. A few
  dispatches per level whatever the number of nodes, but about twice the memory traffic:
  it suits small arrays and extension arrays (KeccakfAir: 39273 nodes, depth 47, in the
  multilinear rounds).

Inputs are the trace columns the DAG reads, one row each: ``(Wn, P)`` base or
``(Wn, P, 4)`` extension uint32 for ``P`` points; results are ``(P, 4)`` per form.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import mlx.core as mx

from .. import custom_kernels
from ..air.dag import NodeKind, SymbolicConstraintsDag
from ..air.evaluate import BaseArrays, evaluate_dag
from ..field import bb, ext
from ..field.bb import P, U32, U64
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

_OPS = (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL, NodeKind.NEG)


class _Level:
    __slots__ = ("start", "ranges", "left", "right")

    def __init__(self, start: int, ranges: List[Tuple[NodeKind, int, int]], left, right):
        self.start, self.ranges, self.left, self.right = start, ranges, left, right


class LevelPlan:
    """Level-by-level evaluation plan of the nodes of ``dag`` that ``outputs`` (node indices) depend on.

    ``leaf(node_index) -> (is_input, value)``: for a leaf node, either ``(True, row)`` — the
    node's value is row ``row`` of the caller's input matrix — or ``(False, c)`` — the node is
    the constant ``c`` (canonical int). ``num_inputs``: rows of the input matrix.
    ``row[node]`` is the buffer row of every evaluated node."""

    def __init__(self, dag: SymbolicConstraintsDag, outputs: Sequence[int],
                 leaf: Callable[[int], Tuple[bool, int]], num_inputs: int):
        nodes = dag.nodes
        needed = set()
        stack = list(outputs)
        while stack:
            i = stack.pop()
            if i in needed:
                continue
            needed.add(i)
            node = nodes[i]
            if node.kind in (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL):
                stack += [node.left, node.right]
            elif node.kind == NodeKind.NEG:
                stack.append(node.left)
        self.row: Dict[int, int] = {}
        constants: List[int] = []
        depth: Dict[int, int] = {}
        by_depth: Dict[int, List[int]] = {}
        for i in sorted(needed):  # children precede parents
            node = nodes[i]
            if node.kind in _OPS:
                kids = (node.left,) if node.kind == NodeKind.NEG else (node.left, node.right)
                depth[i] = 1 + max(depth[k] for k in kids)
                by_depth.setdefault(depth[i], []).append(i)
                continue
            depth[i] = 0
            is_input, value = leaf(i)
            if is_input:
                self.row[i] = value
            else:
                self.row[i] = num_inputs + len(constants)
                constants.append(value)
        self.num_inputs = num_inputs
        self.constants = constants
        self.levels: List[_Level] = []
        start = num_inputs + len(constants)
        for d in sorted(by_depth):
            order = sorted(by_depth[d], key=lambda i: _OPS.index(nodes[i].kind))
            ranges, at = [], 0
            for kind in _OPS:
                count = sum(1 for i in order if nodes[i].kind == kind)
                if count:
                    ranges.append((kind, at, at + count))
                    at += count
            for k, i in enumerate(order):
                self.row[i] = start + k
            left = mx.array([self.row[nodes[i].left] for i in order], dtype=U32)
            right = mx.array([self.row[nodes[i].right if nodes[i].kind != NodeKind.NEG
                                        else nodes[i].left] for i in order], dtype=U32)
            self.levels.append(_Level(start, ranges, left, right))
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
            lhs = mx.take(buf, level.left, axis=0)
            rhs = mx.take(buf, level.right, axis=0)
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
@dataclass
class Form:
    """``const + Σ weight·value(slot)`` over ``terms = [(slot, weight)]`` (module docstring)."""

    terms: List[Tuple[tuple, EF]]
    const: EF


def slot_node(dag: SymbolicConstraintsDag, slot: tuple) -> int:
    """The DAG node of an output slot."""
    if slot[0] == "c":
        return dag.constraint_idx[slot[1]]
    it = dag.interactions[slot[1]]
    return it.count if slot[0] == "n" else it.message[slot[2]]


@mx.compile
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
        return weighted_sum(vals[None], w)[0]
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
    """Evaluates :class:`Form` s of ``dag`` at many points (module docstring).

    ``constraints``: whether constraint slots are needed (otherwise only the interaction
    nodes are evaluated). ``leaf`` and ``num_inputs``: as for :class:`LevelPlan`.
    ``make_inputs(get)``: interpreter inputs reading input row ``get(k)`` for the trace
    variables and selectors."""

    def __init__(self, dag: SymbolicConstraintsDag, constraints: bool,
                 leaf: Callable[[int], Tuple[bool, int]], num_inputs: int, make_inputs):
        outputs = [i for it in dag.interactions for i in (*it.message, it.count)]
        if constraints:
            outputs = list(dag.constraint_idx) + outputs
        self.dag, self.leaf = dag, leaf
        self._outputs, self._num_inputs, self._plan = outputs, num_inputs, None
        self.stream_dag = dag if constraints else SymbolicConstraintsDag(dag.nodes, [],
                                                                         dag.interactions)
        self.make_inputs = make_inputs

    @property
    def plan(self) -> LevelPlan:
        """The level plan, built on first use (the generated kernels never need it)."""
        if self._plan is None:
            self._plan = LevelPlan(self.dag, self._outputs, self.leaf, self._num_inputs)
        return self._plan

    def input_leaves(self) -> tuple:
        """``((node, input row), ...)`` of every column-reading leaf of the DAG, ascending."""
        layout = self.__dict__.get("_input_leaves")
        if layout is None:
            out = []
            for i, node in enumerate(self.dag.nodes):
                if node.kind not in _OPS:
                    is_input, row = self.leaf(i)
                    if is_input:
                        out.append((i, row))
            layout = self._input_leaves = tuple(out)
        return layout

    def evaluate(self, forms: Sequence[Form], inputs: mx.array, base: bool) -> List[mx.array]:
        """Every form at the points of ``inputs`` (``(Wn, P)`` base or ``(Wn, P, 4)``):
        a list of ``(P, 4)`` uint32."""
        return self.evaluate_blocks(forms, inputs[None], base)

    def evaluate_blocks(self, forms: Sequence[Form], blocks: mx.array, base: bool) -> List[mx.array]:
        """Every form at the points ``(q, x)`` of ``blocks`` (``(Q, Wn, X)`` base or
        ``(Q, Wn, X, 4)``: block ``q`` holds the needed columns of ``X`` points): a list of
        ``(Q·X, 4)`` uint32, points in ``(q, x)`` order."""
        kernel = custom_kernels.native("constraints.evaluate_forms")
        if kernel is not None:
            return kernel(self, forms, blocks, base)
        q, wn, xs = blocks.shape[:3]
        inputs = blocks[0] if q == 1 else \
            mx.contiguous(mx.moveaxis(blocks, 0, 1)).reshape((wn, q * xs) + blocks.shape[3:])
        if not base or inputs.shape[1] <= _LEVEL_MAX_BASE_POINTS:
            return self._by_levels(forms, inputs, base)
        return self._by_nodes(forms, inputs, base)

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
                    rows = mx.array([plan.row[slot_node(self.dag, s)] for s, _ in f.terms],
                                    dtype=U32)
                    out = ext.add(_weighted_rows(mx.take(buf, rows, axis=0),
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

        res = evaluate_dag(self.stream_dag, BaseArrays, self.make_inputs(lambda k: inputs[k]),
                           constraint_sink=sink)
        for k, slot, w in others:
            message, count = res.interactions[slot[1]]
            accs[k].add(count if slot[0] == "n" else message[slot[2]], w)
        outs = [a.value() for a in accs]
        wait(outs)
        return outs
