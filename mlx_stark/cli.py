"""The ``mlx-stark`` command line: prove and verify the flagship workloads, benchmark them."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import MlxStarkError

AIR_CHOICES = ("keccakf", "logup", "fib")


class _CleanCommand(click.Command):
    """Report library errors and bad option values as one clear line, not a traceback or a
    usage screen. Per command, so that ``scripts/`` calling a command directly get it too."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.BadParameter as e:
            raise click.ClickException(e.format_message()) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MlxStarkError as e:
            raise click.ClickException(f"{type(e).__name__}: {e}") from None


class _CleanGroup(click.Group):
    command_class = _CleanCommand


class _OutputPath(click.Path):
    """A path written after the run, checked now so that a bad one fails before the work
    instead of losing its results: a file's directory must exist; a directory (created at the
    end) needs its nearest existing ancestor to be a directory. Either must be writable."""

    def __init__(self, directory: bool = False):
        super().__init__(file_okay=not directory, dir_okay=directory, writable=True)
        self.directory = directory

    def convert(self, value, param, ctx):
        path = Path(super().convert(value, param, ctx))
        home = next(p for p in path.parents if p.exists()) if self.directory else path.parent
        if not home.is_dir():
            self.fail(f"'{home}' is not a directory" if home.exists()
                      else f"directory '{home}' does not exist", param, ctx)
        if not os.access(home, os.W_OK):
            self.fail(f"directory '{home}' is not writable", param, ctx)
        return str(path)


@click.group(cls=_CleanGroup)
@click.version_option(__version__, prog_name="mlx-stark")
def main() -> None:
    """mlx-stark: STARK prover and verifier (SWIRL protocol) on MLX."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def info(as_json: bool) -> None:
    """Versions, the MLX device, the kernel path, the C++ compiler, and any bad setting."""
    from . import device

    data = {"mlx_stark": __version__, **device.info()}
    if as_json:
        click.echo(json.dumps(data))
    else:
        for k, v in data.items():
            click.echo(f"{k:>18}: {'not found' if k == 'cxx_compiler' and v is None else v}")
        _warn_slow_compile()
    if data["config_error"]:
        raise click.ClickException(f"ConfigError: {data['config_error']}")


def _warn_slow_compile() -> None:
    from . import device

    warning = device.compiler_warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _start(device_name: str | None) -> None:
    """What every proving command checks and sets up before any heavy work."""
    from . import device

    if device_name:
        device.set_device(device_name)
    device.check_env()
    _warn_slow_compile()


def _runs_option(default: int):
    return click.option("--runs", default=default, show_default=True,
                        type=click.IntRange(min=1), help="timed (warm) runs")


def _warmup_option(default: int):
    return click.option("--warmup", default=default, show_default=True,
                        type=click.IntRange(min=0),
                        help="untimed warm-up runs first (compilation, caches)")


_DEVICE_OPTION = click.option(
    "--device", "device_name", type=click.Choice(["cpu", "gpu"]), default=None,
    help="MLX device to prove on  [default: MLX_STARK_DEVICE, else MLX's default]")
_PROGRESS_OPTION = click.option(
    "--progress/--no-progress", default=None,
    help="show the proof stages and a bar over the runs on stderr  [default: when stderr is a "
         "terminal]")


def _common_options(f):
    opts = [
        _runs_option(1),
        _warmup_option(0),
        _DEVICE_OPTION,
        click.option("--verify/--no-verify", default=True, show_default=True,
                     help="verify the last proof after the runs"),
        click.option("--json", "json_path", type=_OutputPath(), default=None,
                     help="write the measurement report (spans, medians, raw runs) here"),
        click.option("--trace", "trace_path", type=_OutputPath(), default=None,
                     help="write a Chrome-trace / Perfetto JSON of the last run here"),
        click.option("--proof", "proof_path", type=_OutputPath(), default=None,
                     help="write the last timed proof's bytes here"),
        _PROGRESS_OPTION,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


class _Progress:
    """Progress on stderr: one line per finished run (warm-up runs labelled), and with ``live``
    a bar over the runs with the proof stage that is running (spans down to two levels below
    the root, from :data:`tracing.listener`): redrawn in place on a terminal, one line per
    stage otherwise. Use as ``with _Progress(...) as p: bench.measure(..., progress=p.run_done)``."""

    def __init__(self, name: str, runs: int, warmup: int, live: bool | None):
        self.name, self.runs, self.warmup = name, runs, warmup
        self.tty = sys.stderr.isatty()
        self.live = self.tty if live is None else live
        self.done = 0

    def __enter__(self):
        from . import tracing

        if self.live:
            tracing.listener = self.stage
        return self

    def __exit__(self, *exc):
        from . import tracing

        tracing.listener = None

    def _label(self, i: int) -> str:
        """bench.measure's runs in order: warm-up, plain calls, then span runs."""
        if i < self.warmup:
            return f"warm-up {i + 1}/{self.warmup}"
        if i < self.warmup + self.runs:
            return f"call {i + 1 - self.warmup}/{self.runs}"
        return f"spans {i + 1 - self.warmup - self.runs}/{self.runs}"

    def stage(self, name: str, depth: int) -> None:
        if depth > 2:
            return
        total = 2 * self.runs + self.warmup
        filled = 20 * self.done // total
        line = (f"{self.name} [{'#' * filled}{'.' * (20 - filled)}] {self._label(self.done)}: "
                f"{'  ' * depth}{name}")
        if self.tty:
            click.echo(f"\r{line}\x1b[K", err=True, nl=False)
        else:
            click.echo(line, err=True)

    def run_done(self, i: int, total: int, seconds: float) -> None:
        self.done = i + 1
        clear = "\r\x1b[K" if self.live and self.tty else ""
        click.echo(f"{clear}  {self.name} {self._label(i)}: {seconds * 1e3:.1f} ms", err=True)


