"""Keygen (constraints.md §2): per-AIR keys, validation errors, trace-height constraints, the
postcard encoding of the verifying key and its prehash."""
from dataclasses import replace

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.air import Air, Entry, SymbolicVariable
from mlx_stark.air.dag import DagNode, NodeKind
from mlx_stark.airs import (
    DummyInteractionAir,
    EmptyAir,
    FibonacciAir,
    FibonacciSelectorAir,
    PreprocessedCachedAir,
    SelfInteractionAir,
    SumAir,
    mixture_fixture_standard,
)
from mlx_stark.errors import InvalidInputError, KeygenError
from mlx_stark.field.bb import P
from mlx_stark.hash.merkle import hash_host
from mlx_stark.keygen import (
    CODEC_VERSION,
    LinearConstraint,
    keygen,
    write_node,
    write_stark_vk,
    write_variable,
    write_whir_config,
)
from mlx_stark.params import (
    ListDecoding,
    SplitUniqueList,
    UniqueDecoding,
    default_test_params_small,
)
from mlx_stark.postcard import PostcardWriter
from mlx_stark.prover.stacked_pcs import stacked_commit

SELS8 = [int(i % 2 == 0) for i in range(8)]


@pytest.fixture(scope="module")
def params():
    return default_test_params_small()


# ---------------------------------------------------------------- postcard (§2.4 byte examples)
def _hex(write, value):
    w = PostcardWriter()
    write(w, value)
    return w.bytes().hex(" ").upper()


@pytest.mark.parametrize(
    "node, hexbytes",
    [
        (DagNode(NodeKind.MUL, 0, 3, 2), "08 00 03 02"),
        (DagNode(NodeKind.CONSTANT, value=1), "04 FE FF FF 7F"),
        (DagNode(NodeKind.CONSTANT, value=0), "04 00"),
        (DagNode(NodeKind.CONSTANT, value=P - 1), "04 83 80 80 C0 06"),
        (DagNode(NodeKind.VARIABLE, var=SymbolicVariable(Entry.MAIN, 1, 0, 1)), "00 01 00 01 01"),
        (DagNode(NodeKind.VARIABLE, var=SymbolicVariable(Entry.PUBLIC, 2)), "00 02 02"),
        (DagNode(NodeKind.VARIABLE, var=SymbolicVariable(Entry.PREPROCESSED, 0, 0, 1)), "00 00 01 00"),
        (DagNode(NodeKind.NEG, 10, 0, 1), "07 0A 01"),
        (DagNode(NodeKind.IS_TRANSITION), "03"),
    ],
)
def test_postcard_node_examples(node, hexbytes):
    assert _hex(write_node, node) == hexbytes


def test_postcard_primitives():
    assert _hex(PostcardWriter.signed, -2) == "03"
    assert _hex(PostcardWriter.signed, 5) == "0A"
    assert _hex(PostcardWriter.signed, -1) == "01"
    assert _hex(PostcardWriter.u8, 3) == "03"
    assert _hex(PostcardWriter.varint, 127) == "7F"
    assert _hex(PostcardWriter.varint, 128) == "80 01"
    assert _hex(PostcardWriter.varint, P) == "81 80 80 C0 07"
    assert _hex(PostcardWriter.varint, 2**32 - 1) == "FF FF FF FF 0F"
    assert _hex(PostcardWriter.field, 1) == _hex(PostcardWriter.varint, 268435454)
    assert _hex(lambda w, v: w.option(v, PostcardWriter.varint), None) == "00"
    assert _hex(lambda w, v: w.option(v, PostcardWriter.varint), 300) == "01 AC 02"
    assert _hex(lambda w, v: w.seq(v, PostcardWriter.varint), [1, 2]) == "02 01 02"
    assert _hex(write_variable, SymbolicVariable(Entry.MAIN, 300, 2, 0)) == "01 02 00 AC 02"


