"""Custom kernels (mlx_stark.custom_kernels): registry, generated sources of both dialects,
bit-equality with the MLX-ops references.

Three levels, so that every kernel is checked wherever the suite runs:

- sources: every kernel renders in both dialects (CUDA and Metal) with the same structure;
- emulation (needs g++): each rendered source is compiled as C++ with the dialect's keywords
  stubbed (one OS thread per GPU thread, a real barrier per block) and run through the same
  Python wrappers as on the device, then compared with the ops reference — this runs the
  Metal twins too, which no machine here can execute natively;
- device: on a CUDA or Metal GPU, the public stage functions with native kernels against the
  same functions with ``MLX_STARK_KERNELS=ops`` on awkward sizes.
"""
import ctypes
import hashlib
import json
import re
import shutil
import subprocess
from importlib import resources

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels, device
from mlx_stark.custom_kernels import DIALECTS, KernelSource, render
from mlx_stark.custom_kernels import gkr as kgkr
from mlx_stark.custom_kernels import linear as klin
from mlx_stark.custom_kernels import ntt as kntt
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.custom_kernels import sumcheck as ksc
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.hash import MerkleTree, compress, hash_rows, permute, permute_host
from mlx_stark.hash.poseidon2 import Poseidon2Constants, find_pow_witness
from mlx_stark.poly import ntt as pntt
from mlx_stark.prover import stacked_pcs

KAT = json.loads(resources.files("mlx_stark").joinpath("data/poseidon2_babybear_w16_kat.json").read_text())
RNG_CONSTANTS = Poseidon2Constants.from_dict(KAT["rng_instance"])


def _eq(a, b) -> bool:
    return np.array_equal(np.array(a), np.array(b))


def _all_sources() -> list:
    return ([kp2.permute_source(), kp2.permute_source(RNG_CONSTANTS), kp2.hash_rows_source(1),
             kp2.hash_rows_source(8), kp2.hash_rows_source(42), kp2.compress_source(),
             kp2.compress_layer_source(), kp2.tree_levels_source(), kp2.pow_source()]
            + [kntt.stockham_source(s) for s in range(1, kntt.MAX_LOG_RADIX + 1)]
            + [kntt.rs_messages_source(l) for l in range(0, 5)]
            + [kp2.absorb_source(), kntt.coset_lde_source(16), klin.weighted_sum_source(4),
               klin.weighted_sum_source(8), kgkr.round_sums_source(), kgkr.fold_round_sums_source(),
               kgkr.sum_parts_source(), kgkr.layer_tables_source(), ksc.product_round_source(),
               ksc.fold_product_round_source(), ksc.fold_source(False), ksc.fold_source(True),
               ksc.query_weights_source()])


# Metal Shading Language names a kernel may not redeclare (types and library functions)
_METAL_RESERVED = re.compile(r"\b(half|step|float|int|short|char|long|sign|select|mix|clamp|fract)\b")


# ---------------------------------------------------------------- registry
def test_registry_uses_ops_on_cpu(monkeypatch):
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        for op in custom_kernels.OPERATIONS:
            assert custom_kernels.native(op) is None
        monkeypatch.setenv("MLX_STARK_KERNELS", "native")
        with pytest.raises(RuntimeError):
            custom_kernels.native("merkle.hash_rows")
    finally:
        mx.set_default_device(prev)
    with pytest.raises(KeyError):
        custom_kernels.native("no.such.kernel")


def test_registry_respects_ops_override(monkeypatch):
    monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
    assert all(custom_kernels.native(op) is None for op in custom_kernels.OPERATIONS)


