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


def test_interval95_t_table_ends_at_ten_degrees_of_freedom():
    # 0, 1, ..., 10: mean 5, sample variance 110 / 10 = 11; 10 degrees of freedom: t = 2.228
    low, high = stats.interval95(list(range(11)))
    assert high == pytest.approx(5 + 2.228 * 11 ** 0.5 / 11 ** 0.5)
    assert low == pytest.approx(5 - 2.228)
    # 0 .. 11: mean 5.5, variance 143 / 11 = 13, 11 degrees of freedom: 1.96
    low, high = stats.interval95(list(range(12)))
    assert high - 5.5 == pytest.approx(1.96 * 13 ** 0.5 / 12 ** 0.5)
    assert stats.interval95([1, 3]) == pytest.approx((2 - 12.706, 2 + 12.706))  # std 2^0.5


def test_within_noise_is_strict_at_twice_the_standard_error():
    # a: variance 8 / 2 runs = 4; b: no spread; standard error 2: a difference of 4 is not noise
    assert not stats.within_noise([-2, 2], [4, 4])
    assert stats.within_noise([-2, 2], [3.99, 3.99])
    assert stats.within_noise([-2, 2], [-3.99, -3.99])
    assert not stats.within_noise([-2, 2], [-4.01, -4.01])


def test_accuracy_by_type_by_hand():
    kinds = ["count", "colour", "count", "shape", "colour"]
    # match probabilities, thresholded at 0.5 (0.5 itself is "no")
    probabilities = [[0.9], [0.5], [0.2], [0.7], [0.6]]
    labels = [1, 0, 1, 0, 1]  # right: yes, yes, no, no, yes
    assert stats.accuracy_by_type(probabilities, labels, kinds) == {
        "relational": 0.5, "non_relational": 2 / 3, "colour": 1.0, "count": 0.5, "shape": 0.0}
    # answer probabilities: the argmax; no relational question gives None
    answers = [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]]
    assert stats.accuracy_by_type(answers, [1, 1, 2], ["colour", "shape", "shape"]) == {
        "relational": None, "non_relational": 2 / 3, "colour": 1.0, "shape": 0.5}
    # two answers are answers too, not two match probabilities
    # (the argmax of each row: 1 and 1; down the columns it would be 1 and 0)
    assert stats.accuracy_by_type([[0.2, 0.8], [0.4, 0.6]], [1, 1], ["count", "count"]) == {
        "relational": 1.0, "non_relational": None, "count": 1.0}
    with pytest.raises(ValueError, match="same length, got 2, 3 and 3"):
        stats.accuracy_by_type([[0.1], [0.2]], [1, 1, 2], ["a", "b", "c"])
