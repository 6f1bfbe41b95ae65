"""mlx-stark: a STARK prover and verifier for openvm's SWIRL protocol on MLX."""
from . import device as _device

_device.setup()

from .field import EF, P  # noqa: E402

__version__ = "0.1.0"
__all__ = ["EF", "P", "__version__"]
