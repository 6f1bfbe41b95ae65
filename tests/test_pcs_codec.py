"""Byte codec of pcs.md §10.2: primitives, StackingProof / WhirProof round trips, and
rejection of malformed bytes (truncation, trailing bytes, non-canonical values, the edge cases
of pcs.md §12)."""
import random
import struct

import numpy as np
import pytest

from mlx_stark.errors import InvalidInputError, ProofDecodeError, VerificationError
from mlx_stark.field.bb import P
from mlx_stark.field.host import EF
from mlx_stark.proof import StackingProof, WhirProof
from mlx_stark.proof.codec import Reader, Writer


def rand_ef(rng):
    return EF(*(rng.randrange(P) for _ in range(4)))


def rand_digest(rng):
    return tuple(rng.randrange(P) for _ in range(8))


def random_stacking(rng, l=2, n=3, widths=(3, 1)):
    return StackingProof(
        [rand_ef(rng) for _ in range(2 * ((1 << l) - 1) + 1)],
        [(rand_ef(rng), rand_ef(rng)) for _ in range(n)],
        [[rand_ef(rng) for _ in range(w)] for w in widths])


def random_whir(rng, k=2, rounds=3, widths=(3, 2), queries=(4, 3, 2), depth0=5, final_len=4):
    nprng = np.random.default_rng(rng.randrange(1 << 30))
    rnd = lambda shape: nprng.integers(0, P, size=shape, dtype=np.uint32)  # noqa: E731
    return WhirProof(
        mu_pow_witness=rng.randrange(P),
        whir_sumcheck_polys=[(rand_ef(rng), rand_ef(rng)) for _ in range(k * rounds)],
        codeword_commits=[rand_digest(rng) for _ in range(rounds - 1)],
        ood_values=[rand_ef(rng) for _ in range(rounds - 1)],
        folding_pow_witnesses=[rng.randrange(P) for _ in range(k * rounds)],
        query_phase_pow_witnesses=[rng.randrange(P) for _ in range(rounds)],
        initial_round_opened_rows=[rnd((queries[0], 1 << k, w)) for w in widths],
        initial_round_merkle_proofs=[rnd((queries[0], depth0, 8)) for _ in widths],
        codeword_opened_values=[rnd((queries[r], 1 << k, 4)) for r in range(1, rounds)],
        codeword_merkle_proofs=[rnd((queries[r], depth0 - r, 8)) for r in range(1, rounds)],
        final_poly=[rand_ef(rng) for _ in range(final_len)])


# ------------------------------------------------------------------ primitives
def test_primitives_round_trip():
    w = Writer()
    w.u32(0xDEADBEEF)
    w.usize(7)
    w.u8(200)
    w.bool(True)
    w.bool(False)
    w.f(P - 1)
    w.ef(EF(1, 2, 3, P - 1))
    w.digest(tuple(range(8)))
    w.f_slice([5, 6])
    w.ef_slice([EF(9)])
    w.digest_slice([tuple(range(8, 16))])
    data = w.getvalue()
    assert data[:4] == bytes([0xEF, 0xBE, 0xAD, 0xDE])  # little-endian
    r = Reader(data)
    assert r.u32() == 0xDEADBEEF
    assert r.usize() == 7
    assert r.u8() == 200
    assert r.bool() is True and r.bool() is False
    assert r.f() == P - 1
    assert r.ef() == EF(1, 2, 3, P - 1)
    assert r.digest() == tuple(range(8))
    assert r.f_vec() == [5, 6]
    assert r.ef_vec() == [EF(9)]
    assert r.digest_vec() == [tuple(range(8, 16))]
    r.finish()


def test_bool_decodes_nonzero_as_true():
    assert Reader(bytes([7])).bool() is True