# ---------------------------------------------------------------- sources of both dialects
def test_every_kernel_renders_in_both_dialects():
    names = set()
    for src in _all_sources():
        names.add(src.mangled())
        rendered = {d: render(src, d) for d in DIALECTS}
        for d, (header, body) in rendered.items():
            assert "bb_mont" in header and "KFN uint32_t bb_add" in header
            assert body.endswith(src.body)
        # the twins differ only in the dialect macros and the thread-index statements
        (hc, bc), (hm, bm) = rendered["cuda"], rendered["metal"]
        assert hc.split("#define BITREV32(x) __brev(x)\n")[1] == hm.split("#define BITREV32(x) reverse_bits(x)\n")[1]
        assert bc.split("bid_y = blockIdx.y;\n")[1] == bm.split("bid_y = threadgroup_position_in_grid.y;\n")[1]
        assert "thread_position_in_grid" in bm and "blockIdx" not in bm
        # Metal needs an address space on every pointer: thread-private ones go through LOCAL
        for line in (hm + bm).splitlines():
            for decl in re.findall(r"(\w+\s+)?uint32_t\s*\*", line):
                assert decl.strip() in ("LOCAL", "thread"), line
        uses_shared = "SHARED" in src.body
        assert uses_shared == ("BARRIER()" in src.body)
        code = re.sub(r"//[^\n]*", "", src.header + src.body)
        assert not _METAL_RESERVED.findall(code), (src.name, _METAL_RESERVED.findall(code))
    assert len(names) == len(_all_sources())  # distinct sources never share a cached name


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
_EMU_COMMON = r"""
#include <cstdint>
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
using std::min;
struct EmuBarrier {
  std::mutex m; std::condition_variable cv; uint32_t n = 0, count = 0, gen = 0;
  void wait() {
    std::unique_lock<std::mutex> l(m);
    uint32_t g = gen;
    if (++count == n) { count = 0; ++gen; cv.notify_all(); } else cv.wait(l, [&] { return gen != g; });
  }
};
static EmuBarrier emu_bar;
static void emu_barrier() { emu_bar.wait(); }
static uint32_t emu_brev(uint32_t x) {
  uint32_t r = 0;
  for (int i = 0; i < 32; ++i) { r = (r << 1) | (x & 1u); x >>= 1; }
  return r;
}
typedef void (*EmuStep)(const uint32_t**, uint32_t**, uint32_t, uint32_t, uint32_t, uint32_t);
// One OS thread per GPU thread of a block; blocks run one after the other (shared arrays are
// function statics), separated by a barrier.
static void emu_launch(EmuStep step, const uint32_t** in, uint32_t** out, uint32_t gx, uint32_t gy, uint32_t tx) {
  const uint32_t blocks = (gx + tx - 1) / tx;
  emu_bar.n = tx;
  std::vector<std::thread> ts;
  for (uint32_t t = 0; t < tx; ++t) ts.emplace_back([=] {
    for (uint32_t by = 0; by < gy; ++by)
      for (uint32_t bx = 0; bx < blocks; ++bx) { step(in, out, t, bx, by, tx); emu_barrier(); }
  });
  for (auto& th : ts) th.join();
}
"""

_EMU_DIALECT = {
    "cuda": r"""
struct Dim3 { uint32_t x, y, z; };
static thread_local Dim3 threadIdx, blockIdx, blockDim;
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() emu_barrier()
#define __brev(x) emu_brev(x)
static void emu_set(uint32_t t, uint32_t bx, uint32_t by, uint32_t tx) {
  threadIdx = {t, 0, 0}; blockIdx = {bx, by, 0}; blockDim = {tx, 1, 1};
}
""",
    "metal": r"""
struct uint3 { uint32_t x, y, z; };
static thread_local uint3 thread_position_in_grid, thread_position_in_threadgroup, threadgroup_position_in_grid;
#define thread
#define device
#define threadgroup static
namespace mem_flags { const int mem_threadgroup = 0; }
static void threadgroup_barrier(int) { emu_barrier(); }
#define reverse_bits(x) emu_brev(x)
static void emu_set(uint32_t t, uint32_t bx, uint32_t by, uint32_t tx) {
  thread_position_in_threadgroup = {t, 0, 0}; threadgroup_position_in_grid = {bx, by, 0};
  thread_position_in_grid = {bx * tx + t, by, 0};
}
""",
}


def _emulator_source(src: KernelSource, dialect: str) -> str:
    header, body = render(src, dialect)
    space = "device " if dialect == "metal" else ""
    params = ([f"const {space}uint32_t* {n}" for n in src.input_names]
              + [f"{space}uint32_t* {n}" for n in src.output_names])
    args = ([f"in[{i}]" for i in range(len(src.input_names))]
            + [f"out[{i}]" for i in range(len(src.output_names))])
    return (_EMU_COMMON + _EMU_DIALECT[dialect] + header
            + f"\nstatic void kernel_fn({', '.join(params)}) {{\n{body}}}\n"
            + "static void step(const uint32_t** in, uint32_t** out, uint32_t t, uint32_t bx, uint32_t by, uint32_t tx) {\n"
            + f"  emu_set(t, bx, by, tx);\n  kernel_fn({', '.join(args)});\n}}\n"
            + 'extern "C" void run(const uint32_t** in, uint32_t** out, uint32_t gx, uint32_t gy, uint32_t tx) {\n'
            + "  emu_launch(step, in, out, gx, gy, tx);\n}\n")


