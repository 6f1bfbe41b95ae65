"""Launch sizing shared by the kernels: the block size, the grid that gives every item its own
thread, and how far a launch spreads its work (blocks whose threads loop over items, block rows
that split each output's terms). Sizing decides only how the work spreads over the GPU: the
results are field sums, the same for any split.
"""
from __future__ import annotations

THREADS = 256  # threads per block
# Threads a launch aims at when it loops or splits: an H100 holds 132 x 2048 resident threads.
TARGET_THREADS = 1 << 18


def grid_x(items: int, threads: int = THREADS) -> int:
    """Threads along x for one item per thread: ``items`` rounded up to whole blocks."""
    return -(-items // threads) * threads


def plan_blocks(items: int) -> int:
    """Blocks of a launch whose threads loop over ``items`` items (thread ``g`` takes items
    ``g, g + T, …`` for the launch's ``T`` threads): one item per thread up to
    :data:`TARGET_THREADS` threads, more items per thread beyond."""
    return max(1, min(TARGET_THREADS // THREADS, -(-items // THREADS)))


def plan_parts(outputs: int, most: int) -> int:
    """Block rows ``K`` of a launch with one thread per output and each output's terms split
    over the rows: enough for ``outputs·K`` to reach :data:`TARGET_THREADS`, at most ``most``,
    at least 1."""
    return max(1, min(TARGET_THREADS // max(outputs, 1), most))


def input_slots(count: int) -> int:
    """Inputs of a generated many-input kernel for ``count`` arrays: a power of two, at least
    2 (few distinct sources; the unused slots repeat an input and read nothing)."""
    return 1 << max(1, (count - 1).bit_length())


def chained(items: list, arity: int, launch_group):
    """Launch ``launch_group(prev, group)`` over ``items`` in turn: each launch takes at most
    ``arity`` inputs, the previous launch's output ``prev`` (``None`` for the first) among
    them, so that the last output covers every item. Returns it (``None`` without items)."""
    out, rest = None, list(items)
    while rest:
        take = arity - (out is not None)
        out, rest = launch_group(out, rest[:take]), rest[take:]
    return out
