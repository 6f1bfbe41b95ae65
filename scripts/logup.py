"""Prove the LogUp interaction workload (same options as ``mlx-stark logup``)."""
from mlx_stark.cli import logup

if __name__ == "__main__":
    logup()
