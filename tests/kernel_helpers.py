"""Shared pieces of the custom-kernel tests.

- :func:`check_twins`: the structure every rendered kernel source must have in both dialects;
- CPU emulation (needs g++): :func:`emulated_launch` compiles a rendered CUDA or Metal source
  as C++ with the dialect's keywords stubbed (one OS thread per GPU thread, a real barrier per
  block, shared arrays shared by the block's threads) and runs it in place of
  :func:`mlx_stark.custom_kernels.launch`; :func:`emulation` makes the fixture that routes
  kernel modules through it, once per dialect, so the Metal twins run too although no machine
  here can execute them natively;
- on the GPU: :data:`needs_native` and the :func:`reference` fixture (native kernels on the
  GPU against the MLX-ops reference on the CPU).

``emulator_dir`` and ``reference`` are made visible to every test module by tests/conftest.py.
"""
import ctypes
import hashlib
import re
import shutil
import subprocess

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels, device
from mlx_stark.custom_kernels import DIALECTS, KernelSource, render


def arrays_equal(a, b) -> bool:
    return np.array_equal(np.array(a), np.array(b))


def ops_path(thunk):
    """``thunk()`` with every kernel operation on its MLX-ops path."""
    prev = custom_kernels.native
    custom_kernels.native = lambda op: None
    try:
        return thunk()
    finally:
        custom_kernels.native = prev


def route(monkeypatch, kernels: dict) -> list:
    """Make the registry hand out ``kernels`` (operation -> function, registered operations
    only) and the MLX-ops path for every other operation; returns the list the operations
    handed out are appended to."""
    assert set(kernels) <= set(custom_kernels.OPERATIONS), set(kernels) - set(custom_kernels.OPERATIONS)
    calls = []

    def native(op):
        if op in kernels:
            calls.append(op)
            return kernels[op]
        return None

    monkeypatch.setattr(custom_kernels, "native", native)
    return calls


# ---------------------------------------------------------------- sources of both dialects
# Metal Shading Language names a kernel may not redeclare (types and library functions)
METAL_RESERVED = re.compile(r"\b(half|step|float|int|short|char|long|sign|select|mix|clamp|fract)\b")


def check_twins(src: KernelSource) -> None:
    """``src`` renders in both dialects after the shared prelude; the CUDA and Metal twins
    differ only in the dialect macros and the thread-index statements; every pointer has an
    address space on Metal; shared memory comes with barriers, declared at the top level of
    the body; no identifier is a Metal type or library name."""
    rendered = {d: render(src, d) for d in DIALECTS}
    for header, body in rendered.values():
        assert "bb_mont" in header and "KFN uint32_t bb_add" in header
        assert body.endswith(src.body)
    (hc, bc), (hm, bm) = rendered["cuda"], rendered["metal"]
    assert hc.split("#define BITREV32(x) __brev(x)\n")[1] == hm.split("#define BITREV32(x) reverse_bits(x)\n")[1]
    assert bc.split("bid_y = blockIdx.y;\n")[1] == bm.split("bid_y = threadgroup_position_in_grid.y;\n")[1]
    assert "thread_position_in_grid" in bm and "blockIdx" not in bm
    # Metal needs an address space on every pointer: thread-private ones go through LOCAL
    for line in (hm + bm).splitlines():
        for decl in re.findall(r"(\w+\s+)?uint32_t\s*\*", line):
            assert decl.strip() in ("LOCAL", "thread"), (src.name, line)
    assert ("SHARED" in src.body) == ("BARRIER()" in src.body), src.name
    assert all(line.startswith("SHARED") for line in src.body.splitlines() if "SHARED" in line), src.name
    code = re.sub(r"//[^\n]*", "", src.header + src.body)
    assert not METAL_RESERVED.findall(code), (src.name, METAL_RESERVED.findall(code))


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
// a shuffle among a group of 16 threads (the kernels' shuffle width; a block of more threads
// may shuffle in some groups only): publish, the group's barrier, read, the group's barrier
static uint32_t emu_lanes[1024];
static EmuBarrier emu_groups[64];
static uint32_t emu_shfl(uint32_t v, uint32_t src, uint32_t self) {
  EmuBarrier& group = emu_groups[self / 16u];
  emu_lanes[self] = v;
  group.wait();
  const uint32_t r = emu_lanes[(self & ~15u) | (src & 15u)];
  group.wait();
  return r;
}
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
  for (uint32_t g = 0; g * 16u < tx; ++g) emu_groups[g].n = std::min(16u, tx - g * 16u);
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
#define __shfl_sync(m, v, lane, w) emu_shfl((v), (lane), threadIdx.x)
#define __shfl_xor_sync(m, v, mask, w) emu_shfl((v), threadIdx.x ^ (mask), threadIdx.x)
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
typedef uint16_t ushort;
#define simd_shuffle(v, lane) emu_shfl((v), (lane), thread_position_in_threadgroup.x)
#define simd_shuffle_xor(v, mask) emu_shfl((v), thread_position_in_threadgroup.x ^ (mask), thread_position_in_threadgroup.x)
static void emu_set(uint32_t t, uint32_t bx, uint32_t by, uint32_t tx) {
  thread_position_in_threadgroup = {t, 0, 0}; threadgroup_position_in_grid = {bx, by, 0};
  thread_position_in_grid = {bx * tx + t, by, 0};
}
""",
}


def emulator_source(src: KernelSource, dialect: str) -> str:
    """C++ translation unit running the ``dialect`` rendering of ``src``: ``run(in, out, gx,
    gy, tx)`` launches ``gx`` threads along x (blocks of ``tx``) times ``gy`` blocks along y."""
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
    """Build folder of the emulated kernels (skips the test without g++)."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is needed to emulate kernels on the CPU")
    return tmp_path_factory.mktemp("kernels")


_LIBS: dict = {}  # digest of the C++ source -> loaded library, for the whole session


def emulated_launch(dialect: str, build_dir):
    """A drop-in for :func:`mlx_stark.custom_kernels.launch` running the emulation of
    ``dialect``; each distinct source is compiled into ``build_dir`` once."""
    def launch(src, inputs, grid, threadgroup, output_shapes, zero_outputs=False):
        code = emulator_source(src, dialect)
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


def emulation(*modules, dialects=DIALECTS):
    """A fixture, parametrized over ``dialects``, that routes the ``launch`` of every kernel
    module in ``modules`` through the C++ emulation of its dialect and makes the CPU the
    default device (the references run as MLX ops there); its value is the dialect."""
    @pytest.fixture(params=dialects)
    def emulated(request, emulator_dir, monkeypatch):
        launch = emulated_launch(request.param, emulator_dir)
        for module in modules:
            monkeypatch.setattr(module, "launch", launch)
        prev = mx.default_device()
        mx.set_default_device(mx.cpu)
        yield request.param
        mx.set_default_device(prev)

    return emulated


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
needs_native = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU device")


@pytest.fixture
def reference(monkeypatch):
    """Make the GPU (with native kernels) the default device; the fixture's value runs a thunk
    on the ops reference, on the CPU device (device and path are fixed while the graph is
    built, so evaluating later is fine). Skips where the GPU has no custom-kernel backend."""
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
