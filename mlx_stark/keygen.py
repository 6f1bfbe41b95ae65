"""Keygen: proving and verifying keys for a list of AIRs (constraints.md §2).

Per AIR: commit the preprocessed trace (if any) with the stacked PCS, run ``eval`` through the
symbolic builder, validate, and build the constraint DAG. Over all AIRs: the trace-height
linear constraints and the verifying-key prehash, the hash of the postcard serialisation of
:class:`MultiStarkVerifyingKey0` that the transcript observes first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import mlx.core as mx
import numpy as np

from .air.base import Air
from .air.builder import SymbolicBuilder
from .air.dag import (
    DagInteraction,
    DagNode,
    NodeKind,
    SymbolicConstraintsDag,
    TraceWidth,
    build_dag,
    max_constraint_degree,
)
from .air.expr import Entry, SymbolicVariable
from .errors import InvalidInputError, KeyDecodeError, KeygenError
from .field.bb import P
from .hash.merkle import hash_host
from .params import (
    ListDecoding,
    LogUpSecurityParameters,
    SplitUniqueList,
    SystemParams,
    UniqueDecoding,
    WhirConfig,
    WhirRoundConfig,
)
from .postcard import PostcardReader, PostcardWriter
from .prover.stacked_pcs import StackedPcsData, stacked_commit

CODEC_VERSION = 3
# Verifying-key file: magic, format version, then the prehash input
# LE32(CODEC_VERSION) ‖ LE64(len) ‖ postcard(vk0); the prehash is recomputed when it is read.
VK_MAGIC = b"MLXSTARK-VK\x00"
VK_FORMAT_VERSION = 1


# ---------------------------------------------------------------- key structures
@dataclass(frozen=True)
class PreprocessedVerifierData:
    """Verifier data of a preprocessed trace: its stacked commitment, ``log2(H) − l_skip``
    (may be negative) and the stacked width."""

    commit: Tuple[int, ...]
    hypercube_dim: int
    stacking_width: int


@dataclass(frozen=True)
class StarkVerifyingParams:
    width: TraceWidth
    num_public_values: int
    need_rot: bool


@dataclass
class StarkVerifyingKey:
    """Per-AIR verifying key; field order is the serialisation order (§2.1)."""

    preprocessed_data: Optional[PreprocessedVerifierData]
    params: StarkVerifyingParams
    symbolic_constraints: SymbolicConstraintsDag
    max_constraint_degree: int
    is_required: bool
    unused_variables: List[SymbolicVariable]

    @property
    def num_cached_mains(self) -> int:
        return len(self.params.width.cached_mains)

    @property
    def num_parts(self) -> int:
        """Opened parts: common main, the preprocessed trace if any, the cached mains."""
        return 1 + self.num_cached_mains + (self.preprocessed_data is not None)

    @property
    def num_interactions(self) -> int:
        return len(self.symbolic_constraints.interactions)

    def dag_main_part_index_to_commit_index(self, part: int) -> int:
        """DAG main-part index → proof part index (§1.1)."""
        if part == self.num_cached_mains:
            return 0
        return part + 1 + (self.preprocessed_data is not None)


@dataclass
class StarkProvingKey:
    """Per-AIR proving key: display name, the AIR itself, its verifying key and, with a
    preprocessed trace, that trace ``(H, w)`` uint32 and its stacked-PCS prover data."""

    air_name: str
    air: Air
    vk: StarkVerifyingKey
    preprocessed_trace: Optional[mx.array]
    preprocessed_data: Optional[StackedPcsData]


@dataclass(frozen=True)
class LinearConstraint:
    """``Σ_a 2^max(h_a, l_skip) · coefficients[a] < threshold`` over present AIRs (§2.3)."""

    coefficients: Tuple[int, ...]
    threshold: int

    def is_implied_by(self, other: "LinearConstraint") -> bool:
        return self.threshold >= other.threshold and all(
            a <= b for a, b in zip(self.coefficients, other.coefficients)
        )


@dataclass
class MultiStarkVerifyingKey0:
    params: SystemParams
    per_air: List[StarkVerifyingKey]
    trace_height_constraints: List[LinearConstraint]

    def to_postcard(self) -> bytes:
        """The postcard serialisation that the prehash covers (§2.4)."""
        w = PostcardWriter()
        write_system_params(w, self.params)
        w.seq(self.per_air, write_stark_vk)
        w.seq(self.trace_height_constraints, write_linear_constraint)
        return w.bytes()


@dataclass
class MultiStarkVerifyingKey:
    inner: MultiStarkVerifyingKey0
    pre_hash: Tuple[int, ...]

    def to_bytes(self) -> bytes:
        """The key as a file: :data:`VK_MAGIC`, :data:`VK_FORMAT_VERSION` (LE32), then the
        bytes the prehash covers (:func:`vk_pre_hash`)."""
        return VK_MAGIC + VK_FORMAT_VERSION.to_bytes(4, "little") + _versioned_postcard(self.inner)

    @classmethod
    def from_bytes(cls, data) -> "MultiStarkVerifyingKey":
        """Decode :meth:`to_bytes` strictly; raises :class:`KeyDecodeError` for anything else
        (every byte is checked: the encoding is canonical and the key consistent)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise KeyDecodeError(f"verifying-key bytes expected, got {type(data).__name__}")
        data = bytes(data)
        head = len(VK_MAGIC)
        if data[:head] != VK_MAGIC:
            raise KeyDecodeError("not an mlx-stark verifying key (bad magic)")
        if len(data) < head + 16:
            raise KeyDecodeError("truncated verifying key header")
        version = int.from_bytes(data[head:head + 4], "little")
        codec = int.from_bytes(data[head + 4:head + 8], "little")
        length = int.from_bytes(data[head + 8:head + 16], "little")
        if version != VK_FORMAT_VERSION:
            raise KeyDecodeError(f"verifying-key format version {version}, expected {VK_FORMAT_VERSION}")
        if codec != CODEC_VERSION:
            raise KeyDecodeError(f"verifying-key codec version {codec}, expected {CODEC_VERSION}")
        if length != len(data) - head - 16:
            raise KeyDecodeError(f"verifying-key length field {length}, but {len(data) - head - 16} bytes follow")
        r = PostcardReader(data[head + 16:], KeyDecodeError)
        inner = MultiStarkVerifyingKey0(read_system_params(r), r.seq(read_stark_vk),
                                        r.seq(read_linear_constraint))
        r.finish()
        if not inner.per_air:
            raise KeyDecodeError("a verifying key has at least one AIR")
        if any(len(c.coefficients) != len(inner.per_air) for c in inner.trace_height_constraints):
            raise KeyDecodeError("a trace-height constraint needs one coefficient per AIR")
        # the strict reader accepts one encoding per key: the bytes read are the prehash input
        return cls(inner, hash_host(data[head + 4:]))

    @property
    def params(self) -> SystemParams:
        return self.inner.params

    @property
    def per_air(self) -> List[StarkVerifyingKey]:
        return self.inner.per_air

    @property
    def trace_height_constraints(self) -> List[LinearConstraint]:
        return self.inner.trace_height_constraints

    @property
    def max_constraint_degree(self) -> int:
        """The global degree ``d`` used for every proof shape (``params.max_constraint_degree``)."""
        return self.inner.params.max_constraint_degree