def _run(workload, runs, warmup, verify, json_path, trace_path, proof_path, progress):
    from . import bench, tracing

    click.echo(f"{workload.name}: keygen ...", err=True)
    _compile_notice(workload.name)
    with _Progress(workload.name, runs, warmup, progress) as p:
        report, proof = bench.measure(workload, runs=runs, warmup=warmup, check=verify,
                                      progress=p.run_done)
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
        Path(proof_path).write_bytes(proof)


def _compile_notice(name: str) -> None:
    """On a GPU the first proof compiles kernels (minutes on a fresh machine): say so."""
    from . import cache, device

    if device.backend() in ("cuda", "metal"):
        where = cache.root() if device.backend() == "cuda" else None
        click.echo(f"{name}: compiling kernels, first run only"
                   + (f" (cached in {where}; `mlx-stark warmup` does it ahead)" if where else ""),
                   err=True)


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
@click.option("--permutations", default=1024, show_default=True, type=click.IntRange(min=1),
              help="Keccak-f permutations to prove (24 trace rows each, padded to a power of 2)")
@click.option("--seed", default=0, show_default=True, help="seed of the random permutation inputs")
@_common_options
def keccakf(permutations, seed, device_name, **kw):
    """Prove Keccak-f[1600] permutations with KeccakfAir (the flagship workload)."""
    from .workloads import keccakf as make

    _start(device_name)
    _run(make(permutations, seed), **kw)


@main.command()
@click.option("--scale", default=1, show_default=True, type=click.IntRange(min=1),
              help="trace-height multiplier (a power of 2)")
@_common_options
def logup(scale, device_name, **kw):
    """Prove the LogUp interaction workload (sender + receiver on one bus)."""
    from .workloads import logup as make

    _start(device_name)
    _run(make(scale), **kw)


@main.command()
@click.option("--log-height", default=20, show_default=True, type=click.IntRange(2, 20),
              help="log2 of the Fibonacci trace's rows (the stacked height is 2^20)")
@_common_options
def fib(log_height, device_name, **kw):
    """Prove the reference's synthetic benchmark: Fibonacci plus four interaction AIRs."""
    from .workloads import fib as make

    _start(device_name)
    _run(make(log_height), **kw)


_PERMUTATIONS = click.option("--permutations", default=1024, show_default=True,
                             type=click.IntRange(min=1), help="keccakf: the trace's permutations")
_SCALE = click.option("--scale", default=1, show_default=True, type=click.IntRange(min=1),
                      help="logup: the trace-height multiplier")