class Reader:
    """Independent postcard reader (from the rules of §2.4) used to parse a whole vk back."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def byte(self):
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self):
        shift = value = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    def signed(self):
        z = self.varint()
        return (z >> 1) ^ -(z & 1)

    def field(self):
        mont = self.varint()
        assert mont < P
        return mont * pow(2, -32, P) % P

    def option(self, read):
        tag = self.byte()
        assert tag in (0, 1)
        return read() if tag else None

    def seq(self, read):
        return [read() for _ in range(self.varint())]

    def variable(self):
        entry = self.varint()
        if entry == 0:
            part, offset = 0, self.varint()
        elif entry == 1:
            part, offset = self.varint(), self.varint()
        else:
            part = offset = 0
        return SymbolicVariable(Entry(entry), self.varint(), part, offset)

    def node(self):
        kind = NodeKind(self.varint())
        if kind == NodeKind.VARIABLE:
            return DagNode(kind, var=self.variable())
        if kind == NodeKind.CONSTANT:
            return DagNode(kind, value=self.field())
        if kind in (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL):
            return DagNode(kind, self.varint(), self.varint(), self.varint())
        if kind == NodeKind.NEG:
            return DagNode(kind, self.varint(), 0, self.varint())
        return DagNode(kind)


def _parse_vk0(data):
    r = Reader(data)
    params = dict(l_skip=r.varint(), n_stack=r.varint(), w_stack=r.varint(), log_blowup=r.varint())
    whir = dict(k=r.varint(), rounds=r.seq(r.varint), mu=r.varint(), query=r.varint(),
                folding=r.varint())
    variant = r.varint()
    whir["proximity"] = (variant, [r.varint() for _ in range({0: 0, 1: 2, 2: 1}[variant])])
    params["whir"] = whir
    params["logup"] = (r.varint(), r.varint(), r.varint())
    params["max_constraint_degree"] = r.varint()

    def air():
        prep = r.option(lambda: ([r.field() for _ in range(8)], r.signed(), r.varint()))
        width = (r.option(r.varint), r.seq(r.varint), r.varint())
        num_pv, need_rot = r.varint(), r.byte()
        nodes = r.seq(r.node)
        constraint_idx = r.seq(r.varint)
        interactions = r.seq(lambda: (tuple(r.seq(r.varint)), r.varint(), r.varint(), r.varint()))
        degree, required = r.byte(), r.byte()
        unused = r.seq(r.variable)
        return dict(prep=prep, width=width, num_pv=num_pv, need_rot=need_rot, nodes=nodes,
                    constraint_idx=constraint_idx, interactions=interactions, degree=degree,
                    required=required, unused=unused)

    per_air = r.seq(air)
    thc = r.seq(lambda: (r.seq(r.varint), r.varint()))
    assert r.pos == len(data), "trailing bytes"
    return params, per_air, thc


def test_vk_postcard_parses_back_field_by_field(params):
    fx = mixture_fixture_standard(3)
    pk, vk = keygen(fx.airs, params)
    p, per_air, thc = _parse_vk0(vk.inner.to_postcard())
    assert p["l_skip"] == params.l_skip and p["n_stack"] == params.n_stack
    assert p["w_stack"] == params.w_stack and p["log_blowup"] == params.log_blowup
    assert p["whir"]["k"] == params.whir.k
    assert p["whir"]["rounds"] == [r.num_queries for r in params.whir.rounds]
    assert (p["whir"]["mu"], p["whir"]["query"], p["whir"]["folding"]) == (
        params.whir.mu_pow_bits, params.whir.query_phase_pow_bits, params.whir.folding_pow_bits)
    assert p["whir"]["proximity"][0] == params.whir.proximity.VARIANT
    lg = params.logup
    assert p["logup"] == (lg.max_interaction_count, lg.log_max_message_length, lg.pow_bits)
    assert p["max_constraint_degree"] == params.max_constraint_degree
    assert len(per_air) == 12
    for got, v in zip(per_air, vk.per_air):
        dag = v.symbolic_constraints
        assert got["nodes"] == dag.nodes
        assert got["constraint_idx"] == dag.constraint_idx
        assert got["interactions"] == [
            (it.message, it.count, it.bus_index, it.count_weight) for it in dag.interactions]
        w = v.params.width
        assert got["width"] == (w.preprocessed, list(w.cached_mains), w.common_main)
        assert got["num_pv"] == v.params.num_public_values
        assert got["need_rot"] == v.params.need_rot
        assert got["degree"] == v.max_constraint_degree and got["required"] == 0
        assert got["unused"] == v.unused_variables
        if v.preprocessed_data is None:
            assert got["prep"] is None
        else:
            d = v.preprocessed_data
            assert got["prep"] == (list(d.commit), d.hypercube_dim, d.stacking_width)
    assert thc == [(list(c.coefficients), c.threshold) for c in vk.trace_height_constraints]


def test_whir_proximity_variants_encode(params):
    for prox, tail in ((UniqueDecoding(), "00"), (SplitUniqueList(3, 2), "01 03 02"),
                       (ListDecoding(5), "02 05")):
        hexbytes = _hex(write_whir_config, replace(params.whir, proximity=prox))
        assert hexbytes.endswith(tail)


def test_pre_hash_covers_versioned_bytes(params):
    pk, vk = keygen([FibonacciAir()], params)
    vk_bytes = vk.inner.to_postcard()
    versioned = bytes([3, 0, 0, 0]) + len(vk_bytes).to_bytes(8, "little") + vk_bytes
    assert CODEC_VERSION == 3
    assert vk.pre_hash == hash_host(list(versioned)) == pk.vk_pre_hash
    assert len(vk.pre_hash) == 8 and all(0 <= x < P for x in vk.pre_hash)
    # deterministic, and sensitive to everything in the key
    assert keygen([FibonacciAir()], params)[1].pre_hash == vk.pre_hash
    other = FibonacciAir()
    other.is_required = True
    assert keygen([other], params)[1].pre_hash != vk.pre_hash
    assert keygen([FibonacciAir(), FibonacciAir()], params)[1].pre_hash != vk.pre_hash


def test_fibonacci_vk_bytes_prefix_by_hand(params):
    """The per-AIR part of FibonacciAir's vk, assembled by hand from §2.1/§2.4."""
    _, vk = keygen([FibonacciAir()], params)
    w = PostcardWriter()
    v = vk.per_air[0]
    write_stark_vk(w, v)
    got = w.bytes()
    expect = bytearray()
    expect += bytes([0x00])                   # no preprocessed data
    expect += bytes([0x00, 0x00, 0x02])       # width: None, [], 2
    expect += bytes([0x03, 0x01])             # 3 public values, need_rot
    expect += bytes([21])                     # 21 nodes
    assert got.startswith(bytes(expect))
    tail = bytearray()
    tail += bytes([5, 4, 8, 12, 16, 20])      # constraint_idx
    tail += bytes([0])                        # no interactions
    tail += bytes([2, 0])                     # degree 2 (u8), not required
    tail += bytes([0])                        # no unused variables
    assert got.endswith(bytes(tail))