@dataclass
class MultiStarkProvingKey:
    per_air: List[StarkProvingKey]
    trace_height_constraints: List[LinearConstraint]
    max_constraint_degree: int
    params: SystemParams
    vk_pre_hash: Tuple[int, ...]

    def get_vk(self) -> MultiStarkVerifyingKey:
        inner = MultiStarkVerifyingKey0(
            self.params, [pk.vk for pk in self.per_air], list(self.trace_height_constraints)
        )
        return MultiStarkVerifyingKey(inner, self.vk_pre_hash)

    @classmethod
    def from_vk(cls, airs: Sequence[Air], vk: MultiStarkVerifyingKey) -> "MultiStarkProvingKey":
        """The proving key of ``vk`` for ``airs`` without redoing keygen: the DAGs come from
        the key; only preprocessed traces are committed again (and must match the key).
        Raises :class:`InvalidInputError` when an AIR's shape differs from the key's."""
        if len(airs) != len(vk.per_air):
            raise InvalidInputError(f"{len(airs)} AIRs for a verifying key of {len(vk.per_air)}")
        per_air = []
        for a, (air, avk) in enumerate(zip(airs, vk.per_air)):
            width = avk.params.width
            prep_trace, prep_data, prep_vdata = _commit_preprocessed(air, vk.params)
            if (int(air.width) != width.common_main
                    or tuple(int(w) for w in air.cached_widths) != width.cached_mains
                    or int(air.num_public_values) != avk.params.num_public_values
                    or bool(air.is_required) != avk.is_required
                    or prep_vdata != avk.preprocessed_data):
                raise InvalidInputError(f"AIR {a} ({air.name}) does not match the verifying key")
            per_air.append(StarkProvingKey(air.name, air, avk, prep_trace, prep_data))
        return cls(per_air, list(vk.trace_height_constraints), vk.params.max_constraint_degree,
                   vk.params, vk.pre_hash)


