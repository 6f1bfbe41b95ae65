"""The constraint DAG stored in the verifying key (constraints.md §1.6–§1.7).

Expression trees are interned into a flat node list in topological order (children before
parents) with the exact simplification rules of the reference, so node indices — and with them
the verifying-key hash — match it. This module is pure data plus the construction and the
walks every user of the DAG shares (:meth:`SymbolicConstraintsDag.children`, ``closure``,
``levels``, ``last_uses``); it is shared by keygen, the evaluators, the kernel generator and the
verifier.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..field.bb import P
from .expr import (
    Add,
    Constant,
    Entry,
    Expr,
    IsFirstRow,
    IsLastRow,
    IsTransition,
    Mul,
    Neg,
    Sub,
    SymbolicVariable,
    Variable,
)


class NodeKind(IntEnum):
    """Node kinds; the value is the postcard enum variant index (§2.4)."""

    VARIABLE = 0
    IS_FIRST_ROW = 1
    IS_LAST_ROW = 2
    IS_TRANSITION = 3
    CONSTANT = 4
    ADD = 5
    SUB = 6
    NEG = 7
    MUL = 8


_BINARY = (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL)
# operation kinds in the order a level of :meth:`SymbolicConstraintsDag.levels` lists them
OPERATIONS = _BINARY + (NodeKind.NEG,)


@dataclass(frozen=True)
class DagNode:
    """One DAG node. Fields in use per kind: ``VARIABLE`` → ``var``; ``CONSTANT`` → ``value``
    (canonical F); ``ADD``/``SUB``/``MUL`` → ``left``, ``right``, ``degree_multiple``;
    ``NEG`` → ``left`` (the operand), ``degree_multiple``. Equality is structural over all
    fields (the stored degree included), which is what interning needs."""

    kind: NodeKind
    left: int = 0
    right: int = 0
    degree_multiple: int = 0
    var: Optional[SymbolicVariable] = None
    value: int = 0

    def __repr__(self) -> str:
        k = self.kind
        if k == NodeKind.VARIABLE:
            return repr(self.var)
        if k == NodeKind.CONSTANT:
            return f"Constant({self.value})"
        if k in _BINARY:
            return f"{k.name.capitalize()}({self.left},{self.right},d{self.degree_multiple})"
        if k == NodeKind.NEG:
            return f"Neg({self.left},d{self.degree_multiple})"
        return {NodeKind.IS_FIRST_ROW: "IsFirstRow", NodeKind.IS_LAST_ROW: "IsLastRow",
                NodeKind.IS_TRANSITION: "IsTransition"}[k]


def variable_node(var: SymbolicVariable) -> DagNode:
    return DagNode(NodeKind.VARIABLE, var=var)


def constant_node(value: int) -> DagNode:
    return DagNode(NodeKind.CONSTANT, value=value % P)


@dataclass(frozen=True)
class DagInteraction:
    """An interaction with its message fields and count given as node indices."""

    message: Tuple[int, ...]
    count: int
    bus_index: int
    count_weight: int


@dataclass(frozen=True)
class TraceWidth:
    """Widths of an AIR's trace parts (§1.1). ``preprocessed`` is ``None`` when absent."""

    preprocessed: Optional[int]
    cached_mains: Tuple[int, ...]
    common_main: int

    @property
    def main_widths(self) -> Tuple[int, ...]:
        """Main-part widths in DAG part order (cached parts, then the common main if nonzero)."""
        return tuple(self.cached_mains) + ((self.common_main,) if self.common_main else ())

    @property
    def main_width(self) -> int:
        return sum(self.cached_mains) + self.common_main


