"""The few statistics experiments and evaluations need: intervals for a mean and a proportion,
and two-sided tests comparing two groups (Welch's t, two proportions, McNemar for paired pass
or fail). Normal approximations are used where the sample sizes make them sound; the t
distribution's quantile comes from a Cornish-Fisher expansion (within 0.005 of the exact value
from 3 degrees of freedom, three decimals from 5), so nothing beyond the standard library is
needed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev

__all__ = [
    "Comparison",
    "Interval",
    "mcnemar",
    "mean_interval",
    "quantile",
    "t_quantile",
    "two_proportions",
    "welch",
    "wilson",
]

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True, slots=True)
class Comparison:
    difference: float
    """Treatment minus control."""
    low: float
    high: float
    p_value: float


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    z = _NORMAL.inv_cdf(p)
    if df == math.inf:
        return z
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_interval(values: list[float], alpha: float = 0.05) -> Interval:
    """The mean with its two-sided ``1 - alpha`` t interval."""
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = fmean(values)
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(1 - alpha / 2, n - 1) * stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def wilson(successes: int, n: int, alpha: float = 0.05) -> Interval:
    """A proportion with its Wilson score interval (sound for small n and extreme rates)."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    z = _NORMAL.inv_cdf(1 - alpha / 2)
    rate = successes / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(rate, max(0.0, centre - half), min(1.0, centre + half), n)


def welch(control: list[float], treatment: list[float], alpha: float = 0.05) -> Comparison:
    """Difference of means (treatment - control), Welch's t interval and two-sided p-value."""
    n1, n2 = len(control), len(treatment)
    if n1 < 2 or n2 < 2:
        return Comparison(math.nan, math.nan, math.nan, math.nan)
    v1, v2 = stdev(control) ** 2 / n1, stdev(treatment) ** 2 / n2
    difference = fmean(treatment) - fmean(control)
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Comparison(difference, difference, difference, 1.0 if difference == 0 else 0.0)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = t_quantile(1 - alpha / 2, df) * se
    t = abs(difference) / se
    # two-sided p from t: the normal tail at the t value mapped back through the quantile
    p = 2 * (1 - _NORMAL.cdf(_t_to_z(t, df)))
    return Comparison(difference, difference - half, difference + half, min(1.0, p))


def _t_to_z(t: float, df: float) -> float:
    """The normal deviate with the same tail as ``t`` (by bisection on ``t_quantile``)."""
    low, high = 0.0, min(t, 7.0)  # beyond 7 sigma the p-value is 0 for every purpose here
    for _ in range(60):
        middle = (low + high) / 2
        if t_quantile(_NORMAL.cdf(middle), df) < t:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def two_proportions(
    control: tuple[int, int], treatment: tuple[int, int], alpha: float = 0.05
) -> Comparison:
    """Difference of two rates ((successes, n) each): interval and two-sided z-test."""
    (s1, n1), (s2, n2) = control, treatment
    if n1 == 0 or n2 == 0:
        return Comparison(math.nan, math.nan, math.nan, math.nan)
    p1, p2 = s1 / n1, s2 / n2
    difference = p2 - p1
    z = _NORMAL.inv_cdf(1 - alpha / 2)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (s1 + s2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = 1.0 if se0 == 0 else 2 * (1 - _NORMAL.cdf(abs(difference) / se0))
    return Comparison(difference, difference - z * se, difference + z * se, p)


def mcnemar(only_control: int, only_treatment: int) -> float:
    """Two-sided p-value of McNemar's exact test for paired pass/fail outcomes: the cases only
    the control passed against those only the treatment passed."""
    n = only_control + only_treatment
    if n == 0:
        return 1.0
    k = min(only_control, only_treatment)
    tail: float = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
