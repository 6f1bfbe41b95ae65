"""System parameters (pcs.md §9; stark-backend v2.0.1 ``config.rs`` and the stark-sdk presets).

All classes are frozen dataclasses: two parameter sets are equal iff every field is equal
(the verifier rejects a proof whose vk was built with different parameters). Field order is
the order of the reference structs, which is also their postcard serialisation order
(constraints.md §2.4).

Derived WHIR quantities: ``R = len(whir.rounds)`` rounds of ``k`` folds each, so ``k·R``
sumcheck rounds and a final polynomial of ``2^(m − k·R)`` coefficients (``m = l_skip + n_stack``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidInputError
from .field.bb import P, TWO_ADICITY

# The configurations in this module target 100 bits with BabyBear^4 challenges.
CHALLENGE_FIELD_BITS = 4 * math.log2(P)  # 123.62756238530045 (pcs.md §1.3)
SECURITY_BITS_TARGET = 100
WHIR_MAX_LOG_FINAL_POLY_LEN = 10
DEFAULT_K_WHIR = 4
DEFAULT_WHIR_QUERY_PHASE_POW_BITS = 20
MAX_APP_LOG_STACKED_HEIGHT = 24
APP_MAX_CONSTRAINT_DEGREE = 3
RECURSION_MAX_CONSTRAINT_DEGREE = 4
MIN_BABY_BEAR_LOGUP_POW_BITS = 18


# ------------------------------------------------------------------ proximity regimes
class WhirProximity:
    """Proximity strategy of WHIR (``WhirProximityStrategy``): one of :class:`UniqueDecoding`,
    :class:`SplitUniqueList`, :class:`ListDecoding`. ``VARIANT`` is the postcard enum index.

    :meth:`in_round` gives the regime of one WHIR round, itself a :class:`UniqueDecoding` or a
    :class:`ListDecoding` (the reference's ``ProximityRegime``)."""

    VARIANT: int

    def in_round(self, whir_round: int) -> "WhirProximity":
        raise InvalidInputError(f"{self!r} is not a WHIR proximity strategy")

    def max_agreement(self, log_inv_rate: int) -> float:
        """Largest agreement fraction of a far word with the code (per-query evasion
        probability) in this regime, clamped to ``[smallest positive f64, 1]``."""
        rho = 2.0 ** (-log_inv_rate)
        if isinstance(self, UniqueDecoding):
            agreement = (1.0 + rho) / 2.0
        elif isinstance(self, ListDecoding):
            agreement = math.sqrt(rho) * (1.0 + 1.0 / (2.0 * max(self.m, 1)))
        else:
            raise InvalidInputError(f"{self!r} is a strategy, not the regime of one round")
        return min(max(agreement, 2.2250738585072014e-308), 1.0)

    def per_query_security_bits(self, log_inv_rate: int) -> float:
        return -math.log2(self.max_agreement(log_inv_rate))


@dataclass(frozen=True)
class UniqueDecoding(WhirProximity):
    VARIANT = 0

    def in_round(self, whir_round: int) -> WhirProximity:
        return self


@dataclass(frozen=True)
class SplitUniqueList(WhirProximity):
    """Unique decoding in rounds ``< list_start_round``, list decoding with multiplicity ``m``
    afterwards."""

    m: int
    list_start_round: int
    VARIANT = 1

    def in_round(self, whir_round: int) -> WhirProximity:
        return UniqueDecoding() if whir_round < self.list_start_round else ListDecoding(self.m)


@dataclass(frozen=True)
class ListDecoding(WhirProximity):
    m: int
    VARIANT = 2

    def in_round(self, whir_round: int) -> WhirProximity:
        return self


# ------------------------------------------------------------------ parameter structs
@dataclass(frozen=True)
class WhirRoundConfig:
    num_queries: int


@dataclass(frozen=True)
class WhirConfig:
    k: int
    rounds: tuple  # tuple[WhirRoundConfig, ...], one per WHIR round
    mu_pow_bits: int
    query_phase_pow_bits: int
    folding_pow_bits: int
    proximity: WhirProximity

    def __post_init__(self):
        object.__setattr__(self, "rounds", tuple(self.rounds))
        if self.k < 1:
            raise InvalidInputError(f"WHIR folding factor k must be >= 1, got {self.k}")
        for r in self.rounds:
            if not isinstance(r, WhirRoundConfig) or r.num_queries < 1:
                raise InvalidInputError(f"every WHIR round needs >= 1 query, got {r!r}")

    @property
    def num_whir_rounds(self) -> int:
        return len(self.rounds)

    @property
    def num_sumcheck_rounds(self) -> int:
        return self.k * len(self.rounds)

    def log_final_poly_len(self, log_stacked_height: int) -> int:
        return log_stacked_height - self.num_sumcheck_rounds


@dataclass(frozen=True)
class LogUpSecurityParameters:
    max_interaction_count: int
    log_max_message_length: int
    pow_bits: int


@dataclass(frozen=True)
class SystemParams:
    l_skip: int
    n_stack: int
    w_stack: int
    log_blowup: int
    whir: WhirConfig
    logup: LogUpSecurityParameters
    max_constraint_degree: int

    def __post_init__(self):
        m, k, rounds = self.l_skip + self.n_stack, self.whir.k, len(self.whir.rounds)
        if min(self.l_skip, self.n_stack, self.w_stack, self.log_blowup) < 0:
            raise InvalidInputError("l_skip, n_stack, w_stack and log_blowup must be non-negative")
        if rounds == 0:
            raise InvalidInputError(
                f"invalid parameters: zero WHIR rounds (log_stacked_height {m} does not exceed "
                "the final polynomial length target)")
        if k * rounds > m:
            raise InvalidInputError(
                f"invalid parameters: k·R = {k}·{rounds} exceeds log_stacked_height {m}")
        if m + self.log_blowup > TWO_ADICITY:
            raise InvalidInputError(
                f"RS domain 2^{m + self.log_blowup} exceeds the two-adicity 2^{TWO_ADICITY}")

    @property
    def log_stacked_height(self) -> int:
        return self.l_skip + self.n_stack

    @property
    def k_whir(self) -> int:
        return self.whir.k

    @property
    def num_whir_rounds(self) -> int:
        return self.whir.num_whir_rounds

    @property
    def num_whir_sumcheck_rounds(self) -> int:
        return self.whir.num_sumcheck_rounds

    def log_final_poly_len(self) -> int:
        return self.whir.log_final_poly_len(self.log_stacked_height)

    def whir_num_queries(self) -> list:
        return [r.num_queries for r in self.whir.rounds]

    @staticmethod
    def new_for_testing(log_trace_height: int) -> "SystemParams":
        """Toy-security parameters for traces up to ``2^log_trace_height`` (``l = 4``,
        ``k = 4``, max constraint degree 4). Not for production."""
        if log_trace_height < 4:
            raise InvalidInputError("new_for_testing needs log_trace_height >= l_skip = 4")
        return system_params_small_with_poly_len(
            4, log_trace_height - 4, 4, log_trace_height % 4, max_constraint_degree=4)


# ------------------------------------------------------------------ builders
def num_queries(regime: WhirProximity, protocol_security_level: int, log_inv_rate: int) -> int:
    """Queries of one WHIR round: ``ceil(level / per_query_bits)`` in IEEE f64 (``WhirConfig::queries``)."""
    per_query_bits = regime.per_query_security_bits(log_inv_rate)
    if per_query_bits <= 0.0:
        raise InvalidInputError(f"rate 2^-{log_inv_rate} gives no security per query")
    return math.ceil(protocol_security_level / per_query_bits)


def whir_config(log_blowup: int, log_stacked_height: int, *, k: int, log_final_poly_len: int,
                query_phase_pow_bits: int, folding_pow_bits: int, mu_pow_bits: int,
                proximity: WhirProximity, security_bits: int) -> WhirConfig:
    """``WhirConfig::new``: ``R = ceil(max(0, m − target)/k)`` rounds; round ``i`` is queried at
    rate ``2^-(log_blowup + i(k−1))`` with enough queries for ``security_bits − query PoW``."""
    if k < 1:
        raise InvalidInputError(f"WHIR folding factor k must be >= 1, got {k}")
    level = max(0, security_bits - query_phase_pow_bits)
    num_rounds = -(-max(0, log_stacked_height - log_final_poly_len) // k)
    rounds, log_inv_rate = [], log_blowup
    for rnd in range(num_rounds):
        rounds.append(WhirRoundConfig(num_queries(proximity.in_round(rnd), level, log_inv_rate)))
        log_inv_rate += k - 1
    return WhirConfig(k=k, rounds=tuple(rounds), mu_pow_bits=mu_pow_bits,
                      query_phase_pow_bits=query_phase_pow_bits,
                      folding_pow_bits=folding_pow_bits, proximity=proximity)


def log2_pcs_list_size(regime: WhirProximity, log_inv_rate: int) -> float:
    """``log2`` of the PCS list size of a regime (soundness calculator, BCHKS25 reference
    degrees): 0 for unique decoding, ``log2(max(m,1) + 1/2) + log_inv_rate/2`` for list
    decoding when ``γ = 1 − √ρ − √ρ/(2m) > 0``; otherwise the bound is void (error)."""
    if isinstance(regime, UniqueDecoding):
        return 0.0
    m_eff = max(regime.m, 1)
    rho = 2.0 ** (-log_inv_rate)
    sqrt_rho = math.sqrt(rho)
    gamma = 1.0 - sqrt_rho - sqrt_rho / (2.0 * m_eff)
    if (m_eff == 1 and rho >= 4.0 / 9.0) or gamma <= 0.0:
        raise InvalidInputError(
            f"list decoding with m = {regime.m} at rate 2^-{log_inv_rate} has no valid list-size bound")
    return math.log2(m_eff + 0.5) + 0.5 * log_inv_rate


def log_up_security_params_baby_bear_100_bits(log2_list_size: float) -> LogUpSecurityParameters:
    """LogUp PoW so that ``challenge_bits − log2(2p) − 7 − log2_list_size + pow >= 100`` (min 18)."""
    if not (math.isfinite(log2_list_size) and log2_list_size >= 0.0):
        raise InvalidInputError("log2_list_size must be finite and non-negative")
    max_interaction_count, log_max_message_length = P, 7
    security_without_pow = (CHALLENGE_FIELD_BITS - math.log2(2.0 * max_interaction_count)
                            - log_max_message_length - log2_list_size)
    pow_bits = max(MIN_BABY_BEAR_LOGUP_POW_BITS,
                   max(0, math.ceil(SECURITY_BITS_TARGET - security_without_pow)))
    return LogUpSecurityParameters(max_interaction_count, log_max_message_length, pow_bits)


def params_with_100_bits_security(*, log_blowup: int, l_skip: int, n_stack: int, w_stack: int,
                                  folding_pow_bits: int, mu_pow_bits: int,
                                  proximity: WhirProximity, max_constraint_degree: int,
                                  query_phase_pow_bits: int = DEFAULT_WHIR_QUERY_PHASE_POW_BITS,
                                  k_whir: int = DEFAULT_K_WHIR) -> SystemParams:
    """stark-sdk ``params_with_100_bits_security``: WHIR queries for 100 bits, final length
    target ``2^10``, LogUp PoW calibrated to the list size of WHIR round 0."""
    m = l_skip + n_stack
    logup = log_up_security_params_baby_bear_100_bits(
        log2_pcs_list_size(proximity.in_round(0), log_blowup))
    whir = whir_config(log_blowup, m, k=k_whir, log_final_poly_len=WHIR_MAX_LOG_FINAL_POLY_LEN,
                       query_phase_pow_bits=query_phase_pow_bits,
                       folding_pow_bits=folding_pow_bits, mu_pow_bits=mu_pow_bits,
                       proximity=proximity, security_bits=SECURITY_BITS_TARGET)
    return SystemParams(l_skip=l_skip, n_stack=n_stack, w_stack=w_stack, log_blowup=log_blowup,
                        whir=whir, logup=logup, max_constraint_degree=max_constraint_degree)


def app_params_with_100_bits_security(log_stacked_height: int) -> SystemParams:
    """App-VM preset (pcs.md §9.3): ``l = 4``, rate 1/2, ``w_stack = 2048``, unique decoding.
    ``log_stacked_height`` must be in ``[11, 24]`` (at most 10 gives zero WHIR rounds)."""
    if log_stacked_height > MAX_APP_LOG_STACKED_HEIGHT:
        raise InvalidInputError(
            f"log_stacked_height must be <= {MAX_APP_LOG_STACKED_HEIGHT}, got {log_stacked_height}")
    return params_with_100_bits_security(
        log_blowup=1, l_skip=4, n_stack=max(0, log_stacked_height - 4), w_stack=2048,
        folding_pow_bits=5, mu_pow_bits=15, proximity=UniqueDecoding(),
        max_constraint_degree=APP_MAX_CONSTRAINT_DEGREE)


def leaf_params_with_100_bits_security() -> SystemParams:
    return params_with_100_bits_security(
        log_blowup=2, l_skip=4, n_stack=17, w_stack=2048, folding_pow_bits=4, mu_pow_bits=13,
        proximity=UniqueDecoding(), max_constraint_degree=RECURSION_MAX_CONSTRAINT_DEGREE)


def internal_params_with_100_bits_security() -> SystemParams:
    return params_with_100_bits_security(
        log_blowup=3, l_skip=2, n_stack=17, w_stack=512, folding_pow_bits=18, mu_pow_bits=20,
        proximity=ListDecoding(2), max_constraint_degree=RECURSION_MAX_CONSTRAINT_DEGREE)


def root_params_with_100_bits_security() -> SystemParams:
    return params_with_100_bits_security(
        log_blowup=4, l_skip=2, n_stack=18, w_stack=18, folding_pow_bits=15, mu_pow_bits=15,
        proximity=ListDecoding(1), max_constraint_degree=RECURSION_MAX_CONSTRAINT_DEGREE,
        query_phase_pow_bits=15)


def hook_params_with_100_bits_security() -> SystemParams:
    return params_with_100_bits_security(
        log_blowup=2, l_skip=2, n_stack=18, w_stack=80, folding_pow_bits=12, mu_pow_bits=11,
        proximity=ListDecoding(1), max_constraint_degree=RECURSION_MAX_CONSTRAINT_DEGREE)


# ------------------------------------------------------------------ test parameters
def whir_config_small(log_blowup: int, log_stacked_height: int, k_whir: int,
                      log_final_poly_len: int) -> WhirConfig:
    """Toy WHIR config of the reference test utilities: 5 security bits, query PoW 1,
    folding PoW 2, μ PoW 3, ``SplitUniqueList{m: 3, list_start_round: 1}``."""
    return whir_config(log_blowup, log_stacked_height, k=k_whir,
                       log_final_poly_len=log_final_poly_len, query_phase_pow_bits=1,
                       folding_pow_bits=2, mu_pow_bits=3,
                       proximity=SplitUniqueList(m=3, list_start_round=1), security_bits=5)


def system_params_small_with_poly_len(l_skip: int, n_stack: int, k_whir: int,
                                      log_final_poly_len: int,
                                      max_constraint_degree: int = 3) -> SystemParams:
    if log_final_poly_len >= l_skip + n_stack:
        raise InvalidInputError("log_final_poly_len must be below log_stacked_height")
    return SystemParams(
        l_skip=l_skip, n_stack=n_stack, w_stack=1 << 12, log_blowup=1,
        whir=whir_config_small(1, l_skip + n_stack, k_whir, log_final_poly_len),
        logup=LogUpSecurityParameters(max_interaction_count=1 << 30, log_max_message_length=7,
                                      pow_bits=2),
        max_constraint_degree=max_constraint_degree)


def system_params_small(l_skip: int, n_stack: int, k_whir: int) -> SystemParams:
    """Toy parameters (constraints.md §9.7): final length ``2^((l + n) mod k)``."""
    return system_params_small_with_poly_len(l_skip, n_stack, k_whir,
                                                  (l_skip + n_stack) % k_whir)


def default_test_params_small() -> SystemParams:
    """``system_params_small(l=2, n_stack=8, k_whir=3)``."""
    return system_params_small(2, 8, 3)
