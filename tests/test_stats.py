"""mmcourse.stats (notebook 06) against hand-computed values."""

import pytest

from mmcourse import stats


def test_mean_std_by_hand():
    # mean 2, deviations -1, 0, 1: sample variance (1 + 0 + 1) / 2 = 1
    assert stats.mean_std([1, 2, 3]) == (2.0, 1.0)
    assert stats.mean_std([0.5]) == (0.5, 0.0)


def test_interval95_uses_students_t():
    low, high = stats.interval95([1, 2, 3])  # t(2 dof) = 4.303, std 1, n 3
    assert high - 2 == pytest.approx(4.303 / 3 ** 0.5)
    assert low == pytest.approx(4 - high)
    assert stats.interval95([7.0]) == (7.0, 7.0)


def test_format_mean_std():
    assert stats.format_mean_std([0.95, 0.96, 0.97]) == "0.960 ± 0.010 (n=3)"
    assert stats.format_mean_std([1, 2, 3], digits=1) == "2.0 ± 1.0 (n=3)"
    assert stats.format_mean_std([0.7371]) == "0.737 (n=1)"


def test_within_noise_by_hand():
    # standard error sqrt(1/3 + 1/3) = 0.816: a difference of 1.5 < 1.63 is noise, 1.7 is not
    assert stats.within_noise([1, 2, 3], [2.5, 3.5, 4.5])
    assert not stats.within_noise([1, 2, 3], [2.7, 3.7, 4.7])
    assert not stats.within_noise([0.90, 0.91, 0.92], [0.60, 0.61, 0.62])


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17: 857-872, Table I, method 3 (score interval without continuity correction)
NEWCOMBE = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)),
            ((0, 20), (0.0, 0.1611)), ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE, ids=[str(c) for c, _ in NEWCOMBE])
def test_proportion_interval95_is_newcombes_score_interval(counts, expected):
    assert stats.proportion_interval95(*counts) == pytest.approx(expected, abs=5e-5)


def test_proportion_interval95_mirrors_and_refuses_bad_counts():
    low, high = stats.proportion_interval95(3, 1000)
    assert stats.proportion_interval95(997, 1000) == pytest.approx((1 - high, 1 - low))
    for count, trials in [(5, 4), (-1, 10), (1, 0), (1.5, 10), (True, 10)]:
        with pytest.raises(ValueError, match="count and trials must be whole numbers"):
            stats.proportion_interval95(count, trials)


@pytest.mark.parametrize("bad", [[], [[1, 2]], [1, float("nan")], "abc"])
def test_bad_values_are_named(bad):
    with pytest.raises(ValueError, match="values must be a non-empty 1-D sequence"):
        stats.mean_std(bad)


def test_within_noise_needs_two_runs_a_side():
    with pytest.raises(ValueError, match="at least 2 runs on each side"):
        stats.within_noise([0.9], [0.8, 0.7])