# ---------------------------------------------------------------- per-AIR keys (§2.1)
def test_per_air_vk_fields(params):
    airs = [FibonacciAir(), FibonacciSelectorAir(SELS8, True), DummyInteractionAir(1, False, 0),
            SelfInteractionAir(4, 5), PreprocessedCachedAir(SELS8, 2), SumAir(5),
            DummyInteractionAir(2, True, 0, partitioned=True)]
    pk, vk = keygen(airs, params)
    degrees = [v.max_constraint_degree for v in vk.per_air]
    assert degrees == [2, 3, 1, 1, 2, 1, 1]
    assert [v.params.need_rot for v in vk.per_air] == [True, True, False, True, True, False, False]
    assert [v.params.num_public_values for v in vk.per_air] == [3, 3, 0, 0, 0, 0, 0]
    widths = [(v.params.width.preprocessed, v.params.width.cached_mains, v.params.width.common_main)
              for v in vk.per_air]
    assert widths == [(None, (), 2), (1, (), 2), (None, (), 2), (None, (), 4), (1, (1, 1), 1),
                      (None, (5,), 1), (None, (2,), 1)]
    assert [v.num_parts for v in vk.per_air] == [1, 2, 1, 1, 4, 2, 2]
    pc = vk.per_air[4]
    assert [pc.dag_main_part_index_to_commit_index(k) for k in range(3)] == [2, 3, 0]
    assert vk.per_air[1].unused_variables == [SymbolicVariable(Entry.PREPROCESSED, 0, 0, 1)]
    assert pk.max_constraint_degree == params.max_constraint_degree == vk.max_constraint_degree
    assert [p.air_name for p in pk.per_air][:2] == ["FibonacciAir", "FibonacciSelectorAir"]
    assert pk.get_vk().pre_hash == vk.pre_hash