# ---------------------------------------------------------------- keygen
def keygen(airs: Sequence[Air], params: SystemParams) -> Tuple[MultiStarkProvingKey, MultiStarkVerifyingKey]:
    """Proving and verifying keys for ``airs`` (AIR id = position). Raises
    :class:`~mlx_stark.errors.KeygenError` (``kind`` = the reference's error variant) for an
    AIR that cannot be keyed, :class:`InvalidInputError` for bad parameters or preprocessed
    traces."""
    if not isinstance(params, SystemParams):
        raise InvalidInputError(f"params must be a SystemParams, got {type(params).__name__}")
    if not airs:
        raise InvalidInputError("keygen needs at least one AIR")
    per_air = [_air_keygen(air, params) for air in airs]
    trace_height_constraints = _trace_height_constraints(per_air, params.logup)
    inner = MultiStarkVerifyingKey0(params, [pk.vk for pk in per_air], trace_height_constraints)
    pre_hash = vk_pre_hash(inner)
    pk = MultiStarkProvingKey(
        per_air=per_air,
        trace_height_constraints=trace_height_constraints,
        max_constraint_degree=params.max_constraint_degree,
        params=params,
        vk_pre_hash=pre_hash,
    )
    return pk, pk.get_vk()


def _versioned_postcard(inner: MultiStarkVerifyingKey0) -> bytes:
    """``LE32(CODEC_VERSION) ‖ LE64(len) ‖ postcard(vk0)``."""
    vk_bytes = inner.to_postcard()
    return CODEC_VERSION.to_bytes(4, "little") + len(vk_bytes).to_bytes(8, "little") + vk_bytes


def vk_pre_hash(inner: MultiStarkVerifyingKey0) -> Tuple[int, ...]:
    """``hash(LE32(CODEC_VERSION) ‖ LE64(len) ‖ postcard(vk0))``, one F element per byte."""
    return hash_host(_versioned_postcard(inner))


def _air_keygen(air: Air, params: SystemParams) -> StarkProvingKey:
    name = air.name
    prep_trace, prep_data, prep_vdata = _commit_preprocessed(air, params)
    width = TraceWidth(
        preprocessed=None if prep_trace is None else int(prep_trace.shape[1]),
        cached_mains=tuple(int(w) for w in air.cached_widths),
        common_main=int(air.width),
    )
    if width.main_width == 0:
        raise KeygenError("AirWidthZero", f"AIR {name} has main width 0")
    if width.common_main == 0:
        # such a trace has no height to read: the protocol cannot prove it (constraints.md §10)
        raise KeygenError("CommonMainWidthZero", f"AIR {name} has no common main columns")
    b = SymbolicBuilder(
        common_width=width.common_main,
        cached_widths=width.cached_mains,
        preprocessed_width=width.preprocessed,
        num_public_values=int(air.num_public_values),
    )
    air.eval(b)
    if not b.constraints and not b.interactions:
        raise KeygenError(
            "AirNoConstraintsOrInteractions", f"AIR {name} has no constraints and no interactions"
        )
    for i, it in enumerate(b.interactions):
        if not it.message:
            raise KeygenError(
                "InteractionMessageEmpty", f"AIR {name}: interaction {i} has an empty message"
            )
    degree = max_constraint_degree(b.constraints, b.interactions)
    if degree > params.max_constraint_degree:
        raise KeygenError(
            "MaxConstraintDegreeExceeded",
            f"AIR {name}: constraint degree {degree} > {params.max_constraint_degree}",
        )
    if degree > 255:
        raise KeygenError("MaxConstraintDegreeExceeded", f"AIR {name}: degree {degree} exceeds u8")
    dag = build_dag(b.constraints, b.interactions)
    need_rot = dag.need_rot
    vk = StarkVerifyingKey(
        preprocessed_data=prep_vdata,
        params=StarkVerifyingParams(width, int(air.num_public_values), need_rot),
        symbolic_constraints=dag,
        max_constraint_degree=degree,
        is_required=bool(air.is_required),
        unused_variables=dag.unused_variables(width),
    )
    return StarkProvingKey(name, air, vk, prep_trace, prep_data)


