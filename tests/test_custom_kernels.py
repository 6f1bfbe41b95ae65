"""Custom kernels (mlx_stark.custom_kernels): registry, generated sources of both dialects,
bit-equality with the MLX-ops references.

Three levels, so that every kernel is checked wherever the suite runs:

- sources: every kernel renders in both dialects (CUDA and Metal) with the same structure;
- emulation (needs g++): each rendered source is compiled as C++ with the dialect's keywords
  stubbed (one OS thread per GPU thread, a real barrier per block; tests/kernel_helpers.py) and
  run through the same Python wrappers as on the device, then compared with the ops reference —
  this runs the Metal twins too, which no machine here can execute natively;
- device: on a CUDA or Metal GPU, the public stage functions with native kernels against the
  same functions on the ops reference on the CPU, on awkward sizes.

The structure of every fixed kernel source, of every family, is checked here; the families'
behaviour in tests/test_kernels_*.py, and the generated constraint kernels (one per AIR) in
tests/test_constraint_kernels.py.
"""
import json
from importlib import resources

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import indexing as kindexing
from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.custom_kernels import sizing
from mlx_stark.errors import ConfigError
from mlx_stark.field import bb
from mlx_stark.hash import MerkleTree, compress, hash_rows, permute, permute_host
from mlx_stark.hash.poseidon2 import Poseidon2Constants, find_pow_witness
from mlx_stark.poly import ntt as pntt
from mlx_stark.prover import stacked_pcs

from .kernel_helpers import arrays_equal, check_twins, emulation, needs_native

KAT = json.loads(resources.files("mlx_stark").joinpath("data/poseidon2_babybear_w16_kat.json").read_text())
RNG_CONSTANTS = Poseidon2Constants.from_dict(KAT["rng_instance"])


def _all_sources() -> list:
    """The package's fixed kernels and the test-only variants (the KAT instance's constants)."""
    return (custom_kernels.fixed_sources()
            + [kp2.permute_source(RNG_CONSTANTS), kp2.duplex_source(RNG_CONSTANTS)])


# ---------------------------------------------------------------- registry
def test_registry_uses_ops_on_cpu(monkeypatch):
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        for op in custom_kernels.OPERATIONS:
            assert custom_kernels.native(op) is None
        monkeypatch.setenv("MLX_STARK_KERNELS", "native")
        with pytest.raises(ConfigError):
            custom_kernels.native("merkle.hash_rows")
    finally:
        mx.set_default_device(prev)
    with pytest.raises(KeyError):
        custom_kernels.native("no.such.kernel")


def test_registry_respects_ops_override(monkeypatch):
    monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
    assert all(custom_kernels.native(op) is None for op in custom_kernels.OPERATIONS)


# ---------------------------------------------------------------- launch sizing
def test_sizing():
    t = sizing.THREADS
    assert sizing.grid_x(1) == t and sizing.grid_x(t) == t and sizing.grid_x(t + 1) == 2 * t
    assert sizing.grid_x(5, 4) == 8
    assert sizing.plan_blocks(1) == 1 and sizing.plan_blocks(t) == 1 and sizing.plan_blocks(t + 1) == 2
    most = sizing.TARGET_THREADS // t
    assert sizing.plan_blocks(1 << 18) == most and sizing.plan_blocks(42 << 16) == most
    assert sizing.plan_parts(1 << 21, 64) == 1 and sizing.plan_parts(0, 64) == 64
    assert sizing.plan_parts(1 << 16, 64) == 4 and sizing.plan_parts(1, 0) == 1


# ---------------------------------------------------------------- sources of both dialects
def test_every_kernel_renders_in_both_dialects():
    sources = _all_sources()
    for src in sources:
        check_twins(src)
    assert len({src.mangled() for src in sources}) == len(sources)  # distinct sources never share a cached name


def test_sources_depend_on_constants():
    assert kp2.permute_source().mangled() != kp2.permute_source(RNG_CONSTANTS).mangled()
    assert kp2.hash_rows_source(8).mangled() != kp2.hash_rows_source(9).mangled()