@pytest.mark.parametrize("sels, dim", [(SELS8, 1), ([1, 0, 1, 0], 0), ([1, 1], -1)])
def test_preprocessed_commitment(params, sels, dim):
    air = FibonacciSelectorAir(sels, False)
    pk, vk = keygen([air], params)
    data = vk.per_air[0].preprocessed_data
    expected = stacked_commit(params, [mx.array(np.array(sels, dtype=np.uint32).reshape(-1, 1))])
    assert data.commit == tuple(expected.commit)
    assert data.hypercube_dim == dim
    assert data.stacking_width == expected.width
    assert pk.per_air[0].preprocessed_data.commit == data.commit
    assert np.array(pk.per_air[0].preprocessed_trace).reshape(-1).tolist() == list(sels)


def test_preprocessed_trace_validation(params):
    class BadPrep(FibonacciSelectorAir):
        def preprocessed_trace(self):
            return np.ones((3, 1), dtype=np.uint32)

    with pytest.raises(InvalidInputError, match="power of two"):
        keygen([BadPrep([1, 1, 1, 1])], params)


# ---------------------------------------------------------------- errors (§9.6)
class HighDegreeAir(Air):
    width = 1

    def eval(self, b):
        b.assert_zero(b.local[0].exp_u64(4))


@pytest.mark.parametrize(
    "air, kind",
    [
        (EmptyAir(0), "AirWidthZero"),
        (EmptyAir(1), "AirNoConstraintsOrInteractions"),
        (DummyInteractionAir(0, True, 0), "InteractionMessageEmpty"),
        (HighDegreeAir(), "MaxConstraintDegreeExceeded"),
        (SelfInteractionAir(128, 0), "InteractionMessageTooLong"),  # 128 + 1 > 2^7
    ],
)
def test_keygen_errors(params, air, kind):
    with pytest.raises(KeygenError) as err:
        keygen([FibonacciAir(), air], params)
    assert err.value.kind == kind


def test_self_interaction_at_the_message_length_limit(params):
    keygen([SelfInteractionAir(127, 0)], params)  # 127 + 1 = 2^7


def test_bad_params_rejected():
    with pytest.raises(InvalidInputError):
        keygen([FibonacciAir()], object())


# ---------------------------------------------------------------- trace-height constraints (§2.3)
def test_interaction_trace_height_constraints(params):
    fib = FibonacciSelectorAir(SELS8, True)
    airs = [fib, DummyInteractionAir(1, True, 0, count_weight=3),
            DummyInteractionAir(1, True, 0, count_weight=1),
            DummyInteractionAir(1, True, 1, count_weight=7)]
    _, vk = keygen(airs, params)
    assert vk.trace_height_constraints == [
        LinearConstraint((0, 3, 1, 0), P),
        LinearConstraint((0, 0, 0, 7), P),
        LinearConstraint((1, 1, 1, 1), params.logup.max_interaction_count),
    ]


def test_trace_height_constraints_implied_removal(params):
    airs = [FibonacciSelectorAir(SELS8, True), DummyInteractionAir(1, True, 0),
            DummyInteractionAir(1, True, 1)]
    _, vk = keygen(airs, params)
    assert vk.trace_height_constraints == [
        LinearConstraint((1, 1, 1), params.logup.max_interaction_count)
    ]


def test_no_interactions_gives_the_trivial_global_constraint(params):
    _, vk = keygen([FibonacciAir(), FibonacciAir()], params)
    # (0, 0) < 2^30 is implied by nothing earlier: it is kept
    assert vk.trace_height_constraints == [
        LinearConstraint((0, 0), params.logup.max_interaction_count)
    ]
