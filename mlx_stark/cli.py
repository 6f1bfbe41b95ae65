"""The ``mlx-stark`` command line: prove and verify the flagship workloads, benchmark them."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .errors import MlxStarkError

AIR_CHOICES = ("keccakf", "logup")


class _CleanErrors(click.Group):
    """Report library errors as one clear line, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlxStarkError as e:
            raise click.ClickException(f"{type(e).__name__}: {e}") from None


@click.group(cls=_CleanErrors)
def main() -> None:
    """mlx-stark: STARK prover and verifier (SWIRL protocol) on MLX."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def info(as_json: bool) -> None:
    """Versions, the MLX device, and whether native custom kernels are active."""
    import mlx_stark
    from mlx_stark import device

    data = {"mlx_stark": mlx_stark.__version__, **device.info()}
    if as_json:
        click.echo(json.dumps(data))
        return
    for k, v in data.items():
        click.echo(f"{k:>18}: {v}")


def _common_options(f):
    opts = [
        click.option("--runs", default=1, show_default=True, help="timed (warm) runs"),
        click.option("--warmup", default=0, show_default=True, help="untimed runs first"),
        click.option("--device", "device_name", type=click.Choice(["cpu", "gpu"]), default=None,
                     help="MLX device (default: MLX's default)"),
        click.option("--verify/--no-verify", default=True, show_default=True),
        click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                     help="write the measurement report (spans, medians, raw runs) here"),
        click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
                     help="write a Chrome-trace / Perfetto JSON of the last run here"),
        click.option("--proof", "proof_path", type=click.Path(dir_okay=False), default=None,
                     help="write the proof bytes here"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _run(workload, runs, warmup, device_name, verify, json_path, trace_path, proof_path):
    from . import bench, device, tracing
    from .keygen import keygen
    from .prover.prove import prove

    if device_name:
        device.set_device(device_name)
    if runs < 1 or warmup < 0:
        raise click.BadParameter("--runs must be >= 1 and --warmup >= 0")
    click.echo(f"{workload.name}: keygen ...", err=True)

    def progress(i, total, seconds):
        click.echo(f"  run {i + 1}/{total}: {seconds * 1e3:.1f} ms", err=True)

    report = bench.measure(workload, runs=runs, warmup=warmup, check=verify, progress=progress)
    click.echo(bench.format_table(report))
    click.echo(f"\nproof: {report['proof_bytes']} bytes"
               + (f", verified in {report['verify_seconds'] * 1e3:.0f} ms" if verify else ""))
    click.echo("\nspan tree (last run):")
    last = report["raw"][-1]["tree"]
    click.echo(tracing.format_tree([_record(t) for t in last]))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1))
    if trace_path:
        Path(trace_path).write_text(json.dumps(tracing.to_chrome_trace([_record(t) for t in last])))
    if proof_path:
        pk, _ = keygen(workload.airs, workload.params)
        Path(proof_path).write_bytes(prove(pk, workload.inputs).to_bytes())


def _record(d: dict, start: float = 0.0):
    """Rebuild a span record tree from its JSON form (children laid out back to back)."""
    from .tracing import SpanRecord

    rec = SpanRecord(d["name"], start, d["seconds"], [], dict(d["counters"]))
    t = start
    for c in d["children"]:
        rec.children.append(_record(c, t))
        t += c["seconds"]
    return rec


@main.command()
@click.option("--permutations", default=1024, show_default=True)
@click.option("--seed", default=0, show_default=True)
@_common_options
def keccakf(permutations, seed, **kw):
    """Prove Keccak-f[1600] permutations with KeccakfAir (the flagship workload)."""
    from .workloads import keccakf as make

    _run(make(permutations, seed), **kw)


@main.command()
@click.option("--scale", default=1, show_default=True, help="trace-height multiplier (power of 2)")
@_common_options
def logup(scale, **kw):
    """Prove the LogUp interaction workload (sender + receiver on one bus)."""
    from .workloads import logup as make

    _run(make(scale), **kw)


def _workload_vk(air, permutations, scale):
    from .keygen import keygen
    from . import workloads

    w = workloads.keccakf(permutations) if air == "keccakf" else workloads.logup(scale)
    return keygen(w.airs, w.params)[1]


@main.command("keygen")
@click.option("--air", type=click.Choice(AIR_CHOICES), required=True, help="which workload")
@click.option("--permutations", default=1024, show_default=True, help="keccakf: trace size")
@click.option("--scale", default=1, show_default=True, help="logup: trace-height multiplier")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="write the verifying key here")
def keygen_cmd(air, permutations, scale, out_path):
    """Write a workload's verifying key to a file (for `verify --vk`)."""
    data = _workload_vk(air, permutations, scale).to_bytes()
    Path(out_path).write_bytes(data)
    click.echo(f"verifying key: {len(data)} bytes -> {out_path}")


@main.command("verify")
@click.argument("proof_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--vk", "vk_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="verifying-key file (from `mlx-stark keygen`); no keygen runs")
@click.option("--air", type=click.Choice(AIR_CHOICES), default=None,
              help="or: run keygen for this workload's verifying key")
@click.option("--permutations", default=1024, show_default=True, help="keccakf: trace size")
@click.option("--scale", default=1, show_default=True, help="logup: trace-height multiplier")
def verify_cmd(proof_path, vk_path, air, permutations, scale):
    """Verify a proof file against a verifying-key file or a workload's key."""
    from .keygen import MultiStarkVerifyingKey
    from .verifier.verify import verify
    from .errors import VerificationError

    if (vk_path is None) == (air is None):
        raise click.UsageError("give exactly one of --vk and --air")
    if vk_path is not None:
        vk = MultiStarkVerifyingKey.from_bytes(Path(vk_path).read_bytes())
    else:
        vk = _workload_vk(air, permutations, scale)
    t = time.perf_counter()
    try:
        verify(vk, Path(proof_path).read_bytes())
    except VerificationError as e:
        click.echo(f"REJECTED: {e}")
        sys.exit(1)
    click.echo(f"OK ({(time.perf_counter() - t) * 1e3:.0f} ms)")


@main.command()
@click.option("--runs", default=5, show_default=True)
@click.option("--warmup", default=1, show_default=True)
@click.option("--permutations", default=1024, show_default=True)
@click.option("--scale", default=1, show_default=True, help="logup trace-height multiplier")
@click.option("--device", "device_name", type=click.Choice(["cpu", "gpu"]), default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="directory for the JSON reports and the median table")
def bench(runs, warmup, permutations, scale, device_name, out_dir):
    """Both workloads, N warm runs each; prints (and writes) the median table."""
    from . import bench as harness, device, workloads

    if device_name:
        device.set_device(device_name)
    tables = []
    for w in (workloads.keccakf(permutations), workloads.logup(scale)):
        click.echo(f"{w.name}: {runs} warm runs after {warmup} warm-up ...", err=True)
        report = harness.measure(w, runs=runs, warmup=warmup)
        tables.append(harness.format_table(report))
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            Path(out_dir, f"{w.name}.json").write_text(json.dumps(report, indent=1))
    text = "\n\n".join(tables)
    click.echo(text)
    if out_dir:
        Path(out_dir, "medians.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