@pytest.fixture(scope="session")
def emulator_dir(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to emulate kernels on the CPU")
    return tmp_path_factory.mktemp("kernels")


_LIBS: dict = {}


def _emulated_launch(dialect: str, build_dir):
    def launch(src, inputs, grid, threadgroup, output_shapes):
        code = _emulator_source(src, dialect)
        key = hashlib.sha256(code.encode()).hexdigest()[:16]
        if key not in _LIBS:
            cpp, lib = build_dir / f"{key}.cpp", build_dir / f"{key}.so"
            cpp.write_text(code)
            subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-w", str(cpp),
                            "-o", str(lib)], check=True)
            _LIBS[key] = ctypes.CDLL(str(lib))
        ins = [np.ascontiguousarray(np.array(a, dtype=np.uint32)) for a in inputs]
        outs = [np.zeros(shape, dtype=np.uint32) for shape in output_shapes]
        ptr = ctypes.POINTER(ctypes.c_uint32)
        in_arr = (ptr * len(ins))(*[a.ctypes.data_as(ptr) for a in ins])
        out_arr = (ptr * len(outs))(*[a.ctypes.data_as(ptr) for a in outs])
        gx, gy = grid
        _LIBS[key].run(in_arr, out_arr, ctypes.c_uint32(gx), ctypes.c_uint32(gy), ctypes.c_uint32(threadgroup))
        return [mx.array(o) for o in outs]

    return launch


@pytest.fixture(params=DIALECTS)
def emulated(request, emulator_dir, monkeypatch):
    """Route the kernel modules' launches through the C++ emulation of ``request.param``;
    the references run as MLX ops on the CPU."""
    launch = _emulated_launch(request.param, emulator_dir)
    monkeypatch.setattr(kp2, "launch", launch)
    monkeypatch.setattr(kntt, "launch", launch)
    prev = mx.default_device()
    mx.set_default_device(mx.cpu)
    yield request.param
    mx.set_default_device(prev)


def test_emulated_poseidon2(emulated):
    states = bb.random((300, 16), 1)
    assert _eq(kp2.permute(states), permute(states))
    vec = KAT["vectors_rng_instance"][0]
    got = kp2.permute(mx.array(np.array([vec["input"]], dtype=np.uint32)), RNG_CONSTANTS)
    assert np.array(got)[0].tolist() == vec["output"]
    for w in (1, 7, 8, 13, 42):
        m = bb.random((77, w), w)
        assert _eq(kp2.hash_rows(m), hash_rows(m)), w
    left, right = bb.random((65, 8), 2), bb.random((65, 8), 3)
    assert _eq(kp2.compress(left, right), compress(left, right))


@pytest.mark.parametrize("log_n, k, w", [(11, 1, 3), (5, 0, 2), (3, 3, 9), (0, 0, 4)])
def test_emulated_merkle_layers(emulated, log_n, k, w):
    m = bb.random((1 << log_n, w), log_n)
    ref = MerkleTree.commit(m, k)
    got = kp2.merkle_layers(m, k)
    assert len(got) == len(ref.layers) and all(_eq(a, b) for a, b in zip(got, ref.layers))


def test_emulated_pow(emulated, monkeypatch):
    monkeypatch.setattr(kp2, "POW_FIRST_BATCH", 256)  # several (growing) batches before a hit
    monkeypatch.setattr(kp2, "POW_MAX_BATCH", 512)
    state = list(range(16))
    for absorb, bits in ((0, 0), (7, 6), (3, 11)):
        assert kp2.find_pow_witness(state, absorb, bits) == find_pow_witness(state, absorb, bits)
    # one launch over an offset range whose length is not a multiple of the block
    fixed = [(v << 32) % P for v in state]
    start, count, bits = 1000, 700, 4
    best = kp2.launch(kp2.pow_source(), [kp2._params(start, count, (1 << bits) - 1, 5, *fixed)],
                      (768, 1), kp2.THREADS, [(3,)])[0]
    hits = [w for w in range(start, start + count)
            if permute_host(state[:5] + [w] + state[6:])[7] % (1 << bits) == 0]
    expect = [min((w for w in hits if start + 256 * b <= w < start + 256 * (b + 1)), default=0xFFFFFFFF)
              for b in range(3)]
    assert np.array(best).tolist() == expect