def test_pass_plan():
    for log_n in range(0, 28):
        plan = kntt.pass_plan(log_n)
        assert sum(plan) == log_n and all(1 <= s <= kntt.MAX_LOG_RADIX for s in plan)
        assert len(plan) == -(-log_n // kntt.MAX_LOG_RADIX)
    assert kntt.pass_plan(22) == [8, 7, 7]


# ---------------------------------------------------------------- CPU emulation of the sources
emulated = emulation(kp2, kntt, kindexing)


def test_emulated_poseidon2(emulated):
    states = bb.random((300, 16), 1)
    assert arrays_equal(kp2.permute(states), permute(states))
    vec = KAT["vectors_rng_instance"][0]
    got = kp2.permute(mx.array(np.array([vec["input"]], dtype=np.uint32)), RNG_CONSTANTS)
    assert np.array(got)[0].tolist() == vec["output"]
    for w in (1, 7, 8, 13, 42):
        m = bb.random((77, w), w)
        assert arrays_equal(kp2.hash_rows(m), hash_rows(m)), w
    left, right = bb.random((65, 8), 2), bb.random((65, 8), 3)
    assert arrays_equal(kp2.compress(left, right), compress(left, right))


@pytest.mark.parametrize("log_n, k, w", [(11, 1, 3), (12, 0, 2), (5, 0, 2), (3, 3, 9), (0, 0, 4),
                                          (9, 4, 4), (10, 9, 2), (6, 2, 0)])
@pytest.mark.parametrize("fused", [True, False])
def test_emulated_merkle_blocks_and_openings(emulated, monkeypatch, log_n, k, w, fused):
    if not fused:  # row hashes and a strided layer per launch, as for large matrices
        monkeypatch.setattr(kp2, "FUSED_GROUP_ROWS", 0)
    m = bb.random((1 << log_n, w), log_n)
    ref = MerkleTree.commit(m, k)
    tree = MerkleTree(m, k, kp2.merkle_blocks(m, k))
    assert len(tree.layers) == len(ref.layers) and all(arrays_equal(a, b) for a, b in zip(tree.layers, ref.layers))
    assert arrays_equal(tree.root_array, ref.root_array) and tree.depth == ref.depth
    if tree.depth:  # levels from up to three arrays (2^10 and 2^12 groups: 9 levels per launch)
        qs = 1 << (log_n - k)
        idx = mx.array([0, qs - 1, qs // 3, 1, qs - 1], dtype=mx.uint32)
        rows, paths = kindexing.merkle_open(m, [a for a, _ in tree.blocks], tree.levels[:-1], k, idx)
        rows_ref, paths_ref = ref.open_device(idx)
        assert arrays_equal(rows, rows_ref) and arrays_equal(paths, paths_ref)


def test_emulated_pow(emulated, monkeypatch):
    # several batches before a hit: the first 2^bits clamped to [256, 512], one block looping
    # over a batch's candidates
    monkeypatch.setattr(kp2, "POW_MARGIN_BITS", 0)
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 256)
    monkeypatch.setattr(kp2, "POW_MAX_BATCH", 512)
    monkeypatch.setattr(kp2, "POW_BLOCKS", 1)
    state = list(range(16))
    for absorb, bits in ((0, 0), (7, 6), (3, 11)):
        assert kp2.find_pow_witness(state, absorb, bits) == find_pow_witness(state, absorb, bits)
    # one launch over an offset range longer than its grid (512 threads: two candidates for
    # some), not a multiple of the block
    start, count, bits, stride = 1000, 700, 4, 512
    best = kp2.launch(kp2.pow_source(), [kp2._params(*state), kp2._params(start, count, (1 << bits) - 1, 5, stride)],
                      (stride, 1), kp2.THREADS, [(2,)])[0]
    hits = [w for w in range(start, start + count)
            if permute_host(state[:5] + [w] + state[6:])[7] % (1 << bits) == 0]
    expect = [min((w for w in hits if ((w - start) % stride) // 256 == b), default=0xFFFFFFFF)
              for b in range(2)]
    assert np.array(best).tolist() == expect


@pytest.mark.parametrize("absorb", [0, 7])
@pytest.mark.parametrize("one_block", [True, False])
def test_emulated_grind_absorbs_the_smallest_witness(emulated, monkeypatch, absorb, one_block):
    """The device transcript's search: the smallest witness of the batch (searched in the
    absorbing block, or over every search block's minimum), absorbed into the sponge as the
    host transcript observes it."""
    monkeypatch.setattr(kp2, "POW_MIN_BATCH", 600)  # more nonces than threads: some loop
    monkeypatch.setattr(kp2, "POW_BLOCKS", 2)
    if not one_block:
        monkeypatch.setattr(kp2, "POW_ONE_BLOCK", 0)
    state = bb.random((16,), absorb).tolist()
    bits = 7
    witness = find_pow_witness(state, absorb, bits)
    for last in (False, True):
        sponge, got = kp2.grind(mx.array(state, dtype=mx.uint32), absorb, bits, last)
        host = state[:absorb] + [witness] + state[absorb + 1:]
        if absorb + 1 == 8:  # a filled rate block
            host = permute_host(host)
        if last:
            host = permute_host(host)
        assert np.array(got).tolist() == [witness]
        assert np.array(sponge).tolist() == host + host[7::-1] + [witness], last
        # the duplex reads the first 16 words of a grind's 25
        again = kp2.duplex(sponge, mx.array([1, 2], dtype=mx.uint32), 0, True)
        assert np.array(again).tolist()[:16] == permute_host([1, 2] + host[2:])


def test_emulated_ntt(emulated, monkeypatch):
    monkeypatch.setattr(kntt, "WAIT_BEFORE_LAST_PASS_BYTES", 1 << 12)  # the wait on larger cases
    for log_n, cols in [(log_n, 2) for log_n in range(kntt.MAX_LOG_RADIX + 1)] + [(13, 3)]:  # every radix
        x = bb.random((1 << log_n, cols), log_n)
        for inverse in (False, True):
            got = kntt.transform(x.reshape(1, 1 << log_n, cols), log_n, inverse)
            assert arrays_equal(got.reshape(x.shape), pntt._transform(x, 0, inverse)), (log_n, inverse)
    x = bb.random((3, 1 << 5, 4), 9)
    assert arrays_equal(kntt.transform(x, 5, False), pntt.dft(x, axis=1))
    coeffs = bb.random((1 << 8, 3), 10)
    assert arrays_equal(kntt.transform(coeffs.reshape(1, 1 << 8, 3), 10, False).reshape(1 << 10, 3), pntt.lde(coeffs, 2))
    with monkeypatch.context() as m:  # dft of a given size: the transform reads the padding
        m.setattr(custom_kernels, "native", lambda op: kntt.transform if op == "ntt.transform" else None)
        native = pntt.dft(coeffs, size=1 << 10)
    assert arrays_equal(native, pntt.dft(coeffs, size=1 << 10))
    for l in (0, 1, 2, 4):
        q = bb.random((1 << 7, 5), l)
        assert arrays_equal(kntt.rs_messages(q, l), stacked_pcs.rs_messages(q, l)), l


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
def test_device_poseidon2(reference):
    for n in (1, 255, (1 << 16) + 3):
        states = bb.random((n, 16), n)
        assert arrays_equal(permute(states), reference(lambda: permute(states)))
    for vec in KAT["vectors_default_constants"]:
        assert np.array(permute(mx.array(np.array([vec["input"]], dtype=np.uint32))))[0].tolist() == vec["output"]
    vec = KAT["vectors_rng_instance"][0]
    got = permute(mx.array(np.array([vec["input"]], dtype=np.uint32)), RNG_CONSTANTS)
    assert np.array(got)[0].tolist() == vec["output"]
    for w in (1, 7, 8, 9, 42, 100):
        m = bb.random((10007, w), w)
        assert arrays_equal(hash_rows(m), reference(lambda: hash_rows(m))), w
    left, right = bb.random((5001, 8), 2), bb.random((5001, 8), 3)
    assert arrays_equal(compress(left, right), reference(lambda: compress(left, right)))


@needs_native
@pytest.mark.parametrize("log_n, k, w", [(14, 4, 42), (12, 0, 5), (3, 3, 3), (0, 0, 2), (19, 1, 1)])
def test_device_merkle(reference, log_n, k, w):
    m = bb.random((1 << log_n, w), log_n + w)
    tree = MerkleTree.commit(m, k)
    ref = reference(lambda: MerkleTree.commit(m, k))
    assert tree.root == ref.root and len(tree.layers) == len(ref.layers)
    assert all(arrays_equal(a, b) for a, b in zip(tree.layers, ref.layers))
    rows, paths = tree.open_many([0, (1 << (log_n - k)) - 1])
    rows_ref, paths_ref = ref.open_many([0, (1 << (log_n - k)) - 1])
    assert np.array_equal(rows, rows_ref) and np.array_equal(paths, paths_ref)


@needs_native
def test_device_pow(reference):
    for state, absorb, bits in ((list(range(16)), 0, 1), ([5] * 16, 7, 12), (list(range(100, 116)), 3, 18)):
        assert find_pow_witness(state, absorb, bits) == reference(lambda: find_pow_witness(state, absorb, bits))


@needs_native
def test_device_ntt(reference):
    for log_n in list(range(0, 13)) + [17, 21]:
        cols = 3 if log_n < 17 else 2
        x = bb.random((1 << log_n, cols), log_n)
        assert arrays_equal(pntt.dft(x), reference(lambda: pntt.dft(x))), log_n
        assert arrays_equal(pntt.idft(x), reference(lambda: pntt.idft(x))), log_n
    ext_x = bb.random((1 << 10, 7, 4), 5)
    assert arrays_equal(pntt.dft(ext_x), reference(lambda: pntt.dft(ext_x)))
    x = bb.random((3, 1 << 9, 5), 9)
    assert arrays_equal(pntt.dft(x, axis=1), reference(lambda: pntt.dft(x, axis=1)))
    for beta in (1, 2, 3):
        coeffs = bb.random((1 << 12, 5), beta)
        assert arrays_equal(pntt.lde(coeffs, beta), reference(lambda: pntt.lde(coeffs, beta))), beta


@needs_native
@pytest.mark.parametrize("log_h, width, l_skip, beta", [(12, 42, 4, 1), (8, 3, 2, 2), (5, 1, 0, 1), (10, 9, 3, 3)])
def test_device_rs_code_matrix(reference, log_h, width, l_skip, beta):
    q = bb.random((1 << log_h, width), log_h)
    msgs, codewords = stacked_pcs.rs_messages(q, l_skip), stacked_pcs.rs_code_matrix(q, l_skip, beta)
    msgs_ref = reference(lambda: stacked_pcs.rs_messages(q, l_skip))
    codewords_ref = reference(lambda: stacked_pcs.rs_code_matrix(q, l_skip, beta))
    assert arrays_equal(msgs, msgs_ref) and arrays_equal(codewords, codewords_ref)


def test_settled_reads_the_settings_once(monkeypatch):
    """Inside ``device.settled()`` (a proof) the kernel and fusion settings are those at its
    start; after it, the environment is read again, and a bad setting is refused on entry."""
    from mlx_stark import device
    monkeypatch.setattr(device, "backend", lambda: "cuda")
    monkeypatch.delenv("MLX_STARK_KERNELS", raising=False)
    monkeypatch.setenv("MLX_STARK_FUSE", "0")
    with device.settled():
        monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
        monkeypatch.setenv("MLX_STARK_FUSE", "1")
        assert device.native_kernels_active() and not device.fusing()
        with device.settled():  # nested: settled anew, the outer value comes back after
            assert not device.native_kernels_active() and device.fusing()
        assert device.native_kernels_active() and not device.fusing()
    assert not device.native_kernels_active() and device.fusing()
    monkeypatch.setenv("MLX_STARK_KERNELS", "bogus")
    with pytest.raises(ConfigError, match="MLX_STARK_KERNELS"):
        with device.settled():
            pass


def test_fused_skips_mlx_compile_on_cuda_native(monkeypatch):
    """``device.fused``: compiled (traced once per shape) on CPU and Metal, and on CUDA with
    native kernels unless ``MLX_STARK_FUSE`` is the other setting than ``FUSE_DEFAULT``; with
    ``MLX_STARK_FUSE=0`` the registered native kernel runs, and plain MLX ops where it declines
    the arguments (returns None)."""
    from mlx_stark import custom_kernels, device
    traced, kernel_calls = [], []

    def plus_one(a):
        traced.append(a.shape)
        return a + 1

    def kernel(a):
        kernel_calls.append(a.shape)
        return None if a.size > 2 else a + 1

    f = device.fused(plus_one)
    g = device.fused(native="bb.add")(plus_one)
    x = mx.array([1, 2], dtype=mx.uint32)
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        for _ in range(3):
            assert f(x).tolist() == [2, 3]
        traces = len(traced)  # MLX traces a compiled function on its first calls only
        assert f(x).tolist() == [2, 3] and len(traced) == traces
        monkeypatch.setattr(device, "backend", lambda: "cuda")
        monkeypatch.setattr(device, "native_kernels_active", lambda: True)
        monkeypatch.setattr(custom_kernels, "resolve", lambda op: kernel if op == "bb.add" else None)
        monkeypatch.delenv("MLX_STARK_FUSE", raising=False)
        assert device.fusing() == (device.FUSE_DEFAULT == "1")
        monkeypatch.setenv("MLX_STARK_FUSE", "1")
        assert f(x).tolist() == [2, 3] and len(traced) == traces  # fused
        monkeypatch.setenv("MLX_STARK_FUSE", "0")
        for _ in range(2):
            assert f(x).tolist() == [2, 3]
        assert len(traced) == traces + 2  # plain ops
        assert g(x).tolist() == [2, 3] and kernel_calls == [(2,)] and len(traced) == traces + 2
        y = mx.array([1, 2, 3], dtype=mx.uint32)
        assert g(y).tolist() == [2, 3, 4] and len(traced) == traces + 3  # declined: plain ops
        monkeypatch.setenv("MLX_STARK_FUSE", "yes")
        with pytest.raises(ConfigError, match="MLX_STARK_FUSE"):
            f(x)
        monkeypatch.undo()  # the CPU again: the bad value is still refused up front
        monkeypatch.setenv("MLX_STARK_FUSE", "yes")
        with pytest.raises(ConfigError, match="MLX_STARK_FUSE must be 0 or 1"):
            device.check_env()
        assert "MLX_STARK_FUSE" in device.info()["config_error"]
    finally:
        mx.set_default_device(prev)
