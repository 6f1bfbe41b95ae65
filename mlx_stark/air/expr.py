"""Symbolic variables and expression trees (constraints.md §1.2–§1.3).

An AIR's ``eval`` builds trees of :class:`Expr` nodes through Python operators. Each node stores
its ``degree_multiple`` when it is built (never recomputed), and the tree is never simplified:
its exact shape fixes the DAG node indices and therefore the verifying-key hash (§1.6).

Operator conventions (they mirror Plonky3 0.4.3 so that trees written the same way have the same
shape): ``x + y`` → ``Add(x, y)``, ``x - y`` → ``Sub(x, y)``, ``x * y`` → ``Mul(x, y)``,
``-x`` → ``Neg(x)``. A Python int operand becomes ``Constant(int mod p)`` on the side where it is
written (``x - 1`` → ``Sub(x, Constant(1))``, ``2 * x`` → ``Mul(Constant(2), x)``).
"""
from __future__ import annotations

from enum import IntEnum
from typing import Iterable, NamedTuple, Union

from ..field.bb import P


class Entry(IntEnum):
    """Kind of a symbolic variable (the value is its postcard enum index)."""

    PREPROCESSED = 0
    MAIN = 1
    PUBLIC = 2
    CHALLENGE = 3


class SymbolicVariable(NamedTuple):
    """``(entry, index)`` of §1.2. ``part_index`` is the DAG main-part number (0 unless
    ``MAIN``); ``offset`` is 0 (current row) or 1 (next row) for trace entries, 0 otherwise."""

    entry: Entry
    index: int
    part_index: int = 0
    offset: int = 0

    @property
    def degree_multiple(self) -> int:
        return 1 if self.entry in (Entry.PREPROCESSED, Entry.MAIN) else 0

    def __repr__(self) -> str:
        if self.entry == Entry.MAIN:
            return f"Main{{{self.part_index},{self.offset}}}[{self.index}]"
        if self.entry == Entry.PREPROCESSED:
            return f"Prep{{{self.offset}}}[{self.index}]"
        if self.entry == Entry.PUBLIC:
            return f"Public[{self.index}]"
        return f"Challenge[{self.index}]"


def main_var(part_index: int, offset: int, index: int) -> SymbolicVariable:
    return SymbolicVariable(Entry.MAIN, index, part_index, offset)


def preprocessed_var(offset: int, index: int) -> SymbolicVariable:
    return SymbolicVariable(Entry.PREPROCESSED, index, 0, offset)


def public_var(index: int) -> SymbolicVariable:
    return SymbolicVariable(Entry.PUBLIC, index)


ExprLike = Union["Expr", int]


class Expr:
    """A node of a symbolic expression tree. Subclasses are the nine kinds of §1.3.

    Nodes compare and hash by identity (trees share sub-trees; the DAG builder memoises by
    identity and interns structurally).
    """

    __slots__ = ("degree_multiple",)
    children: tuple = ()

    # -- arithmetic (no simplification, see module docstring)
    def __add__(self, other: ExprLike) -> "Add":
        return Add(self, as_expr(other))

    def __radd__(self, other: int) -> "Add":
        return Add(as_expr(other), self)

    def __sub__(self, other: ExprLike) -> "Sub":
        return Sub(self, as_expr(other))

    def __rsub__(self, other: int) -> "Sub":
        return Sub(as_expr(other), self)

    def __mul__(self, other: ExprLike) -> "Mul":
        return Mul(self, as_expr(other))

    def __rmul__(self, other: int) -> "Mul":
        return Mul(as_expr(other), self)

    def __neg__(self) -> "Neg":
        return Neg(self)

    def __bool__(self):
        raise TypeError("a symbolic expression has no truth value (use the builder's assertions)")

    # -- Plonky3 ring helpers (p3-field 0.4.3 default methods; exact tree shapes)
    def double(self) -> "Add":
        """``x + x``."""
        return Add(self, self)

    def square(self) -> "Mul":
        """``x·x``."""
        return Mul(self, self)

    def cube(self) -> "Mul":
        """``(x·x)·x``."""
        return Mul(Mul(self, self), self)

    def bool_check(self) -> "Mul":
        """``x·(x − 1)``: zero iff x ∈ {0, 1}."""
        return Mul(self, Sub(self, Constant(1)))

    def xor(self, other: ExprLike) -> "Sub":
        """``x + y − x·2y`` (boolean XOR for 0/1 inputs)."""
        y = as_expr(other)
        return Sub(Add(self, y), Mul(self, y.double()))

    def xor3(self, y: ExprLike, z: ExprLike) -> "Sub":
        """``xor(xor(x, y), z)`` (boolean XOR of three 0/1 inputs)."""
        return self.xor(y).xor(z)

    def andn(self, other: ExprLike) -> "Mul":
        """``(1 − x)·y`` (boolean ``¬x ∧ y``)."""
        return Mul(Sub(Constant(1), self), as_expr(other))

    def exp_u64(self, power: int) -> "Expr":
        """Square-and-multiply from the least significant bit, starting from ``Constant(1)``."""
        if power < 0:
            raise ValueError("exp_u64 needs a non-negative exponent")
        product: Expr = Constant(1)
        current: Expr = self
        while power:
            if power & 1:
                product = Mul(product, current)
            current = Mul(current, current)
            power >>= 1
        return product


