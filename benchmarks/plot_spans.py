"""Bar chart of the KPI span medians per device from the baseline JSON reports.

    python benchmarks/plot_spans.py docs/tracking/baselines/cpu/keccakf-1024.json \
        docs/tracking/baselines/h100/keccakf-1024.json --out docs/tracking/keccakf-spans.png

Needs the ``plot`` extra (matplotlib).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

SPANS = (
    "stark_prove_excluding_trace",
    "prover.main_trace_commit",
    "rs_code_matrix",
    "merkle_tree",
    "prover.rap_constraints.logup_gkr",
    "prover.rap_constraints.round0",
    "prover.rap_constraints.mle_rounds",
    "prover.openings.stacked_reduction",
    "prover.openings.whir",
)


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--label", "labels", multiple=True, help="legend label per report, in order")
def main(reports, out, labels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [json.loads(Path(p).read_text()) for p in reports]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    n = len(data)
    width = 0.8 / n
    for i, rep in enumerate(data):
        med = [rep["summary"].get(s, {}).get("median", 0.0) * 1e3 for s in SPANS]
        kernels = "native kernels" if rep["device"]["native_kernels"] else "MLX ops"
        label = labels[i] if i < len(labels) else \
            f"{rep['workload']}: {rep['device']['backend']}, {kernels}"
        ax.barh([j + i * width for j in range(len(SPANS))], med, height=width, label=label)
    ax.set_yticks([j + 0.4 - width / 2 for j in range(len(SPANS))])
    ax.set_yticklabels(SPANS)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median of warm runs (ms, log scale)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=n)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