def _commit_preprocessed(air: Air, params: SystemParams):
    """Validate and commit ``air.preprocessed_trace()`` alone (§2.1 step 1)."""
    trace = air.preprocessed_trace()
    if trace is None:
        return None, None, None
    arr = np.asarray(trace)
    name = air.name
    if arr.ndim != 2 or arr.dtype.kind not in "ui":
        raise InvalidInputError(f"AIR {name}: preprocessed trace must be an integer (height, width) matrix")
    height = arr.shape[0]
    if height < 1 or height & (height - 1):
        raise InvalidInputError(f"AIR {name}: preprocessed trace height {height} is not a power of two")
    if arr.size and (arr.min() < 0 or arr.max() >= P):
        raise InvalidInputError(f"AIR {name}: preprocessed trace entries must be in [0, p)")
    matrix = mx.array(arr.astype(np.uint32))
    data = stacked_commit(params, [matrix])
    vdata = PreprocessedVerifierData(
        commit=tuple(int(x) for x in data.commit),
        hypercube_dim=(height.bit_length() - 1) - params.l_skip,
        stacking_width=int(data.width),
    )
    return matrix, data, vdata


def _trace_height_constraints(
    per_air: Sequence[StarkProvingKey], logup: LogUpSecurityParameters
) -> List[LinearConstraint]:
    """Per-bus count-weight constraints, the global interaction-count constraint, minimised
    (§2.2 step 1, §2.3)."""
    num_airs = len(per_air)
    max_len = 1 << logup.log_max_message_length
    per_bus = {}
    num_interactions = []
    for a, pk in enumerate(per_air):
        interactions = pk.vk.symbolic_constraints.interactions
        num_interactions.append(len(interactions))
        for i, it in enumerate(interactions):
            if len(it.message) + 1 > max_len:
                raise KeygenError(
                    "InteractionMessageTooLong",
                    f"AIR {pk.air_name}: interaction {i} has {len(it.message)} fields plus the bus, "
                    f"more than 2^{logup.log_max_message_length} = {max_len}",
                )
            coeffs = per_bus.setdefault(it.bus_index, [0] * num_airs)
            coeffs[a] += it.count_weight
    candidates = [LinearConstraint(tuple(per_bus[bus]), P) for bus in sorted(per_bus)]
    candidates.append(LinearConstraint(tuple(num_interactions), logup.max_interaction_count))
    kept: List[LinearConstraint] = []
    for c in candidates:
        if any(c.is_implied_by(k) for k in kept):
            continue
        kept = [k for k in kept if not k.is_implied_by(c)]
        kept.append(c)
    return kept


# ---------------------------------------------------------------- postcard encoding (§2.4)
def write_system_params(w: PostcardWriter, p: SystemParams) -> None:
    w.varint(p.l_skip).varint(p.n_stack).varint(p.w_stack).varint(p.log_blowup)
    write_whir_config(w, p.whir)
    w.varint(p.logup.max_interaction_count).varint(p.logup.log_max_message_length)
    w.varint(p.logup.pow_bits)
    w.varint(p.max_constraint_degree)