class Variable(Expr):
    __slots__ = ("var",)

    def __init__(self, var: SymbolicVariable):
        self.var = var
        self.degree_multiple = var.degree_multiple

    def __repr__(self) -> str:
        return repr(self.var)


class IsFirstRow(Expr):
    __slots__ = ()

    def __init__(self):
        self.degree_multiple = 1

    def __repr__(self) -> str:
        return "IsFirstRow"


class IsLastRow(Expr):
    __slots__ = ()

    def __init__(self):
        self.degree_multiple = 1

    def __repr__(self) -> str:
        return "IsLastRow"


class IsTransition(Expr):
    __slots__ = ()

    def __init__(self):
        self.degree_multiple = 1

    def __repr__(self) -> str:
        return "IsTransition"


class Constant(Expr):
    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = int(value) % P
        self.degree_multiple = 0

    def __repr__(self) -> str:
        return f"Const({self.value})"


class Add(Expr):
    __slots__ = ("x", "y")

    def __init__(self, x: Expr, y: Expr):
        self.x, self.y = x, y
        self.degree_multiple = max(x.degree_multiple, y.degree_multiple)

    @property
    def children(self) -> tuple:
        return (self.x, self.y)

    def __repr__(self) -> str:
        return f"Add({self.x!r}, {self.y!r})"


class Sub(Expr):
    __slots__ = ("x", "y")

    def __init__(self, x: Expr, y: Expr):
        self.x, self.y = x, y
        self.degree_multiple = max(x.degree_multiple, y.degree_multiple)

    @property
    def children(self) -> tuple:
        return (self.x, self.y)

    def __repr__(self) -> str:
        return f"Sub({self.x!r}, {self.y!r})"


class Neg(Expr):
    __slots__ = ("x",)

    def __init__(self, x: Expr):
        self.x = x
        self.degree_multiple = x.degree_multiple

    @property
    def children(self) -> tuple:
        return (self.x,)

    def __repr__(self) -> str:
        return f"Neg({self.x!r})"


class Mul(Expr):
    __slots__ = ("x", "y")

    def __init__(self, x: Expr, y: Expr):
        self.x, self.y = x, y
        self.degree_multiple = x.degree_multiple + y.degree_multiple

    @property
    def children(self) -> tuple:
        return (self.x, self.y)

    def __repr__(self) -> str:
        return f"Mul({self.x!r}, {self.y!r})"


def as_expr(value: ExprLike) -> Expr:
    """``value`` itself if it is an expression, else ``Constant(value mod p)`` for an int."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Constant(value)
    if isinstance(value, bool):
        return Constant(int(value))
    raise TypeError(f"cannot use {type(value).__name__} in a symbolic expression")


def expr_sum(items: Iterable[ExprLike]) -> Expr:
    """Rust ``Iterator::sum``: left fold without an identity (``((a + b) + c)``);
    ``Constant(0)`` when empty. (A fold that starts from ``ZERO`` is written ``0 + a + b``.)"""
    acc = None
    for item in items:
        acc = as_expr(item) if acc is None else Add(acc, as_expr(item))
    return Constant(0) if acc is None else acc


def expr_product(items: Iterable[ExprLike]) -> Expr:
    """Rust ``Iterator::product``: left fold without an identity; ``Constant(1)`` when empty."""
    acc = None
    for item in items:
        acc = as_expr(item) if acc is None else Mul(acc, as_expr(item))
    return Constant(1) if acc is None else acc


def xor(x: ExprLike, y: ExprLike) -> Expr:
    return as_expr(x).xor(y)


def xor3(x: ExprLike, y: ExprLike, z: ExprLike) -> Expr:
    return as_expr(x).xor3(y, z)


def andn(x: ExprLike, y: ExprLike) -> Expr:
    return as_expr(x).andn(y)


def bool_check(x: ExprLike) -> Expr:
    return as_expr(x).bool_check()
