"""Spans (mlx_stark.tracing): nesting, totals per name, the aggregated text tree, Chrome trace."""
import mlx.core as mx

from mlx_stark import tracing
from mlx_stark.tracing import span


def _run():
    with tracing.timing() as roots:
        with span("outer") as sp:
            for _ in range(3):
                with span("outer.loop") as inner:
                    inner.count("items", 2)
                    with span("outer.loop.leaf"):
                        pass
            with span("outer.once") as once:
                once.produced(mx.arange(4) + 1)
            sp.count("calls")
    return roots


def test_spans_nest_and_flatten_adds_repeated_names():
    roots = _run()
    assert [r.name for r in roots] == ["outer"]
    assert [c.name for c in roots[0].children] == ["outer.loop"] * 3 + ["outer.once"]
    totals = tracing.flatten(roots)
    loops = [c.seconds for c in roots[0].children[:3]]
    assert abs(totals["outer.loop"] - sum(loops)) < 1e-12
    assert totals["outer"] >= totals["outer.loop"] + totals["outer.once"]


def test_format_tree_groups_repeated_spans():
    lines = tracing.format_tree(_run()).splitlines()
    assert [line.split()[0] for line in lines] == ["outer", "outer.loop", "outer.loop.leaf", "outer.once"]
    assert "x3" in lines[1] and "items=6" in lines[1]
    assert "x3" in lines[2]
    assert "calls=1" in lines[0] and "x" not in lines[3].split("ms")[1]
    assert lines[1].startswith("  outer.loop") and lines[2].startswith("    outer.loop.leaf")


def test_disabled_spans_record_nothing():
    assert not tracing.enabled()
    with span("anything") as sp:
        sp.count("n")
        sp.produced(mx.arange(3))
    assert sp.record is None


def test_chrome_trace_has_one_event_per_span():
    events = tracing.to_chrome_trace(_run())["traceEvents"]
    assert len(events) == 1 + 3 * 2 + 1
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)


def test_read_brings_rows_back_stacked():
    """Arrays and Rows in one read, gathered (small, one dtype) or one by one (mixed dtypes),
    come back in their shapes; an empty Rows as an empty array."""
    import numpy as np
    items = [mx.array(np.arange(6 * k, 6 * k + 6, dtype=np.uint32).reshape(2, 3)) for k in range(4)]
    single = mx.array(np.array([7, 8], dtype=np.uint32))
    want = np.arange(24, dtype=np.uint32).reshape(4, 2, 3)
    for extra in ([], [mx.array([1.5])]):  # the second: two dtypes, no gathering
        got = tracing.read(tracing.Rows(items, (2, 3)), single, tracing.Rows([], (5,)), *extra)
        assert np.array_equal(got[0], want) and got[0].shape == (4, 2, 3)
        assert got[1].tolist() == [7, 8]
        assert got[2].shape == (0, 5)
