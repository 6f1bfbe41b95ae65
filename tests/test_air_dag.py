"""Symbolic expressions, builder tree shapes and DAG construction (constraints.md §1.3–§1.7),
checked node by node against the worked examples of §1.6 and §9."""
import pytest

from mlx_stark.air import (
    Air,
    Constant,
    Entry,
    LookupBus,
    PermutationCheckBus,
    SymbolicBuilder,
    SymbolicVariable,
    TraceWidth,
    build_dag,
    expr_product,
    expr_sum,
    max_constraint_degree,
    symbolic_dag,
)
from mlx_stark.airs import (
    DummyInteractionAir,
    FibonacciAir,
    FibonacciSelectorAir,
    PreprocessedCachedAir,
    SelfInteractionAir,
    SumAir,
)
from mlx_stark.errors import KeygenError
from mlx_stark.field.bb import P

SELS = [1, 0, 1, 0, 1, 0, 1, 0]


def listing(dag):
    """Node list in the notation of constraints.md (``Sub(1,2,d1)``, ``Main{0,1}[0]``, ...)."""
    return [f"{i} {n!r}" for i, n in enumerate(dag.nodes)]


def expected(text):
    return [item.strip() for item in text.split(";")]


# ---------------------------------------------------------------- tree shapes (§1.3)
def _builder():
    return SymbolicBuilder(common_width=3, num_public_values=1)


def test_assertion_tree_shapes():
    b = _builder()
    x, y, z = b.local
    b.assert_zero(x)
    b.assert_eq(x, y)
    b.assert_one(x)
    b.assert_bool(x)
    b.when(y).assert_zero(x)
    b.when(y).when(z).assert_zero(x)
    b.when_ne(x, y).assert_eq(z, 1)
    b.when(y).assert_zero_ext(x)
    b.when_first_row().assert_bools([x, y])
    shapes = [repr(c) for c in b.constraints]
    X, Y, Z = "Main{0,0}[0]", "Main{0,0}[1]", "Main{0,0}[2]"
    assert shapes == [
        X,
        f"Sub({X}, {Y})",
        f"Sub({X}, Const(1))",
        f"Mul({X}, Sub({X}, Const(1)))",
        f"Mul({Y}, {X})",
        f"Mul({Y}, Mul({Z}, {X}))",
        f"Mul(Sub({X}, {Y}), Sub({Z}, Const(1)))",
        f"Mul({X}, {Y})",
        f"Mul(IsFirstRow, Mul({X}, Sub({X}, Const(1))))",
        f"Mul(IsFirstRow, Mul({Y}, Sub({Y}, Const(1))))",
    ]


def test_ring_helper_shapes_and_degrees():
    b = _builder()
    x, y, z = b.local
    X, Y, Z = "Main{0,0}[0]", "Main{0,0}[1]", "Main{0,0}[2]"
    assert repr(x.double()) == f"Add({X}, {X})"
    assert repr(x.cube()) == f"Mul(Mul({X}, {X}), {X})"
    assert repr(x.xor(y)) == f"Sub(Add({X}, {Y}), Mul({X}, Add({Y}, {Y})))"
    xy = f"Sub(Add({X}, {Y}), Mul({X}, Add({Y}, {Y})))"
    assert repr(x.xor3(y, z)) == f"Sub(Add({xy}, {Z}), Mul({xy}, Add({Z}, {Z})))"
    assert repr(x.andn(y)) == f"Mul(Sub(Const(1), {X}), {Y})"
    assert repr(x.exp_u64(5)) == f"Mul(Mul(Const(1), {X}), Mul(Mul({X}, {X}), Mul({X}, {X})))"
    assert repr(x.exp_u64(0)) == "Const(1)"
    assert repr(expr_sum([x, y, z])) == f"Add(Add({X}, {Y}), {Z})"
    assert repr(expr_sum([])) == "Const(0)"
    assert repr(expr_product([x, y])) == f"Mul({X}, {Y})"
    assert repr(0 + x + y) == f"Add(Add(Const(0), {X}), {Y})"
    assert repr(2 * x - 1) == f"Sub(Mul(Const(2), {X}), Const(1))"
    assert repr(-x) == f"Neg({X})"
    assert repr(x + (-1)) == f"Add({X}, Const({P - 1}))"
    # degree_multiple is fixed at build time from the tree (no simplification)
    pv = b.public_values[0]
    assert pv.degree_multiple == 0 and x.degree_multiple == 1
    assert (x * y * z).degree_multiple == 3
    assert (Constant(0) * x * x).degree_multiple == 2
    assert (x * pv).degree_multiple == 1
    assert x.xor3(y, z).degree_multiple == 3
    assert x.exp_u64(5).degree_multiple == 5
    with pytest.raises(TypeError):
        bool(x)