def test_reader_rejects_non_canonical_and_truncation():
    with pytest.raises(ProofDecodeError):
        Reader(struct.pack("<I", P)).f()
    with pytest.raises(ProofDecodeError):
        Reader(struct.pack("<4I", 0, 0, P, 0)).ef()
    with pytest.raises(ProofDecodeError):
        Reader(struct.pack("<I", 0xFFFFFFFF)).f_array((1,))
    with pytest.raises(ProofDecodeError):
        Reader(b"\x01\x02\x03").u32()
    with pytest.raises(ProofDecodeError):  # a huge length prefix fails before any allocation
        Reader(struct.pack("<I", 0xFFFFFFFF)).ef_vec()
    r = Reader(b"\x00\x00\x00\x00\x01")
    r.u32()
    with pytest.raises(ProofDecodeError):
        r.finish()
    with pytest.raises(ProofDecodeError):
        Reader("not bytes")
    assert issubclass(ProofDecodeError, VerificationError)


def test_writer_rejects_unencodable_values():
    w = Writer()
    for bad in (lambda: w.u32(1 << 32), lambda: w.usize(-1), lambda: w.f(P),
                lambda: w.u8(256), lambda: w.digest((1, 2)), lambda: w.f_array(np.array([P]))):
        with pytest.raises(InvalidInputError):
            bad()


# ------------------------------------------------------------------ StackingProof
@pytest.mark.parametrize("l,n,widths", [(0, 0, (1,)), (2, 3, (3, 1)), (4, 1, (0, 5, 2))])
def test_stacking_round_trip(l, n, widths):
    rng = random.Random(l * 100 + n)
    proof = random_stacking(rng, l, n, widths)
    data = proof.to_bytes()
    expected_len = 4 + 16 * (2 * ((1 << l) - 1) + 1) + 4 + 32 * n + 4 + sum(4 + 16 * w for w in widths)
    assert len(data) == expected_len
    assert StackingProof.from_bytes(data) == proof


def test_stacking_rejects_truncated_and_extended():
    data = random_stacking(random.Random(1)).to_bytes()
    for cut in (0, 1, 4, 20, len(data) - 1):
        with pytest.raises(ProofDecodeError):
            StackingProof.from_bytes(data[:cut])
    with pytest.raises(ProofDecodeError):
        StackingProof.from_bytes(data + b"\x00")


def test_stacking_rejects_non_canonical():
    data = bytearray(random_stacking(random.Random(2)).to_bytes())
    data[4:8] = struct.pack("<I", P + 5)  # first coefficient of s_0
    with pytest.raises(ProofDecodeError):
        StackingProof.from_bytes(bytes(data))


# ------------------------------------------------------------------ WhirProof
@pytest.mark.parametrize("k,rounds,widths,queries,depth0,final_len", [
    (2, 3, (3, 2), (4, 3, 2), 5, 4),
    (1, 1, (1,), (3,), 2, 1),
    (3, 2, (0, 4), (2, 1), 3, 8),
    (4, 1, (2,), (1,), 0, 2),
])
def test_whir_round_trip(k, rounds, widths, queries, depth0, final_len):
    rng = random.Random(k * 31 + rounds)
    proof = random_whir(rng, k, rounds, widths, queries, depth0, final_len)
    data = proof.to_bytes()
    back = WhirProof.from_bytes(data)
    assert back == proof
    assert back.to_bytes() == data


def _whir_layout_len(k, rounds, widths, queries, depth0, final_len):
    n = 4 + 4 + 32 * k * rounds + 4 + 32 * (rounds - 1) + 16 * (rounds - 1)
    n += 4 * k * rounds + 4 * rounds + 4 + 4 + 4 + 4 * len(widths)
    n += sum(queries[0] * (1 << k) * w * 4 for w in widths) + len(widths) * queries[0] * depth0 * 32
    n += sum(4 + queries[r] * (1 << k) * 16 for r in range(1, rounds))
    n += 4 + sum(queries[r] * (depth0 - r) * 32 for r in range(1, rounds))
    return n + 4 + 16 * final_len


def test_whir_encoding_length_matches_layout():
    args = (2, 3, (3, 2), (4, 3, 2), 5, 4)
    assert len(random_whir(random.Random(5), *args).to_bytes()) == _whir_layout_len(*args)


