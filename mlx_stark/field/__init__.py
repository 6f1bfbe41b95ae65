"""BabyBear ``F`` (module :mod:`bb`), its quartic extension ``EF`` (module :mod:`ext`), and
host-side scalars (:class:`EF`, module :mod:`host`)."""
from . import bb, ext, host
from .bb import P, two_adic_generator
from .host import EF

__all__ = ["bb", "ext", "host", "P", "EF", "two_adic_generator"]