def test_column_out_of_range_is_a_clear_error():
    b = SymbolicBuilder(common_width=2, cached_widths=(3,), num_public_values=1)
    with pytest.raises(KeygenError, match="common main.*width 2.*column 2"):
        b.local[2]
    with pytest.raises(KeygenError, match="cached main part 0"):
        b.cached_next[0][3]
    with pytest.raises(KeygenError, match="public values"):
        b.public_values[1]
    with pytest.raises(KeygenError, match="preprocessed"):
        b.preprocessed_local[0]


def test_bus_helpers_follow_the_reference_conventions():
    b = _builder()
    x, y, z = b.local
    LookupBus(3).lookup_key(b, [x], y)
    LookupBus(3).add_key_with_lookups(b, [x], z)
    PermutationCheckBus(4).send(b, [x, y], z)
    PermutationCheckBus(4).receive(b, [x, y], z)
    PermutationCheckBus(4).interact(b, [x], y)
    got = [(i.bus_index, repr(i.count), i.count_weight, len(i.message)) for i in b.interactions]
    assert got == [
        (3, "Main{0,0}[1]", 1, 1),
        (3, "Neg(Main{0,0}[2])", 0, 1),
        (4, "Main{0,0}[2]", 1, 2),
        (4, "Neg(Main{0,0}[2])", 1, 2),
        (4, "Main{0,0}[1]", 1, 1),
    ]
    with pytest.raises(KeygenError, match="BusIndexOutOfRange"):
        b.push_interaction(1 << 16, [x], 1)
    with pytest.raises(AttributeError, match="filtered builder"):
        b.when(x).push_interaction(0, [x], 1)
    assert b.when(x).when_transition().local is b.local


# ---------------------------------------------------------------- DAG construction (§1.6)
def test_simplification_rules_keep_dangling_children():
    b = _builder()
    x, y, _ = b.local
    roots = [
        Constant(0) + x,           # -> x, leaves Constant(0)
        x * 1,                      # -> x, leaves Constant(1)
        x + (-y),                   # -> Sub(x, y), leaves Neg(y)
        x - (-y),                   # -> Add(x, y)
        Constant(2) + Constant(3),  # -> Constant(5), leaves both operands
        -Constant(4),               # -> Constant(p-4), leaves Constant(4)
        Constant(0) * x,            # -> Constant(0)
        x * 0,                      # -> Constant(0)
        x - 0,                      # -> x
        Constant(6) * Constant(7) - Constant(2),
    ]
    dag = build_dag(roots, [])
    assert listing(dag) == expected(
        f"0 Constant(0); 1 Main{{0,0}}[0]; 2 Constant(1); 3 Main{{0,0}}[1]; 4 Neg(3,d1); "
        f"5 Sub(1,3,d1); 6 Add(1,3,d1); 7 Constant(2); 8 Constant(3); 9 Constant(5); "
        f"10 Constant(4); 11 Constant({P - 4}); 12 Constant(6); 13 Constant(7); 14 Constant(42); "
        f"15 Constant(40)"
    )
    assert dag.constraint_idx == [0, 1, 5, 6, 9, 11, 15]


def test_interning_includes_the_stored_degree():
    b = _builder()
    x, y, _ = b.local
    e1 = x + y                            # Add(x, y, d1)
    e2 = x + (y * 1 * Constant(1))        # right child simplifies to y, degree 1: same node
    e3 = x + (y * (Constant(0) * x + 1))  # right child simplifies to y but has degree 2
    dag = build_dag([e1, e2, e3], [])
    adds = [(i, n) for i, n in enumerate(dag.nodes) if repr(n).startswith("Add")]
    assert [repr(n) for _, n in adds] == ["Add(0,1,d1)", "Add(0,1,d2)"]
    assert len(set(dag.constraint_idx)) == 2


