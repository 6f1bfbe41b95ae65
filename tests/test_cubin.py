"""Our CUDA kernels as cubins kept on disk (custom_kernels/cubin.py): every kernel source
compiles with NVRTC as the standalone translation unit the precompiled launch needs, the cache
compiles a source once, failures are reported, and without a CUDA device the path steps aside.

NVRTC comes from the CUDA toolkit or the ``nvidia-cuda-nvrtc`` wheel (a test extra); the
compile tests skip where neither is present. Launching needs a GPU: the GPU session runs the
kernel and golden-proof tests through this path.
"""
import mlx.core as mx
import pytest

from mlx_stark import custom_kernels
from mlx_stark.custom_kernels import cubin, render
from mlx_stark.custom_kernels import constraints as kc

from .test_constraint_kernels import _form_sets, keccak_trace  # noqa: F401 (fixture)
from .test_custom_kernels import _all_sources

ARCH = "sm_90"  # the lent H100/H200's; NVRTC compiles for it without a device
needs_nvrtc = pytest.mark.skipif(cubin.nvrtc() is None, reason="NVRTC is not installed")


def _unit(src) -> tuple:
    header, body = render(src, "cuda")
    name = src.mangled()
    return name, cubin.full_source(name, src.input_names, src.output_names, header, body)


def _check_cubin(data: bytes, name: str) -> None:
    assert data[:4] == b"\x7fELF"  # a device ELF, no PTX left for the driver to compile
    assert name.encode() + b"\0" in data  # the extern "C" symbol MLX looks up by name


@needs_nvrtc
def test_every_fixed_kernel_compiles_standalone():
    for src in _all_sources():
        name, unit = _unit(src)
        assert "#include" not in unit and "mlx" not in unit  # no MLX headers in the way
        _check_cubin(cubin.compile_cubin(unit, name, ARCH), name)


@needs_nvrtc
def test_constraint_kernels_compile_standalone(keccak_trace):  # noqa: F811
    for base in (True, False):
        src = kc.kernel_for(keccak_trace.leaves, _form_sets(keccak_trace, 0)["rounds"][1], base).source
        name, unit = _unit(src)
        _check_cubin(cubin.compile_cubin(unit, name, ARCH), name)


@needs_nvrtc
def test_cache_compiles_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    src = _all_sources()[10]
    name, unit = _unit(src)
    first = cubin.cached_cubin(unit, name, ARCH)
    files = list((tmp_path / "cubin").glob(f"{name}_*.cubin"))
    assert len(files) == 1 and files[0].read_bytes() == first

    def no_compile(*a, **k):
        raise AssertionError("compiled again")
    monkeypatch.setattr(cubin, "compile_cubin", no_compile)
    assert cubin.cached_cubin(unit, name, ARCH) == first
    # another architecture or source is another entry
    monkeypatch.undo()
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    other = cubin.cached_cubin(unit.replace("gid", "gid ", 1), name, ARCH)
    _check_cubin(other, name)
    assert len(list((tmp_path / "cubin").glob(f"{name}_*.cubin"))) == 2


@needs_nvrtc
def test_compile_error_carries_the_log():
    unit = cubin.full_source("broken", ("a",), ("out",), "", "out[0] = undeclared_name;\n")
    with pytest.raises(cubin.CompileError, match="undeclared_name"):
        cubin.compile_cubin(unit, "broken", ARCH)


def test_without_a_cuda_device_the_path_steps_aside(monkeypatch):
    monkeypatch.setitem(cubin._STATE, "arch", None)
    src = _all_sources()[0]
    header, body = render(src, "cuda")
    assert cubin.kernel(src.mangled(), src.input_names, src.output_names, header, body) is None
    monkeypatch.setenv("MLX_STARK_CUBIN", "0")
    monkeypatch.setitem(cubin._STATE, "arch", ARCH)
    assert cubin.kernel(src.mangled(), src.input_names, src.output_names, header, body) is None


def test_failed_compile_falls_back_to_mlx(monkeypatch, recwarn):
    """A kernel NVRTC rejects here launches through MLX's own compilation (with a warning)."""
    monkeypatch.setitem(cubin._STATE, "arch", ARCH)
    monkeypatch.setitem(cubin._STATE, "nvrtc", object())
    monkeypatch.setattr(mx.fast, "precompiled_cuda_kernel", lambda **k: None, raising=False)

    def fail(*a, **k):
        raise cubin.CompileError("NVRTC failed on x")
    monkeypatch.setattr(cubin, "cached_cubin", fail)
    src = _all_sources()[0]
    header, body = render(src, "cuda")
    assert cubin.kernel(src.mangled(), src.input_names, src.output_names, header, body) is None
    assert any("NVRTC failed" in str(w.message) for w in recwarn)
    made = []
    monkeypatch.setattr(mx.fast, "cuda_kernel", lambda **k: made.append(k) or (lambda **kw: kw))
    custom_kernels._BUILT.pop((src, "cuda"), None)
    try:
        launcher = custom_kernels._build(src, "cuda")
        assert [k["name"] for k in made] == [src.mangled()] and made[0]["source"] == body
        assert launcher([1], (4, 1, 1), (4, 1, 1), [(1,)], [mx.uint32])["grid"] == (4, 1, 1)
    finally:
        custom_kernels._BUILT.pop((src, "cuda"), None)


@needs_nvrtc
def test_precompile_fills_the_cache_concurrently(tmp_path, monkeypatch):
    """``warmup``'s ahead-of-time step: every fixed kernel lands in the cache, compiled on
    several threads, and a second call compiles nothing."""
    monkeypatch.setenv("MLX_STARK_CACHE", str(tmp_path))
    monkeypatch.setattr(custom_kernels.device, "backend", lambda: "cuda")
    monkeypatch.setattr(cubin, "device_arch", lambda index=0: ARCH)
    monkeypatch.setattr(custom_kernels, "_SUBMITTED", {})  # as in a new process
    sources = custom_kernels.fixed_sources()
    assert len({s.mangled() for s in sources}) == len(sources)
    assert custom_kernels.precompile(sources) == len(sources)
    assert len(list((tmp_path / "cubin").glob("*.cubin"))) == len(sources)
    monkeypatch.setattr(cubin, "compile_cubin", lambda *a, **k: (_ for _ in ()).throw(AssertionError("compiled again")))
    assert custom_kernels.precompile(sources) == len(sources)
