"""The KPI contract: warm runs of keccakf (1024 permutations) and the LogUp workload.

Writes ``<out>/<workload>.json`` (raw per-run span totals and trees, medians, min, max) and
``<out>/medians.md`` (the median table). Usage:

    python benchmarks/kpi.py --out docs/tracking/baselines/cpu [--runs 5] [--warmup 1]
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from mlx_stark import bench, device, workloads


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--runs", default=5, show_default=True)
@click.option("--warmup", default=1, show_default=True)
@click.option("--permutations", default=1024, show_default=True)
@click.option("--logup-scale", default=1, show_default=True)
@click.option("--only", type=click.Choice(["keccakf", "logup"]), default=None)
def main(out_dir, runs, warmup, permutations, logup_scale, only):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    click.echo(json.dumps(device.info()))
    made = {"keccakf": lambda: workloads.keccakf(permutations),
            "logup": lambda: workloads.logup(logup_scale)}
    tables = []
    for name, make in made.items():
        if only and name != only:
            continue
        w = make()

        def progress(i, total, seconds, name=w.name):
            click.echo(f"{name} run {i + 1}/{total}: {seconds:.3f} s", err=True)

        report, _ = bench.measure(w, runs=runs, warmup=warmup, progress=progress)
        (out / f"{w.name}.json").write_text(json.dumps(report, indent=1))
        tables.append(bench.format_table(report))
        click.echo(tables[-1])
    if tables:
        (out / ("medians.md" if not only else f"medians-{only}.md")).write_text("\n\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