def test_shared_subtrees_are_memoised():
    b = _builder()
    x, y, _ = b.local
    e = x + y
    for _ in range(200):  # 2^200 leaves as a tree, 200 nodes as a DAG
        e = e * e
    dag = build_dag([e], [])
    assert len(dag.nodes) == 3 + 200
    deep = expr_sum([x] * 3000)  # deep left fold: no recursion limit
    assert build_dag([deep], []).constraint_idx == [2999]


def test_fibonacci_dag():
    dag = symbolic_dag(FibonacciAir())
    assert listing(dag) == expected(
        "0 IsFirstRow; 1 Main{0,0}[0]; 2 Public[0]; 3 Sub(1,2,d1); 4 Mul(0,3,d2); 5 Main{0,0}[1]; "
        "6 Public[1]; 7 Sub(5,6,d1); 8 Mul(0,7,d2); 9 IsTransition; 10 Main{0,1}[0]; "
        "11 Sub(5,10,d1); 12 Mul(9,11,d2); 13 Add(1,5,d1); 14 Main{0,1}[1]; 15 Sub(13,14,d1); "
        "16 Mul(9,15,d2); 17 IsLastRow; 18 Public[2]; 19 Sub(5,18,d1); 20 Mul(17,19,d2)"
    )
    assert dag.constraint_idx == [4, 8, 12, 16, 20]
    assert dag.interactions == []
    assert dag.need_rot
    b = FibonacciAir().symbolic()
    assert max_constraint_degree(b.constraints, b.interactions) == 2
    assert dag.unused_variables(TraceWidth(None, (), 2)) == []
    # error messages write constraints out (infix, negative constants shown signed, cut long)
    assert dag.expression(16) == "IsTransition * ((Main{0,0}[0] + Main{0,0}[1]) - Main{0,1}[1])"
    assert dag.expression(14) == "Main{0,1}[1]"
    assert dag.expression(16, limit=20) == "(IsTransition * ((Ma…"


def test_walks_of_the_fibonacci_dag():
    """children, closure, levels and last_uses: the walks every user of a DAG shares."""
    from mlx_stark.air import NodeKind

    dag = symbolic_dag(FibonacciAir())
    assert dag.children(16) == (9, 15) and dag.children(14) == () and dag.children(0) == ()
    # depth-first, left operand first, each node once, children before parents
    assert dag.closure([16]) == [9, 1, 5, 13, 14, 15, 16]
    assert dag.closure([4, 8]) == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert dag.closure([]) == []
    levels = dag.levels()
    assert [[(k, ids) for k, ids, _, _ in level] for level in levels] == [
        [(NodeKind.ADD, [13]), (NodeKind.SUB, [3, 7, 11, 19])],
        [(NodeKind.SUB, [15]), (NodeKind.MUL, [4, 8, 12, 20])],
        [(NodeKind.MUL, [16])],
    ]
    assert levels[0][0][2:] == ([1], [5]) and levels[2][0][2:] == ([9], [15])
    assert [[ids for _, ids, _, _ in level] for level in dag.levels([12, 11, 10])] == [[[11]], [[12]]]
    assert dag.last_uses()[5] == 19 and dag.last_uses()[20] == -1
    # derived values live in the DAG's cache, which is no part of its data
    assert dag.cache.get("test", lambda: 7) == 7 and dag.cache.get("test", lambda: 8) == 7
    assert dag == symbolic_dag(FibonacciAir()) and "cache" not in repr(dag)


def test_expression_of_constants_and_negation():
    from mlx_stark.air import Constant, Neg, NodeKind, Variable
    from mlx_stark.air.expr import main_var

    dag = build_dag([Neg(Variable(main_var(0, 0, 3))) * Constant(P - 2)], [])
    assert dag.expression(dag.constraint_idx[0]) == "-(Main{0,0}[3]) * -2"
    neg = next(i for i, n in enumerate(dag.nodes) if n.kind == NodeKind.NEG)
    assert dag.children(neg) == (neg - 1,)
    assert dag.levels()[0] == [(NodeKind.NEG, [neg], [neg - 1], [neg - 1])]


