"""Bulk transcript absorption: the absorb kernel (mlx_stark.custom_kernels.poseidon2.absorb)
and :meth:`Transcript.observe_array`.

- source (its structure in both dialects: tests/test_custom_kernels.py): the lane-parallel
  permutation (16 threads, a loop over the 22 layers with one barrier each, alternating
  exchange buffers) carries the per-lane constant table of the constant set it is given;
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py: one OS thread per GPU thread, a real barrier, shared arrays
  shared by the threads, so a missing barrier or buffer alternation shows) and equal the host
  permutation chain for 0, 1, 2 and 37 blocks, for the default constants and another set;
  ``observe_array`` through the emulated kernel and through the host fallback equals
  ``observe_many`` at every absorb offset, including the samples that follow;
- device: on a GPU with native kernels, ``observe_array`` equals the ops path on the CPU on
  long runs, and the kernel equals the host permutation chain.
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.errors import InvalidInputError
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.hash import permute_host
from mlx_stark.hash.poseidon2 import DEFAULT_CONSTANTS, INTERNAL_DIAG, ROUNDS_F_HALF, ROUNDS_P
from mlx_stark.transcript import Transcript

from .kernel_helpers import emulation, needs_native, route
from .test_custom_kernels import RNG_CONSTANTS

LENGTHS = (0, 1, 7, 8, 9, 100)
OFFSETS = (0, 3, 7)


def _host_chain(state: list, blocks: np.ndarray, constants=DEFAULT_CONSTANTS) -> list:
    for block in blocks.tolist():
        state = permute_host(block + state[8:], constants)
    return state


def _values(n: int, seed: int) -> mx.array:
    return bb.random((n,), seed)


def _snapshot(t: Transcript) -> tuple:
    return list(t._state), t._absorb_idx, t._sample_idx


def _prefixed(offset: int, squeezed: bool) -> Transcript:
    """A transcript at ``absorb_idx == offset``; ``squeezed``: a sample came before."""
    t = Transcript()
    t.observe_many(range(100, 109))  # absorb_idx 1
    if squeezed:
        t.sample()  # permutes: absorb_idx 0, one output used
        t.observe_many(range(offset))
    else:
        t.observe_many(range(7 + offset))
    return t


def _check_observe_array(n: int, offset: int, squeezed: bool) -> None:
    values = _values(n, 1000 * n + offset)
    a, b = _prefixed(offset, squeezed), _prefixed(offset, squeezed)
    assert a._absorb_idx == offset
    a.observe_many(values.tolist())
    b.observe_array(values)
    assert _snapshot(b) == _snapshot(a), (n, offset, squeezed)
    assert [b.sample() for _ in range(11)] == [a.sample() for _ in range(11)]


# ---------------------------------------------------------------- source
def test_absorb_source():
    src = kp2.absorb_source()
    assert src.input_names == ("blocks", "params") and src.output_names == ("out",)
    assert src.mangled() != kp2.permute_source().mangled()
    # the S-box from the shared header; one loop over the layers, lanes exchanged by shuffles
    # only (the one barrier marks the constant table written, before the chain)
    assert "KFN uint32_t p2_sbox" in src.header and "p2_permute" not in src.header + src.body
    layers = 1 + 2 * ROUNDS_F_HALF + ROUNDS_P
    loop = f"#pragma unroll 1\nfor (uint32_t layer = 0u; layer < {layers}u; ++layer)"
    assert loop in src.body and "layer - 5u < 13u" in src.body
    assert src.body.count("BARRIER();") == 1 and src.body.index("BARRIER();") < src.body.index(loop)
    assert "xch" not in src.body and src.body.count("SHFL_XOR(") == 8 and src.body.count("SHFL(") == 5
    # the lane table holds, per lane, the constant each layer adds for the next one
    for constants in (DEFAULT_CONSTANTS, RNG_CONSTANTS):
        mont = [[(c << 32) % P for c in row] for row in constants.ext_init + constants.ext_term]
        partial = [[(c << 32) % P] + [0] * 15 for c in constants.internal]
        expect = {16 * row + lane: v for row, values in enumerate(mont[:4] + partial + mont[4:])
                  for lane, v in enumerate(values) if v}
        body = kp2.absorb_source(constants).body
        stores = {int(i): int(v) for i, v in re.findall(r"rcs\[(\d+)u\] = (\d+)u;", body)}
        assert stores == expect and "rcs[352]" in body
        diag = [int(v) for v in re.findall(r"diag = (\d+)u;", body)]
        assert diag == [0] + [(v << 32) % P for v in INTERNAL_DIAG[1:]]
    # the constants are the given set's (a digest of them names the kernel)
    other = kp2.absorb_source(RNG_CONSTANTS)
    assert other.mangled() != src.mangled() and other.header == src.header


# ---------------------------------------------------------------- emulation
emulated = emulation(kp2)


def _launch_absorb(state: list, blocks: mx.array, count: int, constants=DEFAULT_CONSTANTS) -> list:
    """The kernel itself over the first ``count`` rows of ``blocks`` (``count = 0`` included)."""
    out = kp2.launch(kp2.absorb_source(constants), [blocks, kp2._params(count, *state)], (16, 1), 16,
                     [(16,)])[0]
    return np.array(out).tolist()


@pytest.mark.parametrize("count", [0, 1, 2, 37])
def test_emulated_absorb_equals_host_chain(emulated, count):
    state = bb.random((16,), count).tolist()
    blocks = bb.random((count, 8), count + 1)
    expect = _host_chain(state, np.array(blocks))
    assert kp2.absorb(state, blocks) == expect
    padded = mx.concatenate([blocks, bb.random((1, 8), 99)])  # a row past the count stays unread
    assert _launch_absorb(state, padded, count) == expect


def test_emulated_absorb_other_constants(emulated):
    state, blocks = bb.random((16,), 5).tolist(), bb.random((3, 8), 6)
    assert _launch_absorb(state, blocks, 3, RNG_CONSTANTS) == _host_chain(state, np.array(blocks), RNG_CONSTANTS)


@pytest.mark.parametrize("squeezed", [False, True])
def test_observe_array_emulated_kernel(emulated, monkeypatch, squeezed):
    calls = []

    def absorb(state, blocks):
        calls.append(blocks.shape)
        return kp2.absorb(state, blocks)

    route(monkeypatch, {"transcript.Transcript.observe_array": absorb})
    for n in LENGTHS:
        for offset in OFFSETS:
            _check_observe_array(n, offset, squeezed)
    # the kernel took exactly the full blocks after the head (e.g. 100 at offset 3: 5 + 11·8 + 7)
    assert (11, 8) in calls and all(shape[1] == 8 and shape[0] >= 1 for shape in calls)


@pytest.mark.parametrize("squeezed", [False, True])
def test_observe_array_host_fallback(monkeypatch, squeezed):
    monkeypatch.setenv("MLX_STARK_KERNELS", "ops")
    assert custom_kernels.native("transcript.Transcript.observe_array") is None
    for n in LENGTHS:
        for offset in OFFSETS:
            _check_observe_array(n, offset, squeezed)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [
    mx.zeros((2, 8), dtype=mx.uint32),
    mx.zeros((), dtype=mx.uint32),
    mx.zeros((8,), dtype=mx.int32),
    mx.zeros((8,), dtype=mx.uint64),
    [1, 2, 3],
    np.zeros(8, dtype=np.uint32),
    mx.array(np.array([1, 2, P, 3], dtype=np.uint32)),
    mx.array(np.array([0] * 20 + [0xFFFFFFFF], dtype=np.uint32)),
])
def test_observe_array_rejects(bad):
    t = _prefixed(3, True)
    before = _snapshot(t)
    with pytest.raises(InvalidInputError):
        t.observe_array(bad)
    assert _snapshot(t) == before  # rejected before anything was absorbed


# ---------------------------------------------------------------- on the GPU (CUDA or Metal)
@needs_native
def test_device_observe_array(reference):
    assert custom_kernels.native("transcript.Transcript.observe_array") is not None
    cases = [(n, offset) for n in LENGTHS + (4097, 42003) for offset in OFFSETS]

    def run():
        out = []
        for n, offset in cases:
            t = _prefixed(offset, n % 2 == 1)
            t.observe_array(_values(n, n + offset))
            out.append((_snapshot(t), [t.sample() for _ in range(9)]))
        return out

    native, ops = run(), reference(run)
    for case, got, ref in zip(cases, native, ops):
        assert got == ref, case
    state = bb.random((16,), 7).tolist()
    blocks = bb.random((1000, 8), 8)
    assert kp2.absorb(state, blocks) == _host_chain(state, np.array(blocks))
