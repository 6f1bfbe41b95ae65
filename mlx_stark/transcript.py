"""Fiat–Shamir transcript: the duplex sponge of pcs.md §4 (stark-backend ``DuplexSponge<F, P, 16, 8>``).

:class:`Transcript` keeps the state on the host (16 Python ints); one Poseidon2 permutation
per 8 observations or 8 samples. :class:`DeviceTranscript` runs a segment of the same sponge
with its state and values on the device (the prover's round loops, :func:`device_segment`).
Long runs of host values (:meth:`Transcript.observe_many` of a NumPy array) absorb their full
rate blocks in one call of the native host sponge; proof-of-work search
(:meth:`Transcript.grind`) runs batched on the device.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Optional, Sequence

import mlx.core as mx
import numpy as np

from . import arrays, custom_kernels, device, tracing
from .errors import InvalidInputError
from .field.bb import P, U32
from .field.host import EF
from .hash import host_native
from .hash.poseidon2 import DEFAULT_CONSTANTS, NO_HIT, WIDTH, find_pow_witness, permute_host
from .tracing import Rows, read

RATE = 8
# an observed array at least this long goes through the native sponge (one call for its full
# rate blocks; a shorter one costs less in the Python loop)
_NATIVE_RUN = 8 * RATE
# ... and one at least this long on a worker thread (starting one costs ~50 us)
_WORKER_RUN = 128 * RATE


def _long_run(values) -> bool:
    """A 1-D NumPy array long enough for the native sponge."""
    return isinstance(values, np.ndarray) and values.ndim == 1 and values.size >= _NATIVE_RUN


def _element(x) -> int:
    v = int(x)
    if not 0 <= v < P:
        raise InvalidInputError(f"transcript values must be canonical field elements, got {v}")
    return v


def _settled(slot: str) -> property:
    """A property of the host sponge over ``slot`` that first waits for a run being absorbed."""
    def get(self):
        if self._run is not None:
            self._settle()
        return getattr(self, slot)

    def put(self, value) -> None:
        if self._run is not None:
            self._settle()
        setattr(self, slot, value)

    return property(get, put)


class Transcript:
    """Duplex sponge, width 16, rate 8, over Poseidon2/BabyBear.

    Observations overwrite ``st[absorb_idx]``; a full rate (8 observations) permutes. A sample
    first permutes if anything was absorbed since the last permutation (or the outputs are used
    up), then returns ``st[7], st[6], ..., st[0]`` in turn.

    A very long observed run (:data:`_WORKER_RUN` values or more) absorbs its full blocks on a
    worker thread, so that the caller's next host work overlaps the chain of permutations: the
    sponge (``_state``, ``_absorb_idx``, ``_sample_idx``) waits for it at its next use.
    """

    __slots__ = ("_st", "_ai", "_si", "_run")
    # the sponge: its state (16 ints) and rate positions
    _state = _settled("_st")
    _absorb_idx = _settled("_ai")
    _sample_idx = _settled("_si")

    def __init__(self):
        self._run = None  # (worker thread, finish) of a run being absorbed
        self._st = [0] * WIDTH
        self._ai = 0
        self._si = 0

    def _settle(self) -> None:
        """Wait for the run being absorbed and take its state."""
        worker, finish = self._run
        self._run = None
        worker.join()
        finish()

    def copy(self) -> "Transcript":
        t = Transcript.__new__(Transcript)
        t._run = None
        t._st = list(self._state)
        t._ai = self._absorb_idx
        t._si = self._sample_idx
        return t

    # ------------------------------------------------------------ observe
    def observe(self, x) -> None:
        """Absorb one base element (canonical int)."""
        if self._run is not None:
            self._settle()
        self._st[self._ai] = _element(x)
        self._ai += 1
        if self._ai == RATE:
            self._st = permute_host(self._st)
            self._ai = 0
            self._si = RATE

    def observe_many(self, values) -> None:
        """Absorb base elements (canonical ints, or a 1-D integer NumPy array) in order. A long
        array absorbs its full rate blocks in one call of the native permutation
        (:mod:`mlx_stark.hash.host_native`) where it exists: a chain of permutations runs
        faster on one CPU core than on one GPU warp (docs/architecture.md, "The serial
        absorb"); a very long one on a worker thread (ctypes releases the GIL), the call
        returning at once (the class docstring)."""
        if not _long_run(values):
            for x in values:
                self.observe(x)
            return
        absorb, finish = self._native_run(values)
        if values.size < _WORKER_RUN:
            absorb()
            finish()
            return
        worker = threading.Thread(target=absorb, name="mlx-stark-absorb")
        worker.start()
        self._run = (worker, finish)

    @staticmethod
    def native_runs() -> bool:
        """Whether :meth:`observe_many` absorbs long arrays natively (a C++ compiler built the
        host sponge, :mod:`mlx_stark.hash.host_native`)."""
        return host_native.library(DEFAULT_CONSTANTS) is not None

    def _native_run(self, values: np.ndarray) -> tuple:
        """Check ``values`` and observe the ones before the next rate boundary; returns
        ``(absorb, finish)``: ``absorb()`` runs the native sponge over the full rate blocks
        (touching no Python state), ``finish()`` then sets the state and observes the rest.
        Without the native sponge every value is observed here and both do nothing."""
        if values.dtype.kind not in "iu" or int(values.min()) < 0 or int(values.max()) >= P:
            raise InvalidInputError("transcript values must be canonical field elements")
        lib = host_native.library(DEFAULT_CONSTANTS)
        if lib is None:
            for x in values.tolist():
                self.observe(x)
            return (lambda: None), (lambda: None)
        head = (RATE - self._absorb_idx) % RATE
        end = head + (values.size - head) // RATE * RATE
        for x in values[:head].tolist():
            self.observe(x)
        # copies: the caller may reuse ``values`` while a worker absorbs them
        blocks = np.array(values[head:end], dtype=np.uint32).reshape(1, -1)
        tail, state, out = values[end:].tolist(), np.array([self._state], dtype=np.uint32), []

        def absorb():
            out.append(lib.absorb_rows(blocks, state))

        def finish():
            self._st = out[0][0].tolist()
            self._ai, self._si = 0, RATE
            for x in tail:
                self.observe(x)

        return absorb, finish

    def observe_ext(self, e: EF) -> None:
        """Absorb an extension element as ``c0, c1, c2, c3``."""
        self.observe_many(EF.lift(e).c)

    def observe_exts(self, es) -> None:
        """Absorb extension elements in order, each as ``c0, c1, c2, c3``: one run (a long one
        through the native sponge)."""
        coeffs = [c for e in es for c in EF.lift(e).c]
        self.observe_many(np.array(coeffs, dtype=np.uint32) if len(coeffs) >= _NATIVE_RUN else coeffs)

    def observe_commit(self, digest) -> None:
        """Absorb a digest of 8 base elements in order."""
        d = tuple(digest)
        if len(d) != RATE:
            raise InvalidInputError(f"a commitment digest has 8 elements, got {len(d)}")
        self.observe_many(d)

    # ------------------------------------------------------------ sample
    def sample(self) -> int:
        """Squeeze one base element."""
        if self._run is not None:
            self._settle()
        if self._ai != 0 or self._si == 0:
            self._st = permute_host(self._st)
            self._ai = 0
            self._si = RATE
        self._si -= 1
        return self._st[self._si]

    def sample_ext(self) -> EF:
        """Four samples ``c0, c1, c2, c3``."""
        return EF(self.sample(), self.sample(), self.sample(), self.sample())

    def sample_bits(self, bits: int) -> int:
        """The low ``bits`` bits of one sample (``bits < 32`` and ``2^bits < p``)."""
        _check_bits(bits)
        return self.sample() & ((1 << bits) - 1)

    # ------------------------------------------------------------ proof of work
    def check_witness(self, bits: int, witness) -> bool:
        """Observe ``witness`` and accept iff the next ``sample_bits(bits)`` is 0.

        ``bits == 0`` accepts without touching the transcript.
        """
        _check_bits(bits)
        if bits == 0:
            return True
        self.observe(witness)
        return self.sample_bits(bits) == 0

    def grind(self, bits: int) -> int:
        """The smallest witness ``w`` that :meth:`check_witness` accepts, applied to this transcript.

        Candidates ``0, 1, 2, ...`` are evaluated in batches on the device
        (:func:`mlx_stark.hash.poseidon2.find_pow_witness`), so the witness is deterministic.
        """
        _check_bits(bits)
        if bits == 0:
            return 0
        # check_witness(w) = P(st with st[absorb_idx] = w)[7] has its low bits zero: after the
        # observe, either absorb_idx != 0 (the sample permutes) or the observe filled the rate
        # and permuted itself (the sample then reads st[7] without permuting). Same value.
        witness = find_pow_witness(self._state, self._absorb_idx, bits)
        if not self.check_witness(bits, witness):
            raise RuntimeError("proof-of-work search returned a witness the transcript rejects")
        return witness


def _check_bits(bits: int) -> None:
    if not (isinstance(bits, int) and 0 <= bits < 32 and (1 << bits) < P):
        raise InvalidInputError(f"sample_bits needs 0 <= bits < 31, got {bits!r}")


class PowBatchMiss(Exception):
    """A device proof-of-work search batch held no witness (probability about e^-16 per
    search): the segment is run again with searches that read back and go on."""


class DeviceTranscript:
    """A run of transcript actions whose values stay on the device.

    Wraps a host :class:`Transcript` at its current state. ``observe`` takes ``(n,)`` uint32
    device arrays; ``sample_ext`` / ``sample_bits`` / ``grind`` return device arrays; nothing is
    read back until :meth:`sync`, which writes the sponge back into the host transcript and
    returns the arrays the caller asks for, all in one read-back. With native kernels the
    sponge's state is a ``(24,)`` device array (the state, then its rate part reversed, so that
    samples are slices of it, not gathers) and each absorb-then-permute run is one launch
    of the duplex kernel (:func:`mlx_stark.custom_kernels.poseidon2.duplex`; observations are
    queued until a sample or a search needs the state); the rate positions are
    data-independent and tracked on the host. Elsewhere (the CPU backend) the host sponge
    absorbs the queued values when a sample needs them (one read-back each time): the same
    bits either way.

    Proof-of-work searches run one batch of ``2^(bits + 4)`` nonces with no read-back, and the
    sponge absorbs the smallest witness in the launch that reduces the batch's minima; a batch
    without a witness surfaces at :meth:`sync` as :class:`PowBatchMiss` (see
    :func:`device_segment`), and ``exhaustive=True`` searches the host way instead.
    """

    def __init__(self, host: Transcript, exhaustive: bool = False, state: Optional[mx.array] = None):
        self._host = host
        self._duplex = custom_kernels.native("transcript.DeviceTranscript")
        self._pow = custom_kernels.native("transcript.DeviceTranscript.grind") if not exhaustive else None
        self._nonces: list = []
        self._pending: list = []
        self._queued = 0
        self._after: Optional[tuple] = None  # observe_after_sync's (values, rows)
        if self._duplex is None:
            self._t = host.copy()
            return
        # ``state``: the host's sponge as a device array already (a compiled segment's input)
        self._state = sponge_array(host) if state is None else state
        self._absorb_idx, self._sample_idx = host._absorb_idx, host._sample_idx

    # ------------------------------------------------------------ observe
    def observe(self, values: mx.array) -> None:
        """Absorb ``values`` (``(...)`` uint32 canonical, flattened in row-major order)."""
        self._open()
        values = values.reshape(-1)
        self._pending.append(values)
        self._queued += values.shape[0]

    def observe_after_sync(self, values: mx.array, rows: Optional[Sequence[int]] = None) -> None:
        """Absorb ``values`` (``(...)`` uint32 canonical, row-major) as the segment's last
        action; with ``rows`` (host indices up to ``n``), the rows of ``values`` ``(n, c)``
        followed by one zero row, gathered by ``rows``. Where the host absorbs long runs
        natively (:meth:`Transcript.native_runs`), ``values`` come back with :meth:`sync`'s
        read-back (once, if the segment returns them too), the host gathers and its transcript
        observes them then (a long chain of permutations runs faster on one CPU core than in
        one GPU warp; a very long one on a worker thread while the caller's host work goes on:
        keccakf's 42,000 column openings); elsewhere the segment absorbs them here."""
        if not Transcript.native_runs():
            if rows is not None:
                values = arrays.take(mx.concatenate([values, mx.zeros((1, values.shape[1]), dtype=U32)]),
                                     list(rows))
            self.observe(values)
            return
        self._open()
        self._after = (values, None if rows is None else np.asarray(rows, dtype=np.int64))

    def _open(self) -> None:
        if self._after is not None:
            raise RuntimeError("observe_after_sync must be a device segment's last action")

    def _host_flush(self) -> None:
        """Host path: absorb the queued values (one read-back for all of them)."""
        if self._pending:
            self._t.observe_many(read(mx.concatenate(self._pending))[0])
            self._pending, self._queued = [], 0

    def _flush(self, permute_last: bool) -> None:
        n = self._queued
        if n == 0 and not permute_last:
            return
        if not n:
            values = mx.zeros((0,), dtype=U32)
        else:  # one queued array goes in as it is (no copy)
            values = self._pending[0] if len(self._pending) == 1 else mx.concatenate(self._pending)
        self._state = self._duplex(self._state, values, self._absorb_idx, permute_last)
        self._pending, self._queued = [], 0
        self._absorbed(n, permute_last)

    def _absorbed(self, n: int, permute_last: bool) -> None:
        """The rate positions after the sponge absorbed ``n`` values (and permuted last)."""
        total = self._absorb_idx + n
        if total >= RATE:
            self._sample_idx = RATE
        self._absorb_idx = total % RATE
        if permute_last:
            self._absorb_idx, self._sample_idx = 0, RATE

    @property
    def on_device(self) -> bool:
        """Whether the sponge is a device array (native kernels), so that :meth:`absorb_with`
        can run."""
        return self._duplex is not None

    def absorb_with(self, n: int, kernel, grind_bits: Optional[int] = None) -> tuple:
        """Absorb ``n`` values that a caller's kernel makes and absorbs itself (its own copy of
        the duplex, :func:`mlx_stark.custom_kernels.poseidon2.duplex_code`): as ``observe``
        of the values followed by a sample (the ``_ready`` of a sample: the samples then come
        from its sponge) or, with ``grind_bits``, by :meth:`grind`. ``kernel(sponge,
        absorb_idx, permute_last[, grind])`` returns ``(new sponge (24 words or more),
        *rest)``; returns ``rest``, and with ``grind_bits`` the witness ``(1,)`` after it.
        Where the search fits the kernel's block it runs there (no permutation after the
        values, as :meth:`grind` absorbs before its search): ``grind = (count, a, last, mask)``
        of :func:`mlx_stark.custom_kernels.poseidon2.launch_absorbing`, the sponge's word 24
        the witness. Needs :attr:`on_device`."""
        if self._duplex is None:
            raise RuntimeError("absorb_with needs a device sponge (native kernels)")
        self._open()
        self._flush(permute_last=False)  # values observed before, in order
        search = None
        if grind_bits and self._pow is not None:
            _check_bits(grind_bits)
            from .custom_kernels.poseidon2 import one_block_search
            search = one_block_search(grind_bits)
        if search is None:  # a sample next, or a grind in launches of its own
            permute_last = not grind_bits and self._permutes_before_sample(n)
            self._state, *rest = kernel(self._state, self._absorb_idx, permute_last)
            self._absorbed(n, permute_last)
            return tuple(rest) if grind_bits is None else (*rest, self.grind(grind_bits))
        absorb_idx = self._absorb_idx
        self._absorbed(n, False)  # the witness's rate position and final permutation follow
        last = self._permutes_before_sample(1)
        count, mask = search
        self._state, *rest = kernel(self._state, absorb_idx, False,
                                    (count, self._absorb_idx, last, mask))
        self._absorbed(1, last)
        return (*rest, self._searched(self._state[WIDTH + RATE:]))

    def observe_made(self, n: int, kernel, reference, grind_bits: Optional[int] = None) -> tuple:
        """Results of a computation whose last one (``n`` values) is observed, followed by a
        sample or (``grind_bits``) :meth:`grind` as for :meth:`absorb_with` (the witness
        after the results): with a native ``kernel`` (as for :meth:`absorb_with`, or ``None``)
        and a device sponge, the kernel absorbs them itself; otherwise ``reference()``
        computes the results and the last one is observed."""
        if kernel is not None and self.on_device:
            return self.absorb_with(n, kernel, grind_bits)
        results = reference()
        self.observe(results[-1])
        return results if grind_bits is None else (*results, self.grind(grind_bits))

    # ------------------------------------------------------------ sample
    def _ready(self) -> None:
        """Absorb the queued values and permute when the host sponge's next sample would."""
        self._flush(permute_last=self._permutes_before_sample(self._queued))

    def _permutes_before_sample(self, n: int) -> bool:
        """Whether the host sponge permutes before its next sample after absorbing ``n`` more
        values: anything absorbed since the last permutation, or the outputs used up."""
        total = self._absorb_idx + n
        sample_idx = RATE if total >= RATE else self._sample_idx
        return total % RATE != 0 or sample_idx == 0

    def sample(self, count: int = 1) -> mx.array:
        """``count`` samples ``(count,)`` uint32, in the order the host sponge returns them."""
        self._open()
        if self._duplex is None:
            self._host_flush()
            return mx.array([self._t.sample() for _ in range(count)], dtype=U32)
        parts = []
        while count:
            self._ready()
            take = min(count, self._sample_idx)
            # rate positions sample_idx − 1 down to sample_idx − take: the reversed copy's words
            first = WIDTH + RATE - self._sample_idx
            parts.append(self._state[first:first + take])
            self._sample_idx -= take
            count -= take
        return parts[0] if len(parts) == 1 else mx.concatenate(parts)

    def sample_ext(self) -> mx.array:
        """An extension element ``(4,)``: four samples ``c0..c3``."""
        return self.sample(4)

    def sample_bits(self, bits: int, count: int = 1) -> mx.array:
        """``count`` samples' low ``bits`` bits ``(count,)``, as ``count`` host ``sample_bits``."""
        _check_bits(bits)
        return self.sample(count) & _low_bits_mask(bits, count)

    # ------------------------------------------------------------ proof of work
    def grind(self, bits: int) -> mx.array:
        """The smallest witness (``(1,)`` uint32) as :meth:`Transcript.grind`, applied."""
        _check_bits(bits)
        self._open()
        if bits == 0:
            return mx.zeros((1,), dtype=U32)
        if self._duplex is None:
            self._host_flush()
            return mx.array([self._t.grind(bits)], dtype=U32)
        self._flush(permute_last=False)
        if self._pow is not None:  # the search and the witness's absorb, no read-back
            (nonce,) = self.absorb_with(1, lambda sponge, a, last: self._pow(sponge, a, bits, last))
            return self._searched(nonce)
        # exhaustive: the host's search over the state read back
        state = read(self._state)[0].tolist()[:WIDTH]
        nonce = mx.array([find_pow_witness(state, self._absorb_idx, bits)], dtype=U32)
        self.observe(nonce)
        self.sample(1)  # check_witness's sample; zero in its low bits by construction
        return nonce

    def _searched(self, nonce: mx.array) -> mx.array:
        """After a device search's witness ``nonce`` ``(1,)`` was absorbed: kept for the check
        at :meth:`sync`, then check_witness's sample (zero in its low bits by construction)."""
        self._nonces.append(nonce)
        self.sample(1)
        return nonce

    # ------------------------------------------------------------ back to the host
    def sync(self, *arrays: mx.array) -> list:
        """Write the sponge back into the host transcript and return ``arrays`` as NumPy
        arrays: one read-back for all of it. Raises :class:`PowBatchMiss` if a search batch
        held no witness (the host transcript is then unchanged). The values of
        :meth:`observe_after_sync` come back with them and the host transcript observes them."""
        if self._duplex is None:
            self._host_flush()
            t = self._host
            t._state, t._absorb_idx, t._sample_idx = self._t._state, self._t._absorb_idx, self._t._sample_idx
            return _observed_after(t, list(arrays), self._after, lambda xs: read(*xs) if xs else [])
        self._flush(permute_last=False)
        return _observed_after(self._host, list(arrays), self._after, lambda xs: _read_back(
            self._host, self._state, self._nonces, (self._absorb_idx, self._sample_idx), xs))


def _observed_after(host: Transcript, arrays: list, after: Optional[tuple], read_back) -> list:
    """``read_back(arrays)`` (NumPy arrays), where a segment ended with
    :meth:`DeviceTranscript.observe_after_sync` ``after = (values, rows)`` reading ``values``
    too (unless they are one of ``arrays``) and ``host`` then observes them (gathered by
    ``rows``)."""
    if after is None:
        return read_back(arrays)
    values, rows = after
    at = next((i for i, a in enumerate(arrays) if a is values), None)
    out = read_back(arrays if at is not None else [*arrays, values])
    got = out[at] if at is not None else out.pop()
    if rows is not None:
        got = np.concatenate([got, np.zeros((1, got.shape[1]), dtype=got.dtype)])[rows]
    host.observe_many(got.reshape(-1))
    return out


@lru_cache(maxsize=64)
def _low_bits_mask(bits: int, count: int) -> mx.array:
    """``(count,)`` of ``2^bits − 1``, evaluated once: an array operand, not a broadcast scalar,
    so that a compiled segment's graph has no elementwise chain for MLX to fuse (and compile)."""
    mask = mx.full((count,), (1 << bits) - 1, dtype=U32)
    mx.eval(mask)
    return mask


def sponge_array(host: Transcript) -> mx.array:
    """The host sponge as a device transcript's ``(24,)`` state: the state, then its rate
    part reversed."""
    return mx.array(host._state + host._state[RATE - 1::-1], dtype=U32)


def _read_back(host: Transcript, state: mx.array, nonces: list, position: tuple, arrays) -> list:
    """One read-back of a device segment's sponge ``state``, its searches' ``nonces`` and
    ``arrays``; the sponge and its rate ``position`` written into ``host``. Raises
    :class:`PowBatchMiss` (``host`` unchanged) if a search batch held no witness."""
    state, nonces, *out = read(state, Rows(nonces, (1,)), *arrays)
    if (nonces == NO_HIT).any():
        raise PowBatchMiss()
    host._state = [int(v) for v in state[:WIDTH]]
    host._absorb_idx, host._sample_idx = position
    return out


# Segments with a key may run as compiled graphs (``mx.compile``) on the native path when no
# span is timed: traced once per key and input shapes, then replayed by MLX without running
# their Python (a small proof is bound by the host building its graphs). None: as
# ``MLX_STARK_COMPILE_SEGMENTS`` says (:func:`mlx_stark.device.compile_segments`); True or
# False overrides it (benchmarks, tests).
COMPILE_SEGMENTS: Optional[bool] = None

_NEW, _SEEN = object(), object()
# full key -> _SEEN (ran once as Python), (compiled function, what its trace recorded), or None
# (cannot run compiled)
_COMPILED: dict = {}


def device_segment(transcript: Transcript, body, inputs: Sequence[mx.array] = (), key=None):
    """Run ``body(dt, *inputs)`` on a :class:`DeviceTranscript` over ``transcript`` and sync
    it: ``body`` returns ``(result, arrays)`` (``arrays``: device arrays and :class:`Rows`);
    returns ``(result, arrays as NumPy)``. In the rare case of a search batch without a
    witness the segment runs again with exhaustive searches (``body`` must build everything
    it returns from its inputs, as lazy arrays do).

    ``key`` (hashable): what the body's graph depends on besides the input arrays' shapes and
    the transcript's rate position. With one, the segment may run compiled
    (:data:`COMPILE_SEGMENTS`, ``MLX_STARK_COMPILE_SEGMENTS``): ``body`` must then take every per-proof array through
    ``inputs`` and the sponge (an array captured from elsewhere, or made inside from a
    per-proof host value, would be replayed as the first proof's), and ``result`` must not
    depend on the inputs' values."""
    tries = (False, True)
    if key is not None:
        try:
            done = _compiled_segment(transcript, body, tuple(inputs), key)
        except PowBatchMiss:  # the compiled graph's search missed: the exhaustive searches
            done, tries = None, (True,)
        if done is not None:
            return done
    for exhaustive in tries:
        dt = DeviceTranscript(transcript, exhaustive)
        result, arrays = body(dt, *inputs)
        try:
            return result, dt.sync(*arrays)
        except PowBatchMiss:
            continue
    raise AssertionError("an exhaustive search always finds its witness")


def _compiled_segment(transcript: Transcript, body, inputs: tuple, key):
    """:func:`device_segment` as a compiled graph, or ``None`` where it cannot run so (not the
    native path, timed spans, or a body that failed to trace: it then runs as it is). Raises
    :class:`PowBatchMiss` (``transcript`` unchanged) as :meth:`DeviceTranscript.sync` does."""
    wanted = device.compile_segments() if COMPILE_SEGMENTS is None else COMPILE_SEGMENTS
    if (not wanted or tracing.enabled()
            or custom_kernels.native("transcript.DeviceTranscript") is None
            or custom_kernels.native("transcript.DeviceTranscript.grind") is None):
        return None
    position = (transcript._absorb_idx, transcript._sample_idx)
    # (where the host absorbs long runs, observe_after_sync's values are read back)
    full = (key, position, Transcript.native_runs(), tuple((tuple(a.shape), a.dtype) for a in inputs))
    entry = _COMPILED.get(full, _NEW)
    if entry is _NEW:
        # the first run is Python (a process's first proof fills the caches of constant arrays,
        # whose launches the trace would count as the graph's); the second is traced
        _COMPILED[full] = _SEEN
        return None
    if entry is None:
        return None
    first = entry is _SEEN
    if first:
        entry = _COMPILED[full] = _traced_segment(transcript.copy(), body)
    fn, trace = entry
    launches = tracing.totals()["launches"]
    try:
        outs = fn(sponge_array(transcript), *inputs)
    except Exception:
        if not first:
            raise
        _COMPILED[full] = None  # e.g. an evaluation inside the body: run it as it is
        return None
    finally:  # the trace's launches are not launches; every call counts the graph's
        tracing.reset_launches(launches)
    tracing.count_launch(trace["launches"])
    n = trace["nonces"]
    leaves, arrays = iter(outs[1 + n:]), []
    for rows in trace["layout"]:
        arrays.append(next(leaves) if rows is None else Rows([next(leaves) for _ in range(rows[0])], rows[1]))
    after = trace["after"]  # observe_after_sync's values: one of the arrays, or the last output
    if after is not None:
        at, rows = after
        after = (arrays[at] if at is not None else next(leaves), rows)
    return trace["result"], _observed_after(transcript, arrays, after, lambda xs: _read_back(
        transcript, outs[0], outs[1:1 + n], trace["position"], xs))


def _traced_segment(host: Transcript, body) -> tuple:
    """``(mx.compile of the segment, what its trace records)``: the compiled function takes
    the sponge and the inputs and returns the final sponge, the searches' nonces, the
    body's arrays flattened and the values of :meth:`DeviceTranscript.observe_after_sync`
    unless they are one of those arrays; the record holds the body's result, the arrays'
    layout, the nonce count, the final rate position, where ``observe_after_sync``'s values
    are and its rows, and the launches of one run. ``host``: a transcript
    at the segment's start (its rate position only is read)."""
    trace: dict = {}

    def segment(state, *inputs):
        before = tracing.totals()["launches"]
        dt = DeviceTranscript(host, state=state)
        result, arrays = body(dt, *inputs)
        dt._flush(permute_last=False)
        leaves, layout = [], []
        for a in arrays:
            if isinstance(a, Rows):
                layout.append((len(a.items), a.shape))
                leaves += a.items
            else:
                layout.append(None)
                leaves.append(a)
        extra, after = [], None
        if dt._after is not None:
            values, rows = dt._after
            at = next((i for i, a in enumerate(arrays) if a is values), None)
            extra, after = ([values] if at is None else []), (at, rows)
        trace.update(result=result, layout=layout, nonces=len(dt._nonces), after=after,
                     position=(dt._absorb_idx, dt._sample_idx),
                     launches=tracing.totals()["launches"] - before)
        return [dt._state, *dt._nonces, *leaves, *extra]

    return mx.compile(segment), trace