def write_whir_config(w: PostcardWriter, c: WhirConfig) -> None:
    w.varint(c.k)
    w.seq(c.rounds, lambda w, r: w.varint(r.num_queries))
    w.varint(c.mu_pow_bits).varint(c.query_phase_pow_bits).varint(c.folding_pow_bits)
    prox = c.proximity
    w.variant(prox.VARIANT)
    if prox.VARIANT == 1:
        w.varint(prox.m).varint(prox.list_start_round)
    elif prox.VARIANT == 2:
        w.varint(prox.m)


def write_variable(w: PostcardWriter, v: SymbolicVariable) -> None:
    w.variant(int(v.entry))
    if v.entry == Entry.PREPROCESSED:
        w.varint(v.offset)
    elif v.entry == Entry.MAIN:
        w.varint(v.part_index).varint(v.offset)
    w.varint(v.index)


def write_node(w: PostcardWriter, n: DagNode) -> None:
    w.variant(int(n.kind))
    if n.kind == NodeKind.VARIABLE:
        write_variable(w, n.var)
    elif n.kind == NodeKind.CONSTANT:
        w.field(n.value)
    elif n.kind in (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL):
        w.varint(n.left).varint(n.right).varint(n.degree_multiple)
    elif n.kind == NodeKind.NEG:
        w.varint(n.left).varint(n.degree_multiple)


def write_dag(w: PostcardWriter, dag: SymbolicConstraintsDag) -> None:
    w.seq(dag.nodes, write_node)
    w.seq(dag.constraint_idx, PostcardWriter.varint)

    def interaction(w: PostcardWriter, it) -> None:
        w.seq(it.message, PostcardWriter.varint)
        w.varint(it.count).varint(it.bus_index).varint(it.count_weight)

    w.seq(dag.interactions, interaction)


def write_stark_vk(w: PostcardWriter, vk: StarkVerifyingKey) -> None:
    def prep(w: PostcardWriter, d: PreprocessedVerifierData) -> None:
        for x in d.commit:
            w.field(x)
        w.signed(d.hypercube_dim).varint(d.stacking_width)

    w.option(vk.preprocessed_data, prep)
    width = vk.params.width
    w.option(width.preprocessed, PostcardWriter.varint)
    w.seq(width.cached_mains, PostcardWriter.varint)
    w.varint(width.common_main)
    w.varint(vk.params.num_public_values).bool(vk.params.need_rot)
    write_dag(w, vk.symbolic_constraints)
    w.u8(vk.max_constraint_degree)
    w.bool(vk.is_required)
    w.seq(vk.unused_variables, write_variable)


def write_linear_constraint(w: PostcardWriter, c: LinearConstraint) -> None:
    w.seq(c.coefficients, PostcardWriter.varint)
    w.varint(c.threshold)


# ---------------------------------------------------------------- postcard decoding (key files)
def _key_data(make, *args, **kwargs):
    """``make(...)``, with the parameter classes' own validation reported as a decode error."""
    try:
        return make(*args, **kwargs)
    except InvalidInputError as e:
        raise KeyDecodeError(f"invalid verifying key: {e}") from None


def read_system_params(r: PostcardReader) -> SystemParams:
    l_skip, n_stack, w_stack, log_blowup = (r.varint() for _ in range(4))
    whir = read_whir_config(r)
    logup = LogUpSecurityParameters(r.varint(), r.varint(), r.varint())
    return _key_data(SystemParams, l_skip, n_stack, w_stack, log_blowup, whir, logup, r.varint())


def read_whir_config(r: PostcardReader) -> WhirConfig:
    k = r.varint()
    rounds = r.seq(lambda r: WhirRoundConfig(r.varint()))
    mu, query, folding = r.varint(), r.varint(), r.varint()
    variant = r.variant(3)
    if variant == SplitUniqueList.VARIANT:
        prox = SplitUniqueList(r.varint(), r.varint())
    elif variant == ListDecoding.VARIANT:
        prox = ListDecoding(r.varint())
    else:
        prox = UniqueDecoding()
    return _key_data(WhirConfig, k, rounds, mu, query, folding, prox)


def read_variable(r: PostcardReader) -> SymbolicVariable:
    entry = Entry(r.variant(len(Entry)))
    offset = part = 0
    if entry == Entry.PREPROCESSED:
        offset = r.varint(2)
    elif entry == Entry.MAIN:
        part, offset = r.varint(), r.varint(2)
    return SymbolicVariable(entry, r.varint(), part, offset)


