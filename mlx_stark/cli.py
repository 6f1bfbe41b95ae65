"""The ``mlx-stark`` command line."""
from __future__ import annotations

import json

import click


@click.group()
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


if __name__ == "__main__":
    main()
