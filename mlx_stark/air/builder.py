"""The symbolic constraint builder an AIR's ``eval`` writes to (constraints.md §1.1–§1.5).

Assertion semantics follow Plonky3 0.4.3's ``AirBuilder`` (they fix the recorded tree shapes):
``assert_zero(e)`` records ``e``; through ``when(c)`` it records ``Mul(c, e)`` (condition on
the left, nested filters outermost first); ``assert_eq(x, y)`` records ``Sub(x, y)``;
``assert_one(x)`` records ``Sub(x, Constant(1))``; ``assert_bool(x)`` records
``Mul(x, Sub(x, Constant(1)))``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import KeygenError
from .expr import (
    Constant,
    Expr,
    ExprLike,
    IsFirstRow,
    IsLastRow,
    IsTransition,
    Mul,
    Neg,
    Sub,
    Variable,
    as_expr,
    main_var,
    preprocessed_var,
    public_var,
)


class Row(Sequence):
    """Read-only row of variable expressions that names the part in out-of-range errors."""

    __slots__ = ("_items", "_what")

    def __init__(self, items: Sequence[Expr], what: str):
        self._items = tuple(items)
        self._what = what

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._items[i]
        n = len(self._items)
        if not -n <= i < n:
            raise KeygenError(
                "ColumnOutOfRange", f"{self._what} has width {n}; column {i} does not exist"
            )
        return self._items[i]

    def __iter__(self):
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Row({self._what}, width={len(self._items)})"


@dataclass
class Interaction:
    """One recorded interaction (tree form): ``(bus_index, message, count, count_weight)``."""

    bus_index: int
    message: List[Expr]
    count: Expr
    count_weight: int


class _Assertions(ABC):
    """Assertion methods shared by the base builder and its filtered views."""

    @abstractmethod
    def _record(self, e: Expr) -> None:
        """Store what ``assert_zero(e)`` asserts."""

    @abstractmethod
    def _record_ext(self, e: Expr) -> None:
        """Store what ``assert_zero_ext(e)`` asserts (condition on the right when filtered)."""

    def assert_zero(self, e: ExprLike) -> None:
        """Constrain ``e`` to be 0 on every row (the trace wraps: ``next`` of the last row is
        row 0). Through a filter (:meth:`when` …) the recorded constraint is ``cond · e``."""
        self._record(as_expr(e))

    def assert_eq(self, x: ExprLike, y: ExprLike) -> None:
        """Constrain ``x == y`` on every row (records ``x - y``), e.g.
        ``b.when_transition().assert_eq(b.next[0], b.local[1])``."""
        self._record(Sub(as_expr(x), as_expr(y)))

    def assert_one(self, x: ExprLike) -> None:
        """Constrain ``x == 1`` on every row (records ``x - 1``)."""
        self._record(Sub(as_expr(x), Constant(1)))

    def assert_bool(self, x: ExprLike) -> None:
        """Constrain ``x`` to be 0 or 1 on every row (records ``x · (x - 1)``, degree 2)."""
        self._record(as_expr(x).bool_check())

    def assert_zeros(self, es: Iterable[ExprLike]) -> None:
        """:meth:`assert_zero` for each expression of ``es``, in order."""
        for e in es:
            self.assert_zero(e)

    def assert_bools(self, xs: Iterable[ExprLike]) -> None:
        """:meth:`assert_bool` for each expression of ``xs``, in order."""
        for x in xs:
            self.assert_bool(x)

    # extension-field assertions (the extension of the symbolic builder is F itself)
    def assert_zero_ext(self, e: ExprLike) -> None:
        """:meth:`assert_zero` as Plonky3's extension-field variant records it: the same
        constraint on the base builder, but ``e · cond`` (condition on the right) through a
        filter."""
        self._record_ext(as_expr(e))

    def assert_eq_ext(self, x: ExprLike, y: ExprLike) -> None:
        """:meth:`assert_eq` with the tree shape of :meth:`assert_zero_ext`."""
        self._record_ext(Sub(as_expr(x), as_expr(y)))

    def assert_one_ext(self, x: ExprLike) -> None:
        """:meth:`assert_one` with the tree shape of :meth:`assert_zero_ext`."""
        self._record_ext(Sub(as_expr(x), Constant(1)))

    # filters
    def when(self, condition: ExprLike) -> "FilteredBuilder":
        """A view whose assertions hold only where ``condition`` is non-zero: each records
        ``condition · e``. Filters nest: ``b.when(c1).when(c2).assert_zero(e)`` records
        ``c1 · (c2 · e)``. A filtered view reads rows, public values and selectors but cannot
        push interactions (put the condition in the count instead)."""
        return FilteredBuilder(self, as_expr(condition))

    def when_ne(self, x: ExprLike, y: ExprLike) -> "FilteredBuilder":
        """:meth:`when` with the condition ``x - y``."""
        return self.when(Sub(as_expr(x), as_expr(y)))

    def when_first_row(self) -> "FilteredBuilder":
        """Assertions that hold on row 0 only (``when(is_first_row)``)."""
        return self.when(self.is_first_row)

    def when_last_row(self) -> "FilteredBuilder":
        """Assertions that hold on the last row only (``when(is_last_row)``)."""
        return self.when(self.is_last_row)

    def when_transition(self) -> "FilteredBuilder":
        """Assertions that hold on every row but the last (``when(is_transition)``): use it
        for constraints that read ``next``, so the wrap from the last row to row 0 is not
        checked."""
        return self.when(self.is_transition)


class FilteredBuilder(_Assertions):
    """``builder.when(cond)``: every assertion is multiplied by ``cond`` (on the left)."""

    def __init__(self, inner: _Assertions, condition: Expr):
        self._inner = inner
        self.condition = condition

    def _record(self, e: Expr) -> None:
        self._inner._record(Mul(self.condition, e))

    def _record_ext(self, e: Expr) -> None:
        self._inner._record_ext(Mul(e, self.condition))

    def __getattr__(self, name):
        # rows, public values and selectors are read through the base builder; interactions
        # cannot be filtered (count them with the condition instead)
        if name in _READABLE:
            return getattr(self._inner, name)
        raise AttributeError(f"a filtered builder has no attribute {name!r}")


_READABLE = frozenset({
    "local", "next", "cached_local", "cached_next", "preprocessed_local", "preprocessed_next",
    "public_values", "is_first_row", "is_last_row", "is_transition",
})


class SymbolicBuilder(_Assertions):
    """Records the constraints and interactions of one AIR: the ``b`` of ``Air.eval(b)``.

    Reading the trace (each row a :class:`Row` of :class:`~mlx_stark.air.expr.Variable`
    expressions; indexing past the width raises ``KeygenError("ColumnOutOfRange")``):

    * ``b.local[c]`` / ``b.next[c]``: column ``c`` of the common main on this row / the next row
      (the row after the last is row 0);
    * ``b.cached_local[k][c]`` / ``b.cached_next[k][c]``: cached main part ``k``;
    * ``b.preprocessed_local[c]`` / ``b.preprocessed_next[c]``: the preprocessed trace;
    * ``b.public_values[j]``: public value ``j`` (the same on every row);
    * ``b.is_first_row``, ``b.is_last_row``, ``b.is_transition``: row selectors (0/1).

    Writing constraints (each holds on every row unless filtered): :meth:`assert_zero`,
    :meth:`assert_eq`, :meth:`assert_one`, :meth:`assert_bool`, :meth:`assert_zeros`,
    :meth:`assert_bools`; filters :meth:`when`, :meth:`when_ne`, :meth:`when_first_row`,
    :meth:`when_last_row`, :meth:`when_transition`, e.g.
    ``b.when_first_row().assert_eq(b.local[0], b.public_values[0])``.

    Interactions (buses, checked by LogUp): :meth:`push_interaction`, or the helpers
    :class:`PermutationCheckBus` (``send`` / ``receive``) and :class:`LookupBus`.

    Expressions combine with ``+``, ``-``, ``*``, unary ``-`` and Python ints, plus the helpers
    of :class:`~mlx_stark.air.expr.Expr` (``square``, ``cube``, ``xor``, ``andn``, ...).

    DAG part numbering (§1.1): cached parts are parts ``0..m-1``, the common main is part ``m``.
    """

    def __init__(
        self,
        common_width: int,
        cached_widths: Sequence[int] = (),
        preprocessed_width: Optional[int] = None,
        num_public_values: int = 0,
    ):
        m = len(cached_widths)
        self.cached_local: Tuple[Row, ...] = tuple(
            _var_row(lambda c, k=k: main_var(k, 0, c), w, f"cached main part {k} (local)")
            for k, w in enumerate(cached_widths)
        )
        self.cached_next: Tuple[Row, ...] = tuple(
            _var_row(lambda c, k=k: main_var(k, 1, c), w, f"cached main part {k} (next)")
            for k, w in enumerate(cached_widths)
        )
        self.local = _var_row(lambda c: main_var(m, 0, c), common_width, "common main (local)")
        self.next = _var_row(lambda c: main_var(m, 1, c), common_width, "common main (next)")
        pw = preprocessed_width or 0
        self.preprocessed_local = _var_row(
            lambda c: preprocessed_var(0, c), pw, "preprocessed trace (local)"
        )
        self.preprocessed_next = _var_row(
            lambda c: preprocessed_var(1, c), pw, "preprocessed trace (next)"
        )
        self.public_values = _var_row(public_var, num_public_values, "public values")
        self.is_first_row = IsFirstRow()
        self.is_last_row = IsLastRow()
        self.is_transition = IsTransition()
        self.constraints: List[Expr] = []
        self.interactions: List[Interaction] = []

    def _record(self, e: Expr) -> None:
        self.constraints.append(e)

    _record_ext = _record

    def push_interaction(
        self,
        bus_index: int,
        fields: Iterable[ExprLike],
        count: ExprLike,
        count_weight: int = 1,
    ) -> None:
        """Record ``count / (α + h(fields, bus))`` (§1.5). A send uses a positive count, a
        receive the negated one; ``count_weight`` only feeds trace-height constraints (§2.3).

        ``fields`` is the message (a non-empty sequence of expressions), ``bus_index`` a u16.
        Over all rows of all AIRs of a proof, the counts of each (bus, message) must sum to 0,
        or no proof exists."""
        if not 0 <= bus_index < 1 << 16:
            raise KeygenError("BusIndexOutOfRange", f"bus index {bus_index} is not a u16")
        if not 0 <= count_weight < 1 << 32:
            raise KeygenError("CountWeightOutOfRange", f"count_weight {count_weight} is not a u32")
        self.interactions.append(
            Interaction(bus_index, [as_expr(f) for f in fields], as_expr(count), count_weight)
        )


def _var_row(make, width: int, what: str) -> Row:
    return Row([Variable(make(c)) for c in range(width)], what)


class LookupBus:
    """Lookup bus (reference ``LookupBus``): queries count with weight 1, the table side
    receives ``Neg(num_lookups)`` with weight 0."""

    def __init__(self, index: int):
        self.index = index

    def lookup_key(self, builder: SymbolicBuilder, query: Iterable[ExprLike], enabled: ExprLike):
        """Look ``query`` up in the table (``enabled`` times on this row)."""
        builder.push_interaction(self.index, query, enabled, 1)

    def add_key_with_lookups(
        self, builder: SymbolicBuilder, key: Iterable[ExprLike], num_lookups: ExprLike
    ):
        """Provide table entry ``key``, looked up ``num_lookups`` times in all."""
        builder.push_interaction(self.index, key, Neg(as_expr(num_lookups)), 0)


class PermutationCheckBus:
    """Permutation bus (reference ``PermutationCheckBus``): ``send`` counts ``enabled``,
    ``receive`` counts ``Neg(enabled)``, both with weight 1."""

    def __init__(self, index: int):
        self.index = index

    def send(self, builder: SymbolicBuilder, message: Iterable[ExprLike], enabled: ExprLike):
        """Send ``message`` ``enabled`` times (usually 0 or 1) on this row."""
        builder.push_interaction(self.index, message, enabled, 1)

    def receive(self, builder: SymbolicBuilder, message: Iterable[ExprLike], enabled: ExprLike):
        """Receive ``message`` ``enabled`` times on this row (count ``-enabled``)."""
        builder.push_interaction(self.index, message, Neg(as_expr(enabled)), 1)

    def interact(self, builder: SymbolicBuilder, message: Iterable[ExprLike], direction: ExprLike):
        """Send (``direction`` positive) or receive (negative) ``message``."""
        builder.push_interaction(self.index, message, direction, 1)
