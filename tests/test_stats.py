"""The statistics behind experiment reports and evaluations, against published reference values
(t tables, Wilson's interval, an exact binomial test, a textbook Welch test)."""

from __future__ import annotations

import pytest

from chatgate.stats import mcnemar, mean_interval, t_quantile, two_proportions, welch, wilson


@pytest.mark.parametrize(
    ("df", "expected", "tolerance"),
    [(3, 3.1824, 0.005), (5, 2.5706, 0.001), (10, 2.2281, 0.001), (30, 2.0423, 0.001)],
)
def test_t_quantile_matches_the_table(df: int, expected: float, tolerance: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=tolerance)


def test_intervals() -> None:
    interval = wilson(8, 10)
    assert (interval.low, interval.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    mean = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (mean.estimate, mean.low, mean.high) == pytest.approx((3.0, 1.0368, 4.9632), abs=1e-3)


def test_welch_matches_a_hand_computation() -> None:
    # t = 1.044 on about 7.9 degrees of freedom: two-sided p = 0.327
    result = welch([1, 2, 3, 4, 5], [2, 3, 4, 5, 6.5])
    assert result.difference == pytest.approx(1.1)
    assert result.p_value == pytest.approx(0.327, abs=0.01)
    assert welch([2, 3] * 40, [4, 5] * 40).p_value < 1e-6


def test_proportions_and_paired() -> None:
    result = two_proportions((40, 100), (55, 100))
    assert result.difference == pytest.approx(0.15)
    assert result.p_value == pytest.approx(0.0339, abs=0.002)
    assert mcnemar(2, 10) == pytest.approx(0.0386, abs=1e-4)  # exact binomial, 2 of 12
    assert mcnemar(0, 0) == 1.0
