"""mlx-stark: a STARK prover and verifier for openvm's SWIRL protocol on MLX.

```python
import mlx_stark as ms
pk, vk = ms.keygen([air0, air1], params)
proof = ms.prove(pk, [ms.AirInput(trace0, public_values=[...]), None])
ms.verify(vk, proof)
```
"""
from . import cache as _cache

_cache.configure()  # before MLX starts the GPU: persistent kernel caches

from . import device as _device  # noqa: E402

_device.setup()

from .air import Air, check_constraints  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    ConstraintNotSatisfied,
    InsufficientMemoryError,
    InvalidInputError,
    KeyDecodeError,
    KeygenError,
    MlxStarkError,
    ProofDecodeError,
    ProverError,
    UnbalancedInteractions,
    VerificationError,
)
from .field import EF, P  # noqa: E402
from .keygen import MultiStarkProvingKey, MultiStarkVerifyingKey, keygen  # noqa: E402
from .params import SystemParams, app_params_with_100_bits_security  # noqa: E402
from .proof.stark import Proof, TraceVData  # noqa: E402
from .prover.prove import AirInput, prove  # noqa: E402
from .verifier.verify import verify  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "Air", "AirInput", "EF", "P", "Proof", "TraceVData", "SystemParams",
    "MultiStarkProvingKey", "MultiStarkVerifyingKey", "app_params_with_100_bits_security",
    "check_constraints", "keygen", "prove", "verify", "MlxStarkError", "ConfigError",
    "InsufficientMemoryError", "InvalidInputError", "KeyDecodeError", "KeygenError", "ProverError",
    "VerificationError", "ProofDecodeError", "ConstraintNotSatisfied",
    "UnbalancedInteractions", "__version__",
]