_NODE_KINDS = tuple(NodeKind)


def read_dag(r: PostcardReader) -> SymbolicConstraintsDag:
    nodes: List[DagNode] = []

    def operand(r: PostcardReader) -> int:
        return r.varint(len(nodes))  # children come before their parents

    def node(r: PostcardReader) -> DagNode:
        kind = _NODE_KINDS[r.variant(len(_NODE_KINDS))]
        if kind == NodeKind.VARIABLE:
            n = DagNode(kind, var=read_variable(r))
        elif kind == NodeKind.CONSTANT:
            n = DagNode(kind, value=r.field())
        elif kind == NodeKind.NEG:
            n = DagNode(kind, left=operand(r), degree_multiple=r.varint())
        elif kind in (NodeKind.ADD, NodeKind.SUB, NodeKind.MUL):
            n = DagNode(kind, operand(r), operand(r), r.varint())
        else:
            n = DagNode(kind)
        nodes.append(n)
        return n

    r.seq(node)

    def index(r: PostcardReader) -> int:
        return r.varint(len(nodes))

    constraint_idx = r.seq(index)
    if any(a >= b for a, b in zip(constraint_idx, constraint_idx[1:])):
        r.fail("constraint indices must be strictly increasing")
    interactions = r.seq(lambda r: DagInteraction(
        tuple(r.seq(index)), index(r), r.varint(1 << 16), r.varint(1 << 32)))
    return SymbolicConstraintsDag(nodes, constraint_idx, interactions)


def read_stark_vk(r: PostcardReader) -> StarkVerifyingKey:
    def prep(r: PostcardReader) -> PreprocessedVerifierData:
        commit = tuple(r.field() for _ in range(8))
        return PreprocessedVerifierData(commit, r.signed(), r.varint())

    preprocessed_data = r.option(prep)
    width = TraceWidth(r.option(PostcardReader.varint), tuple(r.seq(PostcardReader.varint)),
                       r.varint())
    num_public_values, need_rot = r.varint(), r.bool()
    dag = read_dag(r)
    vk = StarkVerifyingKey(preprocessed_data, StarkVerifyingParams(width, num_public_values, need_rot),
                           dag, r.u8(), r.bool(), r.seq(read_variable))
    if (preprocessed_data is None) != (width.preprocessed is None):
        r.fail("a preprocessed commitment needs a preprocessed width and vice versa")
    if width.common_main == 0:
        r.fail("an AIR without common main columns cannot be keyed")
    used = _check_variables(r, dag, width, num_public_values)
    # the unused list is counted before it is recomputed: the widths' product stays bounded
    # by the input size (every variable is either read by a node or listed)
    expected = (width.main_width + (width.preprocessed or 0)) * (2 if need_rot else 1) - used
    if (need_rot != dag.need_rot or len(vk.unused_variables) != expected
            or vk.unused_variables != dag.unused_variables(width)):
        r.fail("rotation flag or unused variables do not match the constraint DAG")
    return vk


def _check_variables(r: PostcardReader, dag: SymbolicConstraintsDag, width: TraceWidth,
                     num_public_values: int) -> int:
    """Every variable of ``dag`` lies within the key's widths; returns how many distinct trace
    variables the DAG reads."""
    mains = width.main_widths
    trace_vars = 0
    for var in dag.variables():
        if var.entry == Entry.MAIN:
            ok = var.part_index < len(mains) and var.index < mains[var.part_index]
        elif var.entry == Entry.PREPROCESSED:
            ok = var.index < (width.preprocessed or 0)
        elif var.entry == Entry.PUBLIC:
            ok = var.index < num_public_values
        else:
            ok = False  # challenge variables: no AIR of this protocol reads them
        if not ok:
            r.fail(f"DAG variable {var!r} lies outside the key's widths")
        trace_vars += var.entry in (Entry.MAIN, Entry.PREPROCESSED)
    return trace_vars


def read_linear_constraint(r: PostcardReader) -> LinearConstraint:
    return LinearConstraint(tuple(r.seq(PostcardReader.varint)), r.varint())