class DerivedCache:
    """Values derived from one DAG by its users (evaluation plans, generated kernels), built on
    first use and kept with the DAG: a DAG is not modified after construction, and it lives in
    the keys, so every proof of a key reuses them. Keys name the value and its owner module."""

    def __init__(self):
        self._values: Dict[str, Any] = {}

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The value under ``key``, built by ``build()`` on first use."""
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = build()
        return value


@dataclass
class SymbolicConstraintsDag:
    """``nodes`` in topological order, ``constraint_idx`` (sorted, unique node indices of the
    constraints) and ``interactions`` in push order. ``cache``: values derived from the DAG
    (not part of its data: no effect on equality or ``repr``)."""

    nodes: List[DagNode]
    constraint_idx: List[int]
    interactions: List[DagInteraction]
    cache: DerivedCache = field(default_factory=DerivedCache, init=False, repr=False,
                                compare=False)

    @property
    def num_constraints(self) -> int:
        return len(self.constraint_idx)

    def variables(self) -> set:
        """Every variable held by a ``VARIABLE`` node (dangling nodes included)."""
        return {n.var for n in self.nodes if n.kind == NodeKind.VARIABLE}

    @property
    def need_rot(self) -> bool:
        """True iff some trace variable is read at offset 1 (§1.7)."""
        return any(
            n.kind == NodeKind.VARIABLE
            and n.var.entry in (Entry.PREPROCESSED, Entry.MAIN)
            and n.var.offset == 1
            for n in self.nodes
        )

    def unused_variables(self, width: TraceWidth) -> List[SymbolicVariable]:
        """Trace variables no node reads, in the enumeration order of §1.7."""
        used = self.variables()
        offsets = (0, 1) if self.need_rot else (0,)
        out = []
        for c in range(width.preprocessed or 0):
            for off in offsets:
                v = SymbolicVariable(Entry.PREPROCESSED, c, 0, off)
                if v not in used:
                    out.append(v)
        for part, w in enumerate(width.main_widths):
            for c in range(w):
                for off in offsets:
                    v = SymbolicVariable(Entry.MAIN, c, part, off)
                    if v not in used:
                        out.append(v)
        return out

    def expression(self, node: int, limit: int = 200) -> str:
        """Node ``node`` written out in infix form for error messages, cut after about
        ``limit`` characters (shared subexpressions are written out at each use)."""
        out: List[str] = []
        size = 0

        def emit(text: str) -> None:
            nonlocal size
            out.append(text)
            size += len(text)

        def walk(i: int) -> None:
            if size > limit:
                return
            n = self.nodes[i]
            if n.kind == NodeKind.VARIABLE:
                emit(repr(n.var))
            elif n.kind == NodeKind.CONSTANT:
                emit(str(n.value if n.value <= P // 2 else n.value - P))
            elif n.kind == NodeKind.NEG:
                emit("-(")
                walk(n.left)
                emit(")")
            elif n.kind in _BINARY:
                emit("(")
                walk(n.left)
                emit({NodeKind.ADD: " + ", NodeKind.SUB: " - ", NodeKind.MUL: " * "}[n.kind])
                walk(n.right)
                emit(")")
            else:
                emit(repr(n))

        walk(node)
        text = "".join(out)
        if size > limit:
            return text[:limit] + "…"
        return text[1:-1] if self.nodes[node].kind in _BINARY else text  # outer brackets

    # ---------------------------------------------------------------- walks
    def children(self, i: int) -> Tuple[int, ...]:
        """The operands of node ``i``: ``(left, right)`` for ADD/SUB/MUL, ``(left,)`` for NEG,
        ``()`` for a leaf."""
        n = self.nodes[i]
        if n.kind in _BINARY:
            return (n.left, n.right)
        if n.kind == NodeKind.NEG:
            return (n.left,)
        return ()

    def closure(self, roots: Sequence[int]) -> List[int]:
        """The nodes ``roots`` depend on (themselves included), each once, children before
        parents: depth-first from each root in turn, left operand first."""
        order: List[int] = []
        seen = set()
        stack = [(r, False) for r in reversed(roots)]
        while stack:
            i, expanded = stack.pop()
            if i in seen:
                continue
            if expanded:
                seen.add(i)
                order.append(i)
                continue
            stack.append((i, True))
            for c in reversed(self.children(i)):
                if c not in seen:
                    stack.append((c, False))
        return order

    def levels(self, nodes: Optional[Iterable[int]] = None) -> List[List[tuple]]:
        """The operation nodes among ``nodes`` (default: all) by depth (a leaf has depth 0, an
        operation one more than its deepest operand), shallowest first. A level is a list of
        groups ``(kind, ids, left, right)``, one per kind present, kinds in :data:`OPERATIONS`
        order: ``ids`` the ascending node indices, ``left``/``right`` their operands (``right =
        left`` for NEG). A level reads only leaves and earlier levels, so it can be computed
        at once."""
        depth = [0] * len(self.nodes)
        for i in range(len(self.nodes)):
            kids = self.children(i)
            if kids:
                depth[i] = 1 + max(depth[c] for c in kids)
        chosen = range(len(self.nodes)) if nodes is None else sorted(set(nodes))
        by_depth: Dict[int, Dict[NodeKind, List[int]]] = {}
        for i in chosen:
            if depth[i]:
                by_depth.setdefault(depth[i], {}).setdefault(self.nodes[i].kind, []).append(i)
        levels = []
        for _, groups in sorted(by_depth.items()):
            level = []
            for kind in OPERATIONS:
                ids = groups.get(kind)
                if ids:
                    kids = [self.children(i) for i in ids]
                    level.append((kind, ids, [c[0] for c in kids], [c[-1] for c in kids]))
            levels.append(level)
        return levels

    def last_uses(self) -> List[int]:
        """For every node, the largest node index that reads it (-1 if none). Used by
        evaluators to drop intermediates early."""
        last = [-1] * len(self.nodes)
        for i in range(len(self.nodes)):
            for c in self.children(i):
                last[c] = i
        return last


class DagBuilder:
    """Interns expression trees into a node list (the construction algorithm of §1.6).

    Sub-trees are memoised by object identity (trees share sub-trees, so a plain walk could be
    exponential); interning is structural. The walk is iterative, so deep folds are fine.
    """

    def __init__(self):
        self.nodes: List[DagNode] = []
        self._index: Dict[DagNode, int] = {}
        self._memo: Dict[int, int] = {}
        self._alive: List[Expr] = []  # keeps memoised trees alive so their ids stay unique

    def intern(self, node: DagNode) -> int:
        idx = self._index.get(node)
        if idx is None:
            idx = len(self.nodes)
            self.nodes.append(node)
            self._index[node] = idx
        return idx

    def add(self, root: Expr) -> int:
        """Intern ``root`` (children before parents, left sub-tree first); its node index."""
        memo = self._memo
        self._alive.append(root)
        stack = [root]
        while stack:
            e = stack[-1]
            if id(e) in memo:
                stack.pop()
                continue
            pending = [c for c in e.children if id(c) not in memo]
            if pending:
                stack.extend(reversed(pending))  # left child ends on top: interned first
                continue
            stack.pop()
            memo[id(e)] = self._simplify(e)
        return memo[id(root)]

    def _const(self, idx: int) -> Optional[int]:
        n = self.nodes[idx]
        return n.value if n.kind == NodeKind.CONSTANT else None

    def _simplify(self, e: Expr) -> int:
        memo = self._memo
        if isinstance(e, Variable):
            return self.intern(variable_node(e.var))
        if isinstance(e, Constant):
            return self.intern(constant_node(e.value))
        if isinstance(e, IsFirstRow):
            return self.intern(DagNode(NodeKind.IS_FIRST_ROW))
        if isinstance(e, IsLastRow):
            return self.intern(DagNode(NodeKind.IS_LAST_ROW))
        if isinstance(e, IsTransition):
            return self.intern(DagNode(NodeKind.IS_TRANSITION))
        d = e.degree_multiple
        if isinstance(e, Neg):
            c = memo[id(e.x)]
            vc = self._const(c)
            if vc is not None:
                return self.intern(constant_node(-vc))
            return self.intern(DagNode(NodeKind.NEG, left=c, degree_multiple=d))
        a, b = memo[id(e.x)], memo[id(e.y)]
        va, vb = self._const(a), self._const(b)
        nb = self.nodes[b]
        if isinstance(e, Add):
            if va is not None and vb is not None:
                return self.intern(constant_node(va + vb))
            if va == 0:
                return b
            if vb == 0:
                return a
            if nb.kind == NodeKind.NEG:
                return self.intern(DagNode(NodeKind.SUB, a, nb.left, d))
            return self.intern(DagNode(NodeKind.ADD, a, b, d))
        if isinstance(e, Sub):
            if va is not None and vb is not None:
                return self.intern(constant_node(va - vb))
            if vb == 0:
                return a
            if nb.kind == NodeKind.NEG:
                return self.intern(DagNode(NodeKind.ADD, a, nb.left, d))
            return self.intern(DagNode(NodeKind.SUB, a, b, d))
        if isinstance(e, Mul):
            if va is not None and vb is not None:
                return self.intern(constant_node(va * vb))
            if va == 0 or vb == 1:
                return a
            if vb == 0 or va == 1:
                return b
            return self.intern(DagNode(NodeKind.MUL, a, b, d))
        raise TypeError(f"not a symbolic expression: {e!r}")


def build_dag(constraints: Sequence[Expr], interactions: Sequence) -> SymbolicConstraintsDag:
    """The DAG of an AIR from its tree-form constraints (assertion order) and interactions
    (:class:`~mlx_stark.air.builder.Interaction`, push order), exactly as §1.6 builds it."""
    b = DagBuilder()
    roots = [b.add(c) for c in constraints]
    constraint_idx = sorted(set(roots))
    dag_interactions = []
    for it in interactions:
        message = tuple(b.add(f) for f in it.message)
        count = b.add(it.count)
        dag_interactions.append(DagInteraction(message, count, it.bus_index, it.count_weight))
    return SymbolicConstraintsDag(b.nodes, constraint_idx, dag_interactions)


def max_constraint_degree(constraints: Sequence[Expr], interactions: Sequence) -> int:
    """Per-AIR degree (§1.7): the largest stored ``degree_multiple`` over the tree-form
    constraints, interaction counts and message fields (0 if there are none)."""
    degrees = [c.degree_multiple for c in constraints]
    for it in interactions:
        degrees.append(it.count.degree_multiple)
        degrees.extend(f.degree_multiple for f in it.message)
    return max(degrees, default=0)
