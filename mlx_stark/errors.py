"""Typed errors raised by mlx-stark."""


class MlxStarkError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(MlxStarkError, ValueError):
    """Bad input (traces, public values, parameters): raised before any heavy work."""


class ConfigError(MlxStarkError, ValueError):
    """A bad device or kernel setting: ``MLX_STARK_DEVICE``, ``MLX_STARK_KERNELS``, ``--device``."""


class InsufficientMemoryError(MlxStarkError, MemoryError):
    """A workload would need more memory than this machine has available: refused up front."""


class KeyDecodeError(InvalidInputError):
    """Verifying-key bytes are malformed (wrong magic or version, truncated, non-canonical,
    inconsistent or trailing data)."""


class KeygenError(MlxStarkError):
    """An AIR cannot be turned into keys (its ``kind`` names the reference's error variant)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class ProverError(MlxStarkError):
    """The prover cannot produce a valid proof (e.g. unbalanced interactions)."""


class ConstraintNotSatisfied(InvalidInputError, ProverError):
    """A constraint is nonzero on some row of a trace. ``constraint`` is its position in the
    AIR's constraint order, ``node`` its DAG node, ``row`` the first failing row and
    ``expression`` the constraint written out (shortened when long)."""

    def __init__(self, air_name: str, constraint: int, node: int, row: int, expression: str = ""):
        shown = f": {expression}" if expression else ""
        super().__init__(f"{air_name}: constraint {constraint} (DAG node {node}) is not "
                         f"satisfied at row {row}{shown}")
        self.air_name, self.constraint, self.node, self.row = air_name, constraint, node, row
        self.expression = expression


class UnbalancedInteractions(InvalidInputError, ProverError):
    """Some (bus, message) has a nonzero total count over all rows of all present AIRs: bad
    input that the prover finds while proving (the LogUp GKR's root numerator is not zero)."""


class VerificationError(MlxStarkError):
    """The proof is rejected. ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ProofDecodeError(VerificationError):
    """Proof bytes are malformed (truncated, trailing bytes, non-canonical values...)."""

    def __init__(self, detail: str):
        super().__init__("ProofDecode", detail)
