"""Evaluation of a constraint DAG over an algebra (constraints.md §1.4, §1.6).

Nodes are evaluated in index order, each from its already computed children. The same loop
serves every caller; only the algebra and the inputs change:

* :class:`BaseArrays` — values are base-field MLX arrays of any (common, broadcastable) shape,
  e.g. ``(H,)`` columns over all rows, or points of an evaluation domain;
* :class:`ExtArrays` — values are extension-field MLX arrays ``(..., 4)``;
* :class:`Host` — values are Python ints (F) or :class:`~mlx_stark.field.host.EF` scalars.

:func:`evaluate_dag_ef` computes the same node values as the :class:`Host` algebra, level by
level (nodes whose children are all computed) as NumPy EF arrays: the verifier evaluates a
Keccak DAG (39k nodes, 47 levels) at one point this way.

In the two array algebras a value may also be a Python int: constants and public values stay on
the host until they meet an array, so constant-only sub-expressions cost nothing on the device.

Intermediate results are dropped right after their last reader (a Keccak DAG has ~10^4 nodes),
constraint values can be streamed to a ``constraint_sink`` instead of being kept, and dangling
nodes (read by nothing, §1.6) are not evaluated. The DAG is the single source of truth: a
generated kernel can replace this interpreter as long as it computes the same node values.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, List, Optional, Sequence, Tuple

import mlx.core as mx
import numpy as np

from ..field import bb, ext
from ..field.bb import P, U32
from ..field.host import EF, ef_mul_np, ef_values
from .dag import NodeKind, SymbolicConstraintsDag
from .expr import Entry

Columns = Sequence[Any]  # indexable by column: a list of per-column values or a (w, ...) array


@dataclass
class DagInputs:
    """Variable and selector values for one evaluation.

    * ``main[k] = (local, next)`` for DAG main part ``k`` (cached parts first, then the common
      main, §1.1): column ``c`` at offset 0 is ``local[c]``, at offset 1 ``next[c]``
      (``next`` may be ``None`` when the DAG has no rotation).
    * ``preprocessed = (local, next)`` or ``None``.
    * ``public_values``: canonical ints.
    * selector values ``is_first_row``, ``is_last_row``, ``is_transition``.
    """

    main: Sequence[Tuple[Columns, Optional[Columns]]]
    preprocessed: Optional[Tuple[Columns, Optional[Columns]]] = None
    public_values: Sequence[int] = ()
    is_first_row: Any = None
    is_last_row: Any = None
    is_transition: Any = None


@dataclass
class DagValues:
    """Results: ``constraints`` in ``constraint_idx`` order (``None`` when streamed to a sink)
    and, per interaction in push order, ``(message values, count value)``."""

    constraints: Optional[List[Any]]
    interactions: List[Tuple[List[Any], Any]]


# ---------------------------------------------------------------- algebras
class Host:
    """Python ints (F) and :class:`EF` scalars, mixed freely."""

    @staticmethod
    def const(c: int):
        return c % P

    @staticmethod
    def add(a, b):
        r = a + b
        return r % P if isinstance(r, int) else r

    @staticmethod
    def sub(a, b):
        r = a - b
        return r % P if isinstance(r, int) else r

    @staticmethod
    def neg(a):
        return (-a) % P if isinstance(a, int) else -a

    @staticmethod
    def mul(a, b):
        r = a * b
        return r % P if isinstance(r, int) else r


class BaseArrays:
    """Base-field MLX arrays (uint32, canonical) of broadcastable shapes, plus host ints."""

    @staticmethod
    def const(c: int):
        return c % P

    @staticmethod
    def add(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a + b) % P
        return bb.add(_arr(a), _arr(b))

    @staticmethod
    def sub(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a - b) % P
        return bb.sub(_arr(a), _arr(b))

    @staticmethod
    def neg(a):
        return (-a) % P if isinstance(a, int) else bb.neg(a)

    @staticmethod
    def mul(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return a * b % P
        return bb.mul(_arr(a), _arr(b))


class ExtArrays:
    """Extension-field MLX arrays ``(..., 4)`` uint32, plus host ints (base constants)."""

    @staticmethod
    def const(c: int):
        return c % P

    @staticmethod
    def add(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a + b) % P
        return ext.add(_ext(a), _ext(b))

    @staticmethod
    def sub(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return (a - b) % P
        return ext.sub(_ext(a), _ext(b))

    @staticmethod
    def neg(a):
        return (-a) % P if isinstance(a, int) else ext.neg(a)

    @staticmethod
    def mul(a, b):
        if isinstance(a, int) and isinstance(b, int):
            return a * b % P
        if isinstance(a, int):
            return ext.mul_base(b, _arr(a))
        if isinstance(b, int):
            return ext.mul_base(a, _arr(b))
        return ext.mul(a, b)


@lru_cache(maxsize=256)
def _scalar(c: int) -> mx.array:
    return mx.array(c, dtype=U32)


@lru_cache(maxsize=256)
def _ext_scalar(c: int) -> mx.array:
    return mx.array([c, 0, 0, 0], dtype=U32)


def _arr(v):
    return _scalar(v) if isinstance(v, int) else v


def _ext(v):
    return _ext_scalar(v) if isinstance(v, int) else v


# ---------------------------------------------------------------- the interpreter
class _Plan:
    """Per-DAG bookkeeping for the interpreter (computed once per DAG, kept in its cache)."""

    def __init__(self, dag: SymbolicConstraintsDag):
        n = len(dag.nodes)
        last = dag.last_uses()
        keep = [False] * n
        for it in dag.interactions:
            for m in it.message:
                keep[m] = True
            keep[it.count] = True
        self.constraint_pos = {node: i for i, node in enumerate(dag.constraint_idx)}
        # a node is computed iff something reads it or it is an output
        self.needed = [last[i] >= 0 or keep[i] or i in self.constraint_pos for i in range(n)]
        # children whose value can be dropped once node i is computed
        self.release: List[Tuple[int, ...]] = [
            tuple(c for c in set(dag.children(i)) if last[c] == i and not keep[c])
            for i in range(n)]


def evaluate_dag(
    dag: SymbolicConstraintsDag,
    algebra,
    inputs: DagInputs,
    constraint_sink: Optional[Callable[[int, Any], None]] = None,
) -> DagValues:
    """Evaluate every needed node of ``dag`` in index order.

    ``algebra`` is :class:`BaseArrays`, :class:`ExtArrays`, :class:`Host` or any object with
    ``const/add/sub/neg/mul``. If ``constraint_sink`` is given, it is called as
    ``sink(i, value)`` for the ``i``-th constraint (``constraint_idx`` order) as soon as it is
    computed and the constraint values are not kept. Returns :class:`DagValues`.
    """
    plan = dag.cache.get("evaluate.plan", lambda: _Plan(dag))
    vals: List[Any] = [None] * len(dag.nodes)
    constraints: Optional[List[Any]] = (
        None if constraint_sink is not None else [None] * len(dag.constraint_idx)
    )
    add, sub, mul, neg = algebra.add, algebra.sub, algebra.mul, algebra.neg
    for i, node in enumerate(dag.nodes):
        if not plan.needed[i]:
            continue
        k = node.kind
        if k == NodeKind.MUL:
            v = mul(vals[node.left], vals[node.right])
        elif k == NodeKind.ADD:
            v = add(vals[node.left], vals[node.right])
        elif k == NodeKind.SUB:
            v = sub(vals[node.left], vals[node.right])
        elif k == NodeKind.NEG:
            v = neg(vals[node.left])
        elif k == NodeKind.VARIABLE:
            v = _variable(node.var, algebra, inputs)
        elif k == NodeKind.CONSTANT:
            v = algebra.const(node.value)
        elif k == NodeKind.IS_FIRST_ROW:
            v = inputs.is_first_row
        elif k == NodeKind.IS_LAST_ROW:
            v = inputs.is_last_row
        else:
            v = inputs.is_transition
        vals[i] = v
        pos = plan.constraint_pos.get(i)
        if pos is not None:
            if constraint_sink is not None:
                constraint_sink(pos, v)
            else:
                constraints[pos] = v
        for c in plan.release[i]:
            vals[c] = None
    interactions = [
        ([vals[m] for m in it.message], vals[it.count]) for it in dag.interactions
    ]
    return DagValues(constraints, interactions)


def _variable(var, algebra, inputs: DagInputs):
    if var.entry == Entry.MAIN:
        cols = inputs.main[var.part_index][var.offset]
    elif var.entry == Entry.PREPROCESSED:
        cols = inputs.preprocessed[var.offset]
    elif var.entry == Entry.PUBLIC:
        return algebra.const(int(inputs.public_values[var.index]))
    else:
        raise ValueError("Challenge variables are not supported")
    return cols[var.index]



# ---------------------------------------------------------------- level by level, NumPy EF
class _LevelPlan:
    """Per-DAG node groups for :func:`evaluate_dag_ef`: leaves by kind, then per level and
    kind (:meth:`SymbolicConstraintsDag.levels`) the node indices and their operands'."""

    def __init__(self, dag: SymbolicConstraintsDag):
        self.variables: List[Tuple[int, Any]] = []
        self.constants: List[Tuple[int, int]] = []
        self.selectors: dict = {}
        for i, node in enumerate(dag.nodes):
            k = node.kind
            if k == NodeKind.VARIABLE:
                self.variables.append((i, node.var))
            elif k == NodeKind.CONSTANT:
                self.constants.append((i, node.value))
            elif not dag.children(i):
                self.selectors.setdefault(k, []).append(i)
        self.steps = []
        for level in dag.levels():
            for k, ids, left, right in level:
                self.steps.append((k,) + tuple(np.array(c, dtype=np.int64)
                                               for c in (ids, left, right)))


