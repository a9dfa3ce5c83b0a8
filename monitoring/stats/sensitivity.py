"""Minimum detectable effects: the smallest change a two-sided test can reliably see.

MDE = (z(1 - alpha/2) + z(power)) * s * sqrt(1/n1 + 1/n2). It ignores the test's chance of
rejecting in the wrong direction (below 1e-5 at the usual settings), as the textbook formula does.
"""

from __future__ import annotations

import functools
import math

from scipy import stats

ALPHA = 0.05
POWER = 0.8
CANARY_SHARE = 0.2


@functools.lru_cache(maxsize=16)  # pages ask for it hundreds of times at the same settings
def z_sum(*, alpha: float = ALPHA, power: float = POWER) -> float:
    """z(1 - alpha/2) + z(power): 2.80 at alpha 0.05 and power 0.8."""
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def mde(*, std: float, n1: float, n2: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest absolute difference between two samples of n1 and n2 detected with ``power``."""
    if n1 <= 0 or n2 <= 0:
        return math.inf
    return z_sum(alpha=alpha, power=power) * std * math.sqrt(1 / n1 + 1 / n2)


def mde_proportion(
    *, p: float, n1: float, n2: float, alpha: float = ALPHA, power: float = POWER
) -> float:
    """MDE for a proportion near p, with s = sqrt(p * (1 - p))."""
    return mde(std=math.sqrt(p * (1 - p)), n1=n1, n2=n2, alpha=alpha, power=power)


def canary_split(total_n: float, *, share: float = CANARY_SHARE) -> tuple[float, float]:
    """(canary, rest) sizes when the canary gets ``share`` of the traffic."""
    return share * total_n, (1 - share) * total_n


def mde_canary(
    *,
    std: float,
    total_n: float,
    share: float = CANARY_SHARE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """MDE between a canary taking ``share`` of ``total_n`` and the rest of the traffic."""
    n1, n2 = canary_split(total_n, share=share)
    return mde(std=std, n1=n1, n2=n2, alpha=alpha, power=power)


def relative_mde(*, mde_value: float, baseline: float) -> float | None:
    """MDE as a share of the baseline value; None when the baseline is 0."""
    return mde_value / abs(baseline) if baseline else None


def windows_to_detect(
    *,
    relative_change: float,
    n_per_window: float,
    std: float,
    baseline_value: float,
    alpha: float = ALPHA,
    power: float = POWER,
) -> int | None:
    """How many windows to pool on each side before a relative change becomes detectable.

    Pooling k windows gives n = k * n_per_window on both sides, so the MDE shrinks as
    1/sqrt(k). None when the change or the baseline is 0 (no finite number of windows).
    """
    effect = abs(relative_change * baseline_value)
    if effect == 0 or n_per_window <= 0:
        return None
    k_exact = 2 * (z_sum(alpha=alpha, power=power) * std / effect) ** 2 / n_per_window
    k = max(1, math.ceil(k_exact))
    # Guard against k_exact landing a rounding error above an integer.
    if (
        k > 1
        and mde(
            std=std, n1=(k - 1) * n_per_window, n2=(k - 1) * n_per_window, alpha=alpha, power=power
        )
        <= effect
    ):
        k -= 1
    return k