FIB_SEL_NODES = (
    "0 IsFirstRow; 1 Main{0,0}[0]; 2 Public[0]; 3 Sub(1,2,d1); "
    "4 Mul(0,3,d2); 5 Main{0,0}[1]; 6 Public[1]; 7 Sub(5,6,d1); 8 Mul(0,7,d2); 9 IsTransition; "
    "10 Prep{0}[0]; 11 Main{0,1}[0]; 12 Sub(5,11,d1); 13 Mul(10,12,d2); 14 Mul(9,13,d3); "
    "15 Constant(1); 16 Sub(10,15,d1); 17 Sub(1,11,d1); 18 Mul(16,17,d2); 19 Mul(9,18,d3); "
    "20 Add(1,5,d1); 21 Main{0,1}[1]; 22 Sub(20,21,d1); 23 Mul(10,22,d2); 24 Mul(9,23,d3); "
    "25 Sub(5,21,d1); 26 Mul(16,25,d2); 27 Mul(9,26,d3); 28 IsLastRow; 29 Public[2]; "
    "30 Sub(5,29,d1); 31 Mul(28,30,d2)"
)


@pytest.mark.parametrize("interactions", [False, True])
def test_fibonacci_selector_dag(interactions):
    air = FibonacciSelectorAir(SELS, enable_interactions=interactions)
    dag = symbolic_dag(air)
    nodes = FIB_SEL_NODES + ("; 32 Neg(10,d1)" if interactions else "")
    assert listing(dag) == expected(nodes)
    assert dag.constraint_idx == [4, 8, 14, 19, 24, 27, 31]
    if interactions:
        (it,) = dag.interactions
        assert (it.message, it.count, it.bus_index, it.count_weight) == ((20,), 32, 0, 0)
    else:
        assert dag.interactions == []
    b = air.symbolic()
    assert max_constraint_degree(b.constraints, b.interactions) == 3
    assert dag.need_rot
    # Prep{1}[0] is never read
    assert dag.unused_variables(TraceWidth(1, (), 2)) == [
        SymbolicVariable(Entry.PREPROCESSED, 0, 0, 1)
    ]


@pytest.mark.parametrize(
    "partitioned, is_send, nodes, count",
    [
        (False, True, "0 Main{0,0}[1]; 1 Main{0,0}[0]", 1),
        (False, False, f"0 Main{{0,0}}[1]; 1 Constant({P - 1}); 2 Main{{0,0}}[0]; 3 Mul(1,2,d1)", 3),
        (True, True, "0 Main{0,0}[0]; 1 Main{1,0}[0]", 1),
        (True, False, f"0 Main{{0,0}}[0]; 1 Constant({P - 1}); 2 Main{{1,0}}[0]; 3 Mul(1,2,d1)", 3),
    ],
)
def test_dummy_interaction_dag(partitioned, is_send, nodes, count):
    air = DummyInteractionAir(1, is_send, 7, partitioned=partitioned, count_weight=2)
    dag = symbolic_dag(air)
    assert listing(dag) == expected(nodes)
    assert dag.constraint_idx == []
    (it,) = dag.interactions
    assert (it.message, it.count, it.bus_index, it.count_weight) == ((0,), count, 7, 2)
    assert not dag.need_rot
    b = air.symbolic()
    assert max_constraint_degree(b.constraints, b.interactions) == 1


@pytest.mark.parametrize("w", [2, 4, 7])
def test_self_interaction_dag(w):
    dag = symbolic_dag(SelfInteractionAir(w, 5))
    nodes = [f"{c} Main{{0,0}}[{c}]" for c in range(w)]
    nodes += [f"{w} Constant(1)"]
    nodes += [f"{w + 1 + c} Main{{0,1}}[{c}]" for c in range(w)]
    nodes += [f"{2 * w + 1} Constant({P - 1})", f"{2 * w + 2} Constant(0)", f"{2 * w + 3} Add(0,1,d1)"]
    nodes += [f"{2 * w + 2 + c} Add({2 * w + 1 + c},{c},d1)" for c in range(2, w)]
    nodes += [f"{3 * w + 2} Neg({3 * w + 1},d1)", f"{3 * w + 3} Neg({w + 1},d1)"]
    assert listing(dag) == nodes
    assert len(dag.nodes) == 3 * w + 4
    assert [it.count for it in dag.interactions] == [
        w, 2 * w + 1, 3 * w + 1, 3 * w + 2, 0, 3 * w + 3, 3 * w + 1, 3 * w + 2
    ]
    loc, nxt = tuple(range(w)), tuple(range(w + 1, 2 * w + 1))
    assert [it.message for it in dag.interactions] == [
        loc, nxt, loc, nxt, loc, nxt, loc[::-1], nxt[::-1]
    ]
    assert {(it.bus_index, it.count_weight) for it in dag.interactions} == {(5, 1)}
    assert dag.constraint_idx == []
    assert dag.need_rot