_LOG_HEIGHT = click.option("--log-height", default=20, show_default=True,
                           type=click.IntRange(2, 20), help="fib: log2 of the Fibonacci trace rows")


def _size(air, permutations, scale, log_height) -> int:
    return {"keccakf": permutations, "logup": scale, "fib": log_height}[air]


def _workload(air, permutations, scale, log_height):
    from . import workloads

    return workloads.build(air, _size(air, permutations, scale, log_height))


def _workload_vk(air, permutations, scale, log_height):
    """The workload's verifying key, without building its traces."""
    from . import workloads
    from .keygen import keygen

    _, airs, params = workloads.key_shape(air, _size(air, permutations, scale, log_height))
    return keygen(airs, params)[1]


@main.command("keygen")
@click.option("--air", type=click.Choice(AIR_CHOICES), required=True, help="which workload")
@_PERMUTATIONS
@_SCALE
@_LOG_HEIGHT
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="write the verifying key here")
def keygen_cmd(air, permutations, scale, log_height, out_path):
    """Write a workload's verifying key to a file (for `verify --vk`)."""
    data = _workload_vk(air, permutations, scale, log_height).to_bytes()
    Path(out_path).write_bytes(data)
    click.echo(f"verifying key: {len(data)} bytes -> {out_path}")


@main.command()
@click.option("--workload", type=click.Choice(AIR_CHOICES), default="keccakf", show_default=True,
              help="the workload whose kernels to compile")
@_PERMUTATIONS
@_SCALE
@_LOG_HEIGHT
@_DEVICE_OPTION
@_PROGRESS_OPTION
def warmup(workload, permutations, scale, log_height, device_name, progress):
    """Compile every kernel a workload needs (one proof), then show where the caches live."""
    from . import cache, tracing
    from .keygen import keygen
    from .prover.prove import prove

    _start(device_name)
    w = _workload(workload, permutations, scale, log_height)
    pk, _ = keygen(w.airs, w.params)
    _compile_notice(w.name)
    t = time.perf_counter()
    from . import custom_kernels
    # the proof compiles every kernel it needs, and the fixed ones, in parallel from its start
    with _Progress(w.name, 1, 0, progress) as p, tracing.timing():
        prove(pk, w.inputs)
        p.run_done(0, 1, time.perf_counter() - t)
    n = custom_kernels.precompiled()
    if n:
        click.echo(f"{n} kernels compiled or cached", err=True)
    click.echo(f"{w.name}: ready in {time.perf_counter() - t:.1f} s")
    for name, d in cache.dirs().items():
        click.echo(f"  cache {name:>4}: {d['path']} ({d['bytes'] / 2**20:.1f} MiB)")


@main.command("verify")
@click.argument("proof_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--vk", "vk_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="verifying-key file (from `mlx-stark keygen`); no keygen runs")
@click.option("--air", type=click.Choice(AIR_CHOICES), default=None,
              help="or: run keygen for this workload's verifying key")
@_PERMUTATIONS
@_SCALE
@_LOG_HEIGHT
def verify_cmd(proof_path, vk_path, air, permutations, scale, log_height):
    """Verify a proof file against a verifying-key file or a workload's key."""
    from .keygen import MultiStarkVerifyingKey
    from .verifier.verify import verify
    from .errors import VerificationError
    from . import device

    device.check_env()
    if (vk_path is None) == (air is None):
        raise click.UsageError("give exactly one of --vk and --air")
    if vk_path is not None:
        vk = MultiStarkVerifyingKey.from_bytes(Path(vk_path).read_bytes())
    else:
        vk = _workload_vk(air, permutations, scale, log_height)
    t = time.perf_counter()
    try:
        verify(vk, Path(proof_path).read_bytes())
    except VerificationError as e:
        click.echo(f"REJECTED: {e}")
        sys.exit(1)
    click.echo(f"OK ({(time.perf_counter() - t) * 1e3:.0f} ms)")


@main.command()
@_runs_option(5)
@_warmup_option(1)
@click.option("--permutations", default=1024, show_default=True, type=click.IntRange(min=1),
              help="keccakf: Keccak-f permutations to prove")
@click.option("--scale", default=1, show_default=True, type=click.IntRange(min=1),
              help="logup: trace-height multiplier (a power of 2)")
@_DEVICE_OPTION
@click.option("--out", "out_dir", type=_OutputPath(directory=True), default=None,
              help="directory for the JSON reports and the median table")
@click.option("--only", type=click.Choice(["keccakf", "logup"]), default=None,
              help="one workload (its table goes to medians-<workload>.md)")
@_PROGRESS_OPTION
def bench(runs, warmup, permutations, scale, device_name, out_dir, only, progress):
    """Both workloads, N warm runs each; prints (and writes) the median table."""
    from . import bench as harness, workloads

    _start(device_name)
    makers = {"keccakf": lambda: workloads.keccakf(permutations), "logup": lambda: workloads.logup(scale)}
    tables = []
    # all built (and their memory checked) before the first run
    for w in [make() for name, make in makers.items() if only in (None, name)]:
        click.echo(f"{w.name}: {runs} warm runs after {warmup} warm-up ...", err=True)
        with _Progress(w.name, runs, warmup, progress) as p:
            report, _ = harness.measure(w, runs=runs, warmup=warmup, progress=p.run_done)
        tables.append(harness.format_table(report))
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            Path(out_dir, f"{w.name}.json").write_text(json.dumps(report, indent=1))
    text = "\n\n".join(tables)
    click.echo(text)
    if out_dir:
        Path(out_dir, f"medians-{only}.md" if only else "medians.md").write_text(text + "\n")


@main.command("prove-batch")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=_OutputPath(directory=True), required=True,
              help="directory for the proofs, keys/, summary.json and index.json")
