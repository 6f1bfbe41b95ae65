"""Duplex-sponge transcript (pcs.md §4) against the vectors of pcs.md §11, and proof of work."""
import numpy as np
import pytest

from mlx_stark import transcript
from mlx_stark.errors import InvalidInputError
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.hash import hash_host, host_native, permute_host
from mlx_stark.transcript import Transcript

P0 = permute_host([0] * 16)


def test_fresh_samples():
    t = Transcript()
    assert [t.sample(), t.sample()] == [1054281681, 1878363991] == [P0[7], P0[6]]
    assert Transcript().sample_ext() == EF(1054281681, 1878363991, 1704698758, 360581875)


def test_observe_then_sample():
    t = Transcript()
    t.observe_many([1, 2, 3])
    assert t.sample() == 280581499
    t = Transcript()
    t.observe_many(range(1, 9))
    assert [t.sample(), t.sample()] == [1495371656, 1778633879]
    # a full rate of observations from a zero state is the leaf hash of those 8 values
    assert hash_host(range(1, 9))[7] == 1495371656


def test_squeeze_order_and_repermute():
    t = Transcript()
    outs = [t.sample() for _ in range(9)]
    assert outs[:8] == P0[7::-1]
    assert outs[8] == permute_host(P0)[7]


def test_observe_overwrites_after_squeeze():
    # observing fewer than 8 values after a squeeze keeps the rest of the rate
    t = Transcript()
    t.sample()
    t.observe(5)
    expect = list(P0)
    expect[0] = 5
    assert t.sample() == permute_host(expect)[7]


def test_observe_ext_and_commit_order():
    a, b = Transcript(), Transcript()
    a.observe_ext(EF(1, 2, 3, 4))
    a.observe_commit((5, 6, 7, 8, 9, 10, 11, 12))
    b.observe_many(range(1, 13))
    assert a.sample_ext() == b.sample_ext()


def test_copy_is_independent():
    t = Transcript()
    t.observe(9)
    c = t.copy()
    assert c.sample() == t.sample()
    c.observe(1)
    assert c.sample() != t.sample()


def test_sample_bits():
    t = Transcript()
    assert t.sample_bits(10) == 1054281681 & 1023
    assert Transcript().sample_bits(0) == 0
    with pytest.raises(InvalidInputError):
        Transcript().sample_bits(31)


def test_rejects_non_canonical():
    with pytest.raises(InvalidInputError):
        Transcript().observe(P)
    with pytest.raises(InvalidInputError):
        Transcript().observe(-1)
    with pytest.raises(InvalidInputError):
        Transcript().observe_commit((1, 2, 3))


def _brute_force_witness(t: Transcript, bits: int) -> int:
    w = 0
    while not t.copy().check_witness(bits, w):
        w += 1
    return w


def test_grind_spec_vector():
    t = Transcript()
    assert t.grind(5) == 50
    ref = Transcript()
    assert ref.check_witness(5, 50)
    assert t.sample() == ref.sample()  # grind advanced the real transcript like check_witness


def test_grind_zero_bits_touches_nothing():
    t = Transcript()
    t.observe(3)
    assert t.grind(0) == 0
    assert t.check_witness(0, 12345)
    ref = Transcript()
    ref.observe(3)
    assert t.sample() == ref.sample()


@pytest.mark.parametrize("prefix", [0, 3, 7, 8, 11])
def test_grind_smallest_at_every_absorb_position(prefix):
    # prefix 7: observing the nonce fills the rate and permutes inside observe
    t = Transcript()
    t.observe_many(range(100, 100 + prefix))
    bits = 6
    expect = _brute_force_witness(t, bits)
    for w in range(expect):
        assert not t.copy().check_witness(bits, w)
    g = t.copy()
    assert g.grind(bits) == expect
    assert t.copy().check_witness(bits, expect)


def test_grind_after_squeeze():
    t = Transcript()
    t.sample()
    t.sample()
    expect = _brute_force_witness(t, 4)
    assert t.grind(4) == expect


def test_grind_across_growing_batches(monkeypatch):
    # tiny batches: the scan crosses many batch boundaries and batch growth before the first hit
    from mlx_stark.hash import poseidon2

    monkeypatch.setattr(poseidon2, "_POW_FIRST_BATCH", 4)
    monkeypatch.setattr(poseidon2, "_POW_MAX_BATCH", 32)
    t = Transcript()
    t.observe(77)
    expect = _brute_force_witness(t, 8)
    assert expect > 4 + 8 + 16  # found after the batches stopped growing
    assert t.grind(8) == expect


def _state(t: Transcript) -> tuple:
    return list(t._state), t._absorb_idx, t._sample_idx


@pytest.mark.parametrize("offset", [0, 3, 7])
@pytest.mark.parametrize("count", [64, 67, 200])
@pytest.mark.parametrize("native", [True, False])
def test_observe_many_array_run(offset, count, native, monkeypatch):
    """A long NumPy run (the native sponge's full blocks between a Python head and tail, or
    the Python loop where no native library exists) leaves the sponge as one observe per
    value does, at every rate position, and the samples after it agree."""
    if not native:
        monkeypatch.setattr(host_native, "library", lambda constants: None)
    values = np.random.default_rng(count + offset).integers(0, P, size=count, dtype=np.uint32)
    a, b = Transcript(), Transcript()
    for t in (a, b):
        t.observe_many(range(1, offset + 1))
    a.observe_many(values)
    for x in values.tolist():
        b.observe(x)
    assert _state(a) == _state(b)
    assert [a.sample() for _ in range(3)] == [b.sample() for _ in range(3)]


def test_observe_many_array_rejects_non_canonical():
    t = Transcript()
    before = _state(t)
    for bad in (np.full(80, P, dtype=np.uint32), np.full(80, -1, dtype=np.int64),
                np.full(80, 1.0)):
        with pytest.raises(InvalidInputError):
            t.observe_many(bad)
    assert _state(t) == before


@pytest.mark.parametrize("offset", [0, 5])
def test_worker_run_waits_at_the_next_use(offset):
    """A run long enough for the worker thread returns with the absorb under way; the sponge
    waits for it at its next use (a sample, a copy, an observation), and ends as one observe
    per value leaves it."""
    values = np.random.default_rng(offset).integers(0, P, size=transcript._WORKER_RUN + 3,
                                                   dtype=np.uint32)
    a, b = Transcript(), Transcript()
    for t in (a, b):
        t.observe_many(range(1, offset + 1))
    for x in values.tolist():
        b.observe(x)
    a.observe_many(values)
    assert a._run is not None  # the worker's run, not yet waited for
    c = a.copy()
    assert a._run is None and _state(c) == _state(b)
    a.observe_many(values)
    b.observe_many(values.tolist())
    assert a.sample_ext() == b.sample_ext() and _state(a) == _state(b)
    c_values = values.tolist()
    a.observe_many(values)
    values[:] = 0  # the caller's array may change while the worker runs
    a.observe(7)  # an observation waits too
    b.observe_many(c_values + [7])
    assert _state(a) == _state(b)
