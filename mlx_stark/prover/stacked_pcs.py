"""Stacked polynomial commitment (pcs.md §6): stack the matrices of one commitment into a
``2^m × W`` matrix, Reed–Solomon encode every stacked column at rate ``2^{−log_blowup}``, and
Merkle-commit the codeword matrix with ``2^k`` rows per leaf group.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import mlx.core as mx

from .. import arrays, custom_kernels
from ..errors import InvalidInputError
from ..field.bb import P, U32
from ..hash.merkle import MerkleTree
from ..layout import StackedLayout, stacked_layout
from ..params import SystemParams
from ..poly import mle, ntt
from ..tracing import read, span, wait


# Codeword elements (uint32) the MLX-ops encoding handles at once (see rs_code_matrix).
_OPS_CHUNK_ELEMS = 1 << 24


@dataclass
class StackedPcsData:
    """Everything the prover keeps about one stacked commitment.

    - ``layout``: the :class:`~mlx_stark.layout.StackedLayout` (pcs.md §6.2);
    - ``matrices``: the committed matrices (the caller's arrays, held by reference);
    - ``codewords``: ``(2^{L0}, W)`` uint32, ``codewords[i, κ] = f̂_κ(ω_{L0}^i)``;
    - ``tree``: the :class:`~mlx_stark.hash.merkle.MerkleTree` over ``codewords`` (``2^k`` rows
      per query); ``commit`` its root (tuple of 8 ints);
    - :attr:`matrix`: the stacked matrix ``Q``, built when first asked for.
    """

    layout: StackedLayout
    matrices: tuple
    codewords: mx.array
    tree: MerkleTree
    commit: tuple

    @property
    def width(self) -> int:
        return self.layout.width

    @functools.cached_property
    def matrix(self) -> mx.array:
        """The stacked matrix ``Q``, ``(2^m, W)`` uint32 (row ``i0 + 2^l·x`` is the prism point
        ``(ω_l^{i0}, x)``; the openings read it): built on first use (lazily), so that it does
        not sit beside the commitment's transforms and the constraint stage, a copy of the
        trace's size."""
        return stacked_matrix(self.layout, self.matrices)


def layout_of(params: SystemParams, matrices) -> StackedLayout:
    """Stacked layout (pcs.md §6.2) of ``matrices`` (trace order, each ``(2^h, w)``)."""
    dims = []
    for a, mat in enumerate(matrices):
        if mat.ndim != 2:
            raise InvalidInputError(f"matrix {a} must be 2-D (height, width), got shape {mat.shape}")
        height, width = mat.shape
        if height < 1 or height & (height - 1):
            raise InvalidInputError(f"matrix {a}: height {height} is not a power of two")
        dims.append((width, height.bit_length() - 1))
    return stacked_layout(params.l_skip, params.log_stacked_height, dims)


def stacked_matrix(layout: StackedLayout, matrices, transposed: bool = False) -> mx.array:
    """The stacked matrix ``Q`` of pcs.md §6.3: ``(2^m, W)`` uint32, zero where no slice is;
    ``Q^T`` ``(W, 2^m)`` with ``transposed`` (what the stacked reduction's round 0 reads).

    ``matrices``: the ``(2^{h_a}, w_a)`` uint32 canonical matrices the layout was made for.
    Slices fill each stacked column top-down without gaps, so ``Q^T`` flattened is the
    concatenation of every matrix's columns (transposed; spread with stride ``2^{l−h}`` when
    ``h < l``) followed by zeros."""
    l = layout.l_skip
    for a, mat in enumerate(matrices):
        width, h = layout.matrix_dims[a]
        if tuple(mat.shape) != (1 << h, width):
            raise InvalidInputError(f"matrix {a} has shape {mat.shape}, layout expects {(1 << h, width)}")
    kernel = custom_kernels.native("stacked_pcs.stacked_matrix")
    if kernel is not None:
        return kernel(layout, matrices, transposed)
    pieces, used = [], 0
    for a, mat in enumerate(matrices):
        width, h = layout.matrix_dims[a]
        if width == 0:
            continue
        cols = arrays.transpose(mat.astype(U32))  # (w, 2^h): one stacked run per column
        if h < l:  # each entry then owns 2^{l−h} rows, the value first, zeros after
            pad = mx.zeros((width, 1 << h, (1 << (l - h)) - 1), dtype=U32)
            cols = mx.concatenate([cols[..., None], pad], axis=-1)
        pieces.append(cols.reshape(-1))
        used += width << max(h, l)
    total = layout.width << layout.log_stacked_height
    if used < total:
        pieces.append(mx.zeros((total - used,), dtype=U32))
    if not pieces:
        return mx.zeros((0, layout.height) if transposed else (layout.height, 0), dtype=U32)
    flat = (mx.concatenate(pieces) if len(pieces) > 1 else pieces[0]).reshape(layout.width, layout.height)
    return flat if transposed else arrays.transpose(flat)


def rs_messages(matrix: mx.array, l_skip: int) -> mx.array:
    """RS messages of every stacked column (pcs.md §5.3): per ``2^l``-row block the iDFT over
    ``D = ⟨ω_l⟩``, then the subset-sum transform over the ``l`` low index bits.

    ``matrix``: ``(2^m, W)`` uint32 -> ``(2^m, W)`` uint32. The blocks are independent, so
    the two row halves go to the two worker streams; inside each, the block axis is moved to
    the front so that every butterfly pass reads contiguous halves."""
    kernel = custom_kernels.native("stacked_pcs.rs_messages")
    if kernel is not None:
        return kernel(matrix, l_skip)
    height, width = matrix.shape
    wait(matrix)
    streams = ntt.worker_streams()
    parts = len(streams) if (height >> l_skip) >= len(streams) else 1
    rows = height // parts
    msgs = []
    for i in range(parts):
        with mx.stream(streams[i]):
            blocks = matrix[i * rows:(i + 1) * rows].reshape(rows >> l_skip, 1 << l_skip, width)
            coeffs = mle.zeta(ntt.idft(mx.transpose(blocks, (1, 0, 2))))
            msgs.append(mx.transpose(coeffs, (1, 0, 2)).reshape(rows, width))
    return mx.concatenate(msgs) if parts > 1 else msgs[0]


def rs_code_matrix(matrix: mx.array, l_skip: int, log_blowup: int) -> tuple:
    """pcs.md §6.4 for all stacked columns at once: ``msgs`` per :func:`rs_messages`, then
    ``codewords[i, κ] = Σ_j msgs[j, κ]·ω_{L0}^{i·j}`` for ``i < 2^{L0}``, ``L0 = m + log_blowup``
    (:func:`mlx_stark.poly.ntt.lde`).

    ``matrix``: ``(2^m, W)`` uint32 (``m >= l_skip``). Returns the codewords
    ``(2^{m + log_blowup}, W)`` uint32; the messages are not kept (WHIR takes the messages of
    the μ-combined matrix: :func:`rs_messages` is F-linear per column)."""
    height, width = matrix.shape
    if height & (height - 1) or height < (1 << l_skip):
        raise InvalidInputError(f"stacked height {height} is not a power of two >= 2^{l_skip}")
    step = max(1, _OPS_CHUNK_ELEMS // (height << log_blowup))
    if custom_kernels.native("ntt.transform") is not None or step >= width:
        return ntt.lde(rs_messages(matrix, l_skip), log_blowup)
    # MLX ops: the transforms' temporaries are several times their input, so encode a few
    # columns at a time into a preallocated output (written in place: nothing else holds it)
    codewords = mx.zeros((height << log_blowup, width), dtype=U32)
    for a in range(0, width, step):
        codewords[:, a:a + step] = ntt.lde(rs_messages(matrix[:, a:a + step], l_skip), log_blowup)
        wait(codewords)  # frees the chunk's temporaries (the ops path syncs per transform anyway)
    return codewords


def encode(layout: StackedLayout, matrices, log_blowup: int) -> mx.array:
    """The codewords of the stacked matrix of ``matrices`` (checked against ``layout``):
    :func:`rs_code_matrix` of :func:`stacked_matrix`. With native kernels the RS messages are
    read from the matrices themselves (``stacked_pcs.stacked_rs_messages``): ``Q`` is not built
    for the commitment."""
    kernel = custom_kernels.native("stacked_pcs.stacked_rs_messages")
    if kernel is not None:
        return ntt.lde(kernel(layout, matrices), log_blowup)
    return rs_code_matrix(stacked_matrix(layout, matrices), layout.l_skip, log_blowup)


def stacked_commit(params: SystemParams, matrices, check_values: bool = True) -> StackedPcsData:
    """Commit to ``matrices`` (trace order: non-increasing powers-of-two heights ``<= 2^m``,
    each ``(2^h, w)`` uint32 canonical) as one stacked commitment (pcs.md §6.2–§6.5).

    Raises :class:`InvalidInputError` before any heavy work for bad shapes, heights or
    ordering, a stacked width of 0 (such a commitment cannot be proven; pcs.md §12), a width
    above ``w_stack`` or entries ``>= p`` (not scanned with ``check_values=False``: for callers
    that validated the matrices already, like :func:`mlx_stark.prover.prove.prove`)."""
    layout = layout_of(params, matrices)
    if layout.width == 0:
        raise InvalidInputError("cannot commit to matrices with zero total width")
    if layout.width > params.w_stack:
        raise InvalidInputError(f"stacked width {layout.width} exceeds w_stack = {params.w_stack}")
    if check_values and max(int(h) for h in read(*[mx.max(m) for m in matrices if m.size])) >= P:
        raise InvalidInputError("matrix entries must be canonical field elements (< p)")
    with span("rs_code_matrix") as sp:
        codewords = encode(layout, matrices, params.log_blowup)
        sp.produced(codewords)
    with span("merkle_tree"):
        # the codewords are computed here (canonical): only the root is read back
        tree = MerkleTree.commit(codewords, params.k_whir, check_values=False)
        root = tree.root
    return StackedPcsData(layout=layout, matrices=tuple(matrices), codewords=codewords, tree=tree,
                          commit=root)
