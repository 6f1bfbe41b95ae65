"""The lane-parallel permutation of the device transcript's duplex kernel
(:func:`mlx_stark.custom_kernels.poseidon2.duplex_source`) for any constant set.

- source (its structure in both dialects: tests/test_custom_kernels.py): 16 lanes, a loop over
  the 22 layers exchanging lanes by shuffles only, the per-lane constant table of the constant
  set it is given (a digest of the set names the kernel);
- emulation (needs g++): the rendered CUDA and Metal sources run as C++ on the CPU (see
  tests/kernel_helpers.py: one OS thread per GPU thread, a real barrier, shared arrays shared
  by the threads) and equal the host permutation chain for the default constants and
  another set (tests/test_device_transcript.py covers every absorb offset and length).
"""
import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_stark.custom_kernels import poseidon2 as kp2
from mlx_stark.field import bb
from mlx_stark.field.bb import P
from mlx_stark.hash import permute_host
from mlx_stark.hash.poseidon2 import DEFAULT_CONSTANTS, INTERNAL_DIAG, ROUNDS_F_HALF, ROUNDS_P

from .kernel_helpers import emulation
from .test_custom_kernels import RNG_CONSTANTS


def _host_chain(state: list, values: list, constants) -> list:
    """``values`` (a multiple of 8) absorbed from rate position 0, permuting after each block."""
    for at in range(0, len(values), 8):
        state = permute_host(values[at:at + 8] + state[8:], constants)
    return state


# ---------------------------------------------------------------- source
def test_duplex_source_lane_constants():
    src = kp2.duplex_source()
    assert src.input_names == ("state", "values", "params") and src.output_names == ("out",)
    # the S-box from the shared header; the layer loop (after filled blocks, and the final
    # permutation), lanes exchanged by shuffles only (the one barrier marks the constant
    # table written, before the chain)
    assert "KFN uint32_t p2_sbox" in src.header and "p2_permute" not in src.header + src.body
    layers = 1 + 2 * ROUNDS_F_HALF + ROUNDS_P
    loop = f"#pragma unroll 1\nfor (uint32_t layer = 0u; layer < {layers}u; ++layer)"
    assert src.body.count(loop) == 2 and "layer - 5u < 13u" in src.body
    assert src.body.count("BARRIER();") == 1 and src.body.index("BARRIER();") < src.body.index(loop)
    assert "xch" not in src.body and "SHFL_XOR(" in src.body
    # the lane table holds, per lane, the constant each layer adds for the next one
    for constants in (DEFAULT_CONSTANTS, RNG_CONSTANTS):
        mont = [[(c << 32) % P for c in row] for row in constants.ext_init + constants.ext_term]
        partial = [[(c << 32) % P] + [0] * 15 for c in constants.internal]
        expect = {16 * row + lane: v for row, values in enumerate(mont[:4] + partial + mont[4:])
                  for lane, v in enumerate(values) if v}
        body = kp2.duplex_source(constants).body
        stores = {int(i): int(v) for i, v in re.findall(r"rcs\[(\d+)u\] = (\d+)u;", body)}
        assert stores == expect and "rcs[352]" in body
        diag = [int(v) for v in re.findall(r"(?:case \d+u|default): diag = (\d+)u;", body)]
        assert diag == [0] + [(v << 32) % P for v in INTERNAL_DIAG[1:]]
    other = kp2.duplex_source(RNG_CONSTANTS)
    assert other.mangled() != src.mangled() and other.header == src.header


# ---------------------------------------------------------------- emulation
emulated = emulation(kp2)


@pytest.mark.parametrize("constants", [DEFAULT_CONSTANTS, RNG_CONSTANTS], ids=["default", "rng"])
@pytest.mark.parametrize("blocks", [1, 2, 37])
def test_emulated_duplex_chain_equals_host(emulated, constants, blocks):
    state = bb.random((16,), blocks).tolist()
    values = bb.random((8 * blocks,), blocks + 1)
    out = kp2.launch(kp2.duplex_source(constants), [mx.array(state, dtype=mx.uint32), values,
                                                    kp2._params(8 * blocks, 0, 0)],
                     (16, 1), 16, [(24,)])[0]
    want = _host_chain(state, np.array(values).tolist(), constants)
    assert np.array(out).tolist() == want + want[7::-1]