def test_emulated_ntt(emulated):
    for log_n, cols in [(log_n, 2) for log_n in range(kntt.MAX_LOG_RADIX + 1)] + [(13, 3)]:  # every radix
        x = bb.random((1 << log_n, cols), log_n)
        for inverse in (False, True):
            got = kntt.transform(x.reshape(1, 1 << log_n, cols), log_n, inverse)
            assert _eq(got.reshape(x.shape), pntt._transform(x, 0, inverse)), (log_n, inverse)
    x = bb.random((3, 1 << 5, 4), 9)
    assert _eq(kntt.transform(x, 5, False), pntt.dft(x, axis=1))
    coeffs = bb.random((1 << 8, 3), 10)
    assert _eq(kntt.transform(coeffs.reshape(1, 1 << 8, 3), 10, False).reshape(1 << 10, 3), pntt.lde(coeffs, 2))
    for l in (0, 1, 2, 4):
        q = bb.random((1 << 7, 5), l)
        assert _eq(kntt.rs_messages(q, l), stacked_pcs.rs_messages(q, l)), l


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
needs_native = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU device")


@pytest.fixture
def reference(monkeypatch):
    """Make the GPU (with native kernels) the default device; the fixture's value runs a thunk
    on the ops reference, on the CPU device (device and path are fixed while the graph is
    built, so evaluating later is fine)."""
    prev = mx.default_device()
    device.set_device("gpu")
    monkeypatch.setenv("MLX_STARK_KERNELS", "auto")
    if not device.native_kernels_active():
        mx.set_default_device(prev)
        pytest.skip("the GPU has no custom-kernel backend")

    def ref(thunk):
        mx.set_default_device(mx.cpu)
        try:
            return thunk()
        finally:
            device.set_device("gpu")

    yield ref
    mx.set_default_device(prev)


@needs_native
def test_device_poseidon2(reference):
    for n in (1, 255, (1 << 16) + 3):
        states = bb.random((n, 16), n)
        assert _eq(permute(states), reference(lambda: permute(states)))
    for vec in KAT["vectors_default_constants"]:
        assert np.array(permute(mx.array(np.array([vec["input"]], dtype=np.uint32))))[0].tolist() == vec["output"]
    vec = KAT["vectors_rng_instance"][0]
    got = permute(mx.array(np.array([vec["input"]], dtype=np.uint32)), RNG_CONSTANTS)
    assert np.array(got)[0].tolist() == vec["output"]
    for w in (1, 7, 8, 9, 42, 100):
        m = bb.random((10007, w), w)
        assert _eq(hash_rows(m), reference(lambda: hash_rows(m))), w
    left, right = bb.random((5001, 8), 2), bb.random((5001, 8), 3)
    assert _eq(compress(left, right), reference(lambda: compress(left, right)))


@needs_native
@pytest.mark.parametrize("log_n, k, w", [(14, 4, 42), (12, 0, 5), (3, 3, 3), (0, 0, 2), (19, 1, 1)])
def test_device_merkle(reference, log_n, k, w):
    m = bb.random((1 << log_n, w), log_n + w)
    tree = MerkleTree.commit(m, k)
    ref = reference(lambda: MerkleTree.commit(m, k))
    assert tree.root == ref.root and len(tree.layers) == len(ref.layers)
    assert all(_eq(a, b) for a, b in zip(tree.layers, ref.layers))
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
        assert _eq(pntt.dft(x), reference(lambda: pntt.dft(x))), log_n
        assert _eq(pntt.idft(x), reference(lambda: pntt.idft(x))), log_n
    ext_x = bb.random((1 << 10, 7, 4), 5)
    assert _eq(pntt.dft(ext_x), reference(lambda: pntt.dft(ext_x)))
    x = bb.random((3, 1 << 9, 5), 9)
    assert _eq(pntt.dft(x, axis=1), reference(lambda: pntt.dft(x, axis=1)))
    for beta in (1, 2, 3):
        coeffs = bb.random((1 << 12, 5), beta)
        assert _eq(pntt.lde(coeffs, beta), reference(lambda: pntt.lde(coeffs, beta))), beta


@needs_native
@pytest.mark.parametrize("log_h, width, l_skip, beta", [(12, 42, 4, 1), (8, 3, 2, 2), (5, 1, 0, 1), (10, 9, 3, 3)])
def test_device_rs_code_matrix(reference, log_h, width, l_skip, beta):
    q = bb.random((1 << log_h, width), log_h)
    msgs, codewords = stacked_pcs.rs_code_matrix(q, l_skip, beta)
    msgs_ref, codewords_ref = reference(lambda: stacked_pcs.rs_code_matrix(q, l_skip, beta))
    assert _eq(msgs, msgs_ref) and _eq(codewords, codewords_ref)