def test_preprocessed_cached_dag():
    dag = symbolic_dag(PreprocessedCachedAir(SELS, 1))
    assert listing(dag) == expected(
        "0 Prep{0}[0]; 1 Constant(1); 2 Sub(0,1,d1); 3 Mul(0,2,d2); 4 IsFirstRow; "
        "5 Main{1,0}[0]; 6 Mul(4,5,d2); 7 IsTransition; 8 Main{1,1}[0]; 9 Sub(8,5,d1); "
        "10 Sub(9,1,d1); 11 Mul(7,10,d2); 12 Add(5,0,d1); 13 Main{0,0}[0]; 14 Sub(12,13,d1); "
        "15 Prep{1}[0]; 16 Add(8,15,d1); 17 Main{0,1}[0]; 18 Sub(16,17,d1); 19 Mul(7,18,d2)"
    )
    assert dag.constraint_idx == [3, 6, 11, 14, 19]
    dag2 = symbolic_dag(PreprocessedCachedAir(SELS, 2))
    assert len(dag2.nodes) == 27 and dag2.constraint_idx == [3, 6, 11, 14, 19, 22, 26]
    dag3 = symbolic_dag(PreprocessedCachedAir(SELS, 3))
    assert len(dag3.nodes) == 34
    assert dag3.constraint_idx == [3, 6, 11, 14, 19, 22, 26, 29, 33]
    assert dag3.need_rot and dag3.unused_variables(TraceWidth(1, (1, 1, 1), 1)) == []


def test_sum_air_dag():
    dag = symbolic_dag(SumAir(5))
    assert listing(dag) == expected(
        "0 Main{1,0}[0]; 1 Constant(0); 2 Main{0,0}[0]; 3 Main{0,0}[1]; 4 Add(2,3,d1); "
        "5 Main{0,0}[2]; 6 Add(4,5,d1); 7 Main{0,0}[3]; 8 Add(6,7,d1); 9 Main{0,0}[4]; "
        "10 Add(8,9,d1); 11 Sub(0,10,d1)"
    )
    assert dag.constraint_idx == [11]
    assert not dag.need_rot


def test_unused_variables_order_and_dangling_nodes():
    class Sparse(Air):
        width = 3
        cached_widths = (2,)

        def eval(self, b):
            p = b.preprocessed_local  # width 2 through preprocessed_width below
            b.assert_zero(b.local[1] * 0 + p[1])  # Mul(.., 0) leaves Main{1,0}[1] dangling
            b.when_transition().assert_zero(b.cached_next[0][0])

        def preprocessed_width(self):
            return 2

    dag = symbolic_dag(Sparse())
    unused = dag.unused_variables(TraceWidth(2, (2,), 3))
    V = SymbolicVariable
    assert unused == [
        V(Entry.PREPROCESSED, 0, 0, 0), V(Entry.PREPROCESSED, 0, 0, 1),
        V(Entry.PREPROCESSED, 1, 0, 1),
        V(Entry.MAIN, 0, 0, 0), V(Entry.MAIN, 1, 0, 0), V(Entry.MAIN, 1, 0, 1),
        V(Entry.MAIN, 0, 1, 0), V(Entry.MAIN, 0, 1, 1),
        V(Entry.MAIN, 1, 1, 1),  # Main{1,0}[1] counts as used: a dangling node holds it
        V(Entry.MAIN, 2, 1, 0), V(Entry.MAIN, 2, 1, 1),
    ]


def test_constraint_idx_is_sorted_and_deduplicated():
    b = _builder()
    x, y, _ = b.local
    b.assert_zero(x * y)
    b.assert_zero(x)      # an older node than the first constraint
    b.assert_zero(x * y)  # duplicate
    dag = build_dag(b.constraints, b.interactions)
    assert dag.constraint_idx == [0, 2]
