"""DAG evaluation (every algebra), check_constraints and the interaction-balance check on the
test AIRs of constraints.md §9: honest traces pass, corrupted ones fail with a precise error."""
import random

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.air import (
    Add,
    Air,
    BaseArrays,
    ConstraintNotSatisfied,
    Constant,
    DagBuilder,
    DagInputs,
    ExtArrays,
    Host,
    IsFirstRow,
    IsLastRow,
    IsTransition,
    Neg,
    Sub,
    UnbalancedInteractions,
    Variable,
    build_dag,
    check_constraints,
    check_interaction_balance,
    evaluate_dag,
    evaluate_dag_ef,
    symbolic_dag,
    trace_inputs,
)
from mlx_stark.airs import (
    KeccakfAir,
    FibonacciSelectorAir,
    cached_fixture_11,
    fib_fixture,
    fib_selector_trace,
    fib_trace,
    interactions_fixture_11,
    mixture_fixture_standard,
    preprocessed_and_cached_fixture,
    preprocessed_fib_fixture,
    self_interaction_fixture,
    sum_fixture,
)
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import ext
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF

SELS8 = [int(i % 2 == 0) for i in range(8)]

FIXTURES = {
    "fib": lambda: fib_fixture(0, 1, 16),
    "fib_h0": lambda: fib_fixture(3, 4, 1),
    "preprocessed_fib": lambda: preprocessed_fib_fixture(7, 3, SELS8),
    "interactions_11": interactions_fixture_11,
    "cached_11": cached_fixture_11,
    "self_interaction": lambda: self_interaction_fixture([4, 7, 8, 8, 10, 100], 3, 4),
    "preprocessed_cached": lambda: preprocessed_and_cached_fixture([1, 0, 0, 1, 1, 1, 0, 1], 3),
    "sum": sum_fixture,
    "mixture": lambda: mixture_fixture_standard(3),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_traces_satisfy_their_airs(name):
    fx = FIXTURES[name]()
    for t in fx.traces:
        check_constraints(t.air, t.common_main, t.public_values, cached=t.cached_mains)
    check_interaction_balance(fx.traces)


def test_fib_trace_values():
    fx = fib_fixture(0, 1, 8)
    t = fx.traces[0]
    assert t.common_main.tolist() == [
        [0, 1], [1, 1], [1, 2], [2, 3], [3, 5], [5, 8], [8, 13], [13, 21]
    ]
    assert t.public_values == [0, 1, 21]
    big = fib_fixture(1, 1, 1 << 10).traces[0]
    L, R = big.common_main[:, 0].astype(object), big.common_main[:, 1].astype(object)
    assert all(L[i + 1] == R[i] and R[i + 1] == (L[i] + R[i]) % P for i in range(1023))
    trace, pv = fib_selector_trace(7, 3, [1, 0, 0, 1])
    assert trace.tolist() == [[7, 3], [3, 10], [3, 10], [3, 10]] and pv == [7, 3, 10]


@pytest.mark.parametrize("a, b, n", [(0, 1, 1), (0, 1, 2), (1, 1, 8), (3, 7, 1 << 10),
                                     (P - 1, 5, 1 << 16), (5, 1 << 40, 4)])
def test_fib_trace_on_the_device_equals_the_host_trace(a, b, n):
    host, host_pv = fib_trace(a, b, n)
    dev, dev_pv = fib_trace(a, b, n, on_device=True)
    assert isinstance(dev, mx.array) and dev.dtype == mx.uint32
    assert np.array_equal(np.array(dev), host) and dev_pv == host_pv


def test_corrupted_cell_names_constraint_and_row():
    t = fib_fixture(0, 1, 8).traces[0]
    bad = t.common_main.copy()
    bad[3, 1] += 1
    # constraint 2 (R = L', node 12) fails first in constraint order, at row 3
    with pytest.raises(ConstraintNotSatisfied) as err:
        check_constraints(t.air, bad, t.public_values)
    assert (err.value.constraint, err.value.node, err.value.row) == (2, 12, 3)
    assert "FibonacciAir" in str(err.value) and "row 3" in str(err.value)
    # the last row's wrap-around is not constrained, but the public output is
    with pytest.raises(ConstraintNotSatisfied) as err:
        check_constraints(t.air, t.common_main, [0, 1, 22])
    assert (err.value.constraint, err.value.row) == (4, 7)
    # MLX input works the same
    with pytest.raises(ConstraintNotSatisfied):
        check_constraints(t.air, mx.array(bad), t.public_values)


@pytest.mark.parametrize("name", ["preprocessed_fib", "preprocessed_cached", "sum", "self_interaction"])
def test_corrupted_cell_fails(name):
    fx = FIXTURES[name]()
    t = fx.traces[0]
    if name == "self_interaction":  # no constraints: a changed cell unbalances the bus
        bad = t.common_main.copy()
        bad[5, 2] = (int(bad[5, 2]) + 1) % P
        t.common_main = bad
        with pytest.raises(UnbalancedInteractions, match="bus 4"):
            check_interaction_balance(fx.traces)
        return
    cached = [c.copy() for c in t.cached_mains]
    if cached:
        cached[-1][2, 0] = (int(cached[-1][2, 0]) + 5) % P
        main = t.common_main
    else:
        main = t.common_main.copy()
        main[2, 0] = (int(main[2, 0]) + 5) % P
    with pytest.raises(ConstraintNotSatisfied):
        check_constraints(t.air, main, t.public_values, cached=cached)


def test_wrong_preprocessed_trace_fails():
    t = preprocessed_fib_fixture(7, 3, SELS8).traces[0]
    flipped = 1 - t.air.preprocessed_trace()
    with pytest.raises(ConstraintNotSatisfied):
        check_constraints(t.air, t.common_main, t.public_values, preprocessed=flipped)


def test_unbalanced_interactions_are_reported():
    fx = interactions_fixture_11()
    receiver = fx.traces[1]
    bad = receiver.common_main.copy()
    bad[0, 0] = 2  # receive 5 twice instead of once
    receiver.common_main = bad
    with pytest.raises(UnbalancedInteractions, match=r"bus 0 message \[5\]: net count -1"):
        check_interaction_balance(fx.traces)
    # an absent sender leaves the receiver's counts unmatched
    with pytest.raises(UnbalancedInteractions):
        check_interaction_balance(interactions_fixture_11().without([0]).traces)
    # optional AIRs that are absent on both sides are fine
    check_interaction_balance(interactions_fixture_11().without([0, 1]).traces)


def test_input_validation():
    t = fib_fixture(0, 1, 8).traces[0]
    with pytest.raises(InvalidInputError, match="width 3"):
        check_constraints(t.air, np.zeros((8, 3), np.uint32), t.public_values)
    with pytest.raises(InvalidInputError, match="public values"):
        check_constraints(t.air, t.common_main, [0, 1])
    with pytest.raises(InvalidInputError, match="canonical"):
        check_constraints(t.air, np.full((8, 2), P, np.uint32), t.public_values)
    with pytest.raises(InvalidInputError, match="integer dtype"):
        check_constraints(t.air, t.common_main.astype(np.float32), t.public_values)
    fx = cached_fixture_11()
    s = fx.traces[0]
    with pytest.raises(InvalidInputError, match="different heights"):
        check_constraints(s.air, s.common_main, [], cached=[np.zeros((8, 1), np.uint32)])
    with pytest.raises(InvalidInputError, match="cached main"):
        check_constraints(s.air, s.common_main, [], cached=[])


# ---------------------------------------------------------------- evaluation vs a naive reference
def _tree_eval(e, env, memo):
    """Naive evaluation of an expression tree over NumPy object arrays (Python ints)."""
    if id(e) in memo:
        return memo[id(e)]
    if isinstance(e, Variable):
        v = env["var"](e.var)
    elif isinstance(e, Constant):
        v = e.value
    elif isinstance(e, IsFirstRow):
        v = env["first"]
    elif isinstance(e, IsLastRow):
        v = env["last"]
    elif isinstance(e, IsTransition):
        v = env["trans"]
    elif isinstance(e, Neg):
        v = -_tree_eval(e.x, env, memo)
    else:
        a, b = _tree_eval(e.x, env, memo), _tree_eval(e.y, env, memo)
        v = a + b if isinstance(e, Add) else a - b if isinstance(e, Sub) else a * b
    v = v % P
    memo[id(e)] = v
    return v


class RandomAir(Air):
    """Random constraint trees (shared sub-trees, constants 0/1 that trigger every DAG
    simplification) over a cached part, the common main, a preprocessed column and publics."""

    width = 3
    cached_widths = (2,)
    num_public_values = 2

    def __init__(self, seed, height=8):
        self.seed, self.height = seed, height

    def preprocessed_trace(self):
        return np.arange(self.height, dtype=np.uint32).reshape(-1, 1) * 7 + 1

    def eval(self, b):
        rng = random.Random(self.seed)
        leaves = [*b.local, *b.next, *b.cached_local[0], *b.cached_next[0],
                  b.preprocessed_local[0], b.preprocessed_next[0], *b.public_values,
                  b.is_first_row, b.is_last_row, b.is_transition]
        pool = list(leaves)
        for _ in range(60):
            r = rng.random()
            if r < 0.15:
                pool.append(Constant(rng.choice([0, 1, 2, P - 1, rng.randrange(P)])))
                continue
            x, y = rng.choice(pool), rng.choice(pool)
            op = rng.choice(["add", "sub", "mul", "neg", "xor", "andn"])
            pool.append({"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
                         "neg": lambda: -x, "xor": lambda: x.xor(y),
                         "andn": lambda: x.andn(y)}[op]())
        for e in rng.sample(pool[len(leaves):], 12):
            b.assert_zero(e)
        b.push_interaction(3, [rng.choice(pool), rng.choice(pool)], rng.choice(pool), 1)


@pytest.mark.parametrize("seed", range(6))
def test_dag_evaluation_matches_naive_tree_evaluation(seed):
    air = RandomAir(seed)
    H = air.height
    rng = np.random.default_rng(seed)
    common = rng.integers(0, P, size=(H, 3), dtype=np.uint32)
    cached = rng.integers(0, P, size=(H, 2), dtype=np.uint32)
    pv = [int(v) for v in rng.integers(0, P, size=2)]
    prep = air.preprocessed_trace()

    b = air.symbolic()
    dag = build_dag(b.constraints, b.interactions)
    rows = np.arange(H)
    cols = {1: common.astype(object), 0: cached.astype(object)}

    def var(v):
        if v.entry == 2:
            return pv[v.index]
        m = prep.astype(object) if v.entry == 0 else cols[v.part_index]
        return m[(rows + v.offset) % H, v.index]

    env = {"var": var, "first": (rows == 0).astype(object), "last": (rows == H - 1).astype(object),
           "trans": (rows != H - 1).astype(object)}
    memo = {}
    # constraint_idx is sorted + deduplicated: key the expected values by DAG node
    db = DagBuilder()
    want_by_node = {db.add(c): _tree_eval(c, env, memo) for c in b.constraints}
    assert sorted(want_by_node) == dag.constraint_idx
    it = b.interactions[0]
    want_msg = [_tree_eval(f, env, memo) for f in it.message]
    want_count = _tree_eval(it.count, env, memo)

    def full(v):
        return np.broadcast_to(np.asarray(v, dtype=object) % P, (H,))

    # base arrays over all rows
    inputs, _ = trace_inputs(air, common, pv, cached=[cached])
    got = evaluate_dag(dag, BaseArrays, inputs)
    for node, g in zip(dag.constraint_idx, got.constraints):
        assert list(full(np.array(g) if not isinstance(g, int) else g)) == list(full(want_by_node[node]))
    (msg, count), = got.interactions
    for g, w in zip(msg + [count], want_msg + [want_count]):
        assert list(full(np.array(g) if not isinstance(g, int) else g)) == list(full(w))

    # host algebra, one row at a time (a few rows), and extension arrays (embedded inputs)
    for r in (0, 3, H - 1):
        def col_at(m, off, r=r):
            return [int(x) for x in m[(r + off) % H]]
        host_inputs = DagInputs(
            main=[(col_at(cached, 0), col_at(cached, 1)), (col_at(common, 0), col_at(common, 1))],
            preprocessed=(col_at(prep, 0), col_at(prep, 1)),
            public_values=pv,
            is_first_row=int(r == 0), is_last_row=int(r == H - 1), is_transition=int(r != H - 1),
        )
        hv = evaluate_dag(dag, Host, host_inputs)
        assert [int(v) for v in hv.constraints] == [int(full(want_by_node[n])[r]) for n in dag.constraint_idx]

    def lift(cols_local):
        return ext.from_base(cols_local)

    ext_inputs = DagInputs(
        main=[(lift(c), lift(n)) for c, n in inputs.main],
        preprocessed=tuple(lift(x) for x in inputs.preprocessed),
        public_values=pv,
        is_first_row=lift(inputs.is_first_row), is_last_row=lift(inputs.is_last_row),
        is_transition=lift(inputs.is_transition),
    )
    ev = evaluate_dag(dag, ExtArrays, ext_inputs)
    for node, g in zip(dag.constraint_idx, ev.constraints):
        w = full(want_by_node[node])
        if isinstance(g, int):
            assert all(x == g for x in w)
        else:
            g = np.broadcast_to(np.array(g), (H, 4))
            assert g[:, 0].tolist() == [int(x) for x in w] and not g[:, 1:].any()


def test_extension_and_host_evaluation_agree_at_a_random_point():
    """The verifier's use: one EF point per variable; host EF vs (1, 4) extension arrays."""
    dag = symbolic_dag(FibonacciSelectorAir(SELS8, enable_interactions=True))
    rng = random.Random(1)

    def rand_ef():
        return EF(*(rng.randrange(P) for _ in range(4)))

    vals = {k: [rand_ef() for _ in range(2)] for k in ("loc", "nxt")}
    prep = [rand_ef()], [rand_ef()]
    sel = [rand_ef() for _ in range(3)]
    pv = [5, 6, 7]
    host = evaluate_dag(dag, Host, DagInputs(
        main=[(vals["loc"], vals["nxt"])], preprocessed=prep, public_values=pv,
        is_first_row=sel[0], is_last_row=sel[1], is_transition=sel[2]))

    def arr(xs):
        return [ext.from_host([x]) for x in xs]

    dev = evaluate_dag(dag, ExtArrays, DagInputs(
        main=[(arr(vals["loc"]), arr(vals["nxt"]))], preprocessed=(arr(prep[0]), arr(prep[1])),
        public_values=pv, is_first_row=arr(sel)[0], is_last_row=arr(sel)[1],
        is_transition=arr(sel)[2]))
    assert [ext.to_host(v)[0] for v in dev.constraints] == host.constraints
    (hm, hc), = host.interactions
    (dm, dc), = dev.interactions
    assert ext.to_host(dc)[0] == hc and [ext.to_host(v)[0] for v in dm] == hm
    # spot-check one constraint by hand: IsTransition * (S * (R - L'))
    L, R = vals["loc"]
    Ln = vals["nxt"][0]
    assert host.constraints[2] == sel[2] * (prep[0][0] * (R - Ln))


@pytest.mark.parametrize("air", [FibonacciSelectorAir(SELS8, enable_interactions=True), KeccakfAir()],
                         ids=["fib_selector", "keccakf"])
def test_level_evaluation_matches_host(air):
    """The verifier's level-by-level NumPy evaluation gives the Host algebra's node values."""
    dag = symbolic_dag(air)
    rng = random.Random(2)

    def rand_ef():
        return EF(*(rng.randrange(P) for _ in range(4)))

    width = air.width
    has_prep = air.preprocessed_trace() is not None
    prep_w = np.asarray(air.preprocessed_trace()).shape[1] if has_prep else 0
    inputs = DagInputs(
        main=[([rand_ef() for _ in range(width)], [rand_ef() for _ in range(width)])],
        preprocessed=([rand_ef() for _ in range(prep_w)], [rand_ef() for _ in range(prep_w)])
        if has_prep else None,
        public_values=[rng.randrange(P) for _ in range(air.num_public_values)],
        is_first_row=rand_ef(), is_last_row=rand_ef(), is_transition=rand_ef())
    host = evaluate_dag(dag, Host, inputs)
    levels = evaluate_dag_ef(dag, inputs)
    assert levels.constraints == [EF.lift(v) for v in host.constraints]
    assert levels.interactions == [([EF.lift(m) for m in msg], EF.lift(c))
                                   for msg, c in host.interactions]


def test_streaming_sink_and_dead_value_release():
    t = fib_fixture(0, 1, 8).traces[0]
    dag = symbolic_dag(t.air)
    inputs, _ = trace_inputs(t.air, t.common_main, t.public_values)
    seen = []
    out = evaluate_dag(dag, BaseArrays, inputs, constraint_sink=lambda i, v: seen.append(i))
    assert out.constraints is None and seen == [0, 1, 2, 3, 4]