def evaluate_dag_ef(dag: SymbolicConstraintsDag, inputs: DagInputs) -> DagValues:
    """``evaluate_dag(dag, Host, inputs)`` with every value an :class:`EF`, computed level by
    level over NumPy ``(n, 4)`` arrays. Every node is evaluated (dangling ones too: their
    variables lie within the key's widths, so they cost only arithmetic)."""
    plan = dag.cache.get("evaluate.level_plan", lambda: _LevelPlan(dag))
    vals = np.zeros((len(dag.nodes), 4), dtype=np.uint64)
    for i, var in plan.variables:
        vals[i] = EF.lift(_variable(var, Host, inputs)).c
    for i, value in plan.constants:
        vals[i, 0] = value
    for kind, value in ((NodeKind.IS_FIRST_ROW, inputs.is_first_row),
                        (NodeKind.IS_LAST_ROW, inputs.is_last_row),
                        (NodeKind.IS_TRANSITION, inputs.is_transition)):
        if kind in plan.selectors:
            vals[plan.selectors[kind]] = EF.lift(value).c
    for k, ids, left, right in plan.steps:
        a = vals[left]
        if k == NodeKind.ADD:
            vals[ids] = (a + vals[right]) % P
        elif k == NodeKind.SUB:
            vals[ids] = (a + (P - vals[right])) % P
        elif k == NodeKind.NEG:
            vals[ids] = (P - a) % P
        else:
            vals[ids] = ef_mul_np(a, vals[right])
    constraints = ef_values(vals[dag.constraint_idx]) if dag.constraint_idx else []
    interactions = []
    for it in dag.interactions:
        message = ef_values(vals[list(it.message)]) if it.message else []
        interactions.append((message, EF(*vals[it.count].tolist())))
    return DagValues(constraints, interactions)