def test_whir_rejects_truncated_and_extended():
    data = random_whir(random.Random(3)).to_bytes()
    for cut in sorted({0, 3, 4, 8, 40, len(data) // 3, len(data) // 2, len(data) - 17, len(data) - 1}):
        with pytest.raises(ProofDecodeError):
            WhirProof.from_bytes(data[:cut])
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(data + b"\x00\x00\x00\x00")


def test_whir_rejects_non_canonical_opened_row():
    proof = random_whir(random.Random(4))
    data = bytearray(proof.to_bytes())
    row_bytes = proof.initial_round_opened_rows[0].astype("<u4").tobytes()
    pos = bytes(data).find(row_bytes)
    assert pos > 0
    data[pos:pos + 4] = struct.pack("<I", P)
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(bytes(data))


def _offset_of_num_commits(k, rounds):
    return 4 + 4 + 32 * k * rounds + 4 + 32 * (rounds - 1) + 16 * (rounds - 1) + 4 * k * rounds + 4 * rounds


def test_whir_rejects_zero_commits_and_zero_queries():
    k, rounds = 2, 3
    data = random_whir(random.Random(6), k, rounds).to_bytes()
    off = _offset_of_num_commits(k, rounds)
    assert struct.unpack("<I", data[off:off + 4])[0] == 2
    zero_commits = data[:off] + struct.pack("<I", 0) + data[off + 4:]
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(zero_commits)
    zero_q0 = data[:off + 4] + struct.pack("<I", 0) + data[off + 8:]
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(zero_q0)


def test_whir_rejects_zero_queries_in_later_round():
    proof = random_whir(random.Random(7), k=1, rounds=2, widths=(1,), queries=(1, 1), depth0=2, final_len=1)
    data = proof.to_bytes()
    vals = proof.codeword_opened_values[0].astype("<u4").tobytes()
    pos = data.find(vals)
    assert struct.unpack("<I", data[pos - 4:pos])[0] == 1
    bad = data[:pos - 4] + struct.pack("<I", 0) + data[pos + len(vals):]
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(bad)


def test_whir_rejects_non_multiple_step_count():
    # 3 sumcheck steps, 1 codeword commit -> R = 2 does not divide 3
    w = Writer()
    w.f(0)
    w.usize(3)
    w.ef_iter([EF(0)] * 6)
    w.digest_slice([(0,) * 8])
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(w.getvalue())


def test_whir_rejects_underflowing_depth():
    # R = 3 needs depth1 >= 1; encode a proof and overwrite depth1 with 0
    proof = random_whir(random.Random(8), k=1, rounds=3, widths=(1,), queries=(1, 1, 1), depth0=3, final_len=1)
    data = proof.to_bytes()
    vals = proof.codeword_opened_values[1].astype("<u4").tobytes()
    pos = data.find(vals) + len(vals)
    assert struct.unpack("<I", data[pos:pos + 4])[0] == 2
    bad = data[:pos] + struct.pack("<I", 0) + data[pos + 4:]
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(bad)


def test_whir_single_round_rejects_nonzero_depth():
    # one round: the round-1 Merkle depth is unused and must be 0, or one proof has 2^32 encodings
    proof = random_whir(random.Random(10), k=1, rounds=1, widths=(1,), queries=(1,), depth0=2, final_len=2)
    data = proof.to_bytes()
    pos = len(data) - 4 - 2 * 16 - 4
    assert WhirProof.from_bytes(data) == proof and data[pos:pos + 4] == bytes(4)
    bad = data[:pos] + struct.pack("<I", 1) + data[pos + 4:]
    with pytest.raises(ProofDecodeError, match="single-round"):
        WhirProof.from_bytes(bad)


def test_whir_rejects_huge_folding_factor():
    w = Writer()
    w.f(0)
    w.usize(28)
    w.ef_iter([EF(0)] * 56)
    w.digest_slice([])
    with pytest.raises(ProofDecodeError):
        WhirProof.from_bytes(w.getvalue())


def test_whir_encoder_refuses_unrepresentable_objects():
    proof = random_whir(random.Random(9))
    proof.codeword_opened_values[0] = proof.codeword_opened_values[0][:0]
    with pytest.raises(InvalidInputError):
        proof.to_bytes()
    proof = random_whir(random.Random(9))
    proof.initial_round_opened_rows = []
    with pytest.raises(InvalidInputError):
        proof.to_bytes()