@click.option("--verify/--no-verify", "check", default=False, show_default=True,
              help="verify each proof after writing it")
@click.option("--local-ranks", type=click.IntRange(min=1), default=1, show_default=True,
              help="start this many ranks on this host (ring backend on loopback)")
@_DEVICE_OPTION
def prove_batch_cmd(manifest, out_dir, check, local_ranks, device_name):
    """Prove a manifest of jobs (JSON or TOML); the ranks of `mlx.launch` or of
    --local-ranks share them.

    Each job's proof goes to OUT/<name>.proof; a rerun skips proofs that exist and verify.
    Exits 1 when a job failed (the others still run)."""
    from .batch import launch_local, prove_batch

    if local_ranks > 1 and "MLX_RANK" not in os.environ:
        args = ["prove-batch", manifest, "--out", out_dir, "--verify" if check else "--no-verify"]
        sys.exit(launch_local(local_ranks, args + (["--device", device_name] if device_name else [])))
    _start(device_name)

    def report(r):
        tail = f" {r.error}" if r.error else ""
        click.echo(f"[rank {r.rank}] {r.name}: {r.status} ({r.seconds:.2f} s){tail}", err=True)

    summary = prove_batch(manifest, out_dir, check, on_job=report)
    if summary.rank == 0:
        click.echo("| job | rank | status | s | bytes | error |\n|---|---|---|---|---|---|")
        for j in summary.jobs:
            click.echo(f"| {j['name']} | {j['rank']} | {j['status']} | {j['seconds']:.2f} | "
                       f"{j['proof_bytes']} | {j['error']} |")
        for r in summary.per_rank:
            click.echo(f"rank {r['rank']} ({r['device']}): {r['proved']} proved of {r['jobs']} in "
                       f"{r['busy_seconds']:.2f} s, {r['proofs_per_second']:.2f} proofs/s")
        click.echo(f"{summary.ranks} rank(s), {len(summary.jobs)} jobs, {len(summary.failed)} failed, "
                   f"{summary.wall_seconds:.2f} s wall")
    if summary.failed:
        sys.exit(1)


@main.command("verify-batch")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
def verify_batch_cmd(out_dir):
    """Verify every proof a prove-batch run listed in OUT_DIR/index.json against its key."""
    from . import device
    from .batch import verify_batch

    device.check_env()
    rows = verify_batch(out_dir)
    for r in rows:
        click.echo(f"{r['name']}: {'OK' if r['ok'] else 'REJECTED ' + r['error']} ({r['ms']:.0f} ms)")
    bad = sum(not r["ok"] for r in rows)
    click.echo(f"{len(rows) - bad} of {len(rows)} proofs verified")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
