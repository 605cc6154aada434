"""Statistics for comparisons over seeds: mean, standard deviation, interval, "within noise"
(introduced in notebook 06).

A conclusion such as "model A beats model B" is drawn from several runs with different
seeds, never from one: the spread between seeds is the noise a difference must exceed.
``accuracy_by_type`` scores answers by question kind, relational or not (notebooks 06 and
08). NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

#: Two-sided 95% quantiles of Student's t for 1..10 degrees of freedom (then about 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def _values(name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        array = np.array([np.nan])
    if array.ndim != 1 or array.size < 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers, got "
                         f"{values!r}")
    return array


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation with n - 1; 0.0 for a single value).
    Introduced in notebook 06."""
    array = _values("values", values)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def interval95(values) -> tuple[float, float]:
    """The 95% confidence interval of the mean, mean -/+ t * std / sqrt(n) (Student's t
    with n - 1 degrees of freedom); (mean, mean) for a single value. Introduced in
    notebook 06."""
    array = _values("values", values)
    mean, std = mean_std(array)
    if array.size < 2:
        return mean, mean
    t = _T95[array.size - 2] if array.size - 1 <= len(_T95) else 1.96
    half = t * std / math.sqrt(array.size)
    return mean - half, mean + half


def proportion_interval95(count, trials) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion, ``count`` events in ``trials``
    (Newcombe 1998, method 3): unlike p -/+ 1.96 * sqrt(p (1 - p) / n) it stays inside
    [0, 1] and is not empty for 0 events. Notebook 10 bounds the decisions int8 changes
    with it."""
    valid = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                for v in (count, trials))
    if not valid or not 0 <= count <= trials or trials < 1:
        raise ValueError(f"count and trials must be whole numbers with 0 <= count <= trials "
                         f"and trials >= 1, got {count!r} and {trials!r}")
    z, n = 1.959964, float(trials)
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def format_mean_std(values, digits: int = 3) -> str:
    """"0.953 ± 0.004 (n=3)": how the course reports a measurement over seeds; a single
    run is "0.953 (n=1)", with no spread to show. Introduced in notebook 06."""
    array = _values("values", values)
    mean, std = mean_std(array)
    if array.size == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={array.size})"


def seed_summary(values: dict, higher_is_better: bool = True) -> dict:
    """One measure over seeds, {seed: value}: ``mean`` and ``std`` (``mean_std``),
    ``worst`` and ``worst_seed`` (the lowest value when ``higher_is_better``, else the
    highest; the smallest such seed on a tie), ``seeds`` (sorted) and ``values`` (in that
    order). A target that must hold on every seed is met when the worst seed meets it.
    Introduced in notebook 06 (``bench relations``)."""
    if not isinstance(values, dict) or not values:
        raise ValueError(f"values must be a non-empty dict {{seed: value}}, got {values!r}")
    seeds = sorted(values)
    numbers = _values("values", [values[seed] for seed in seeds])
    worst = numbers.min() if higher_is_better else numbers.max()
    mean, std = mean_std(numbers)
    return {"mean": mean, "std": std, "worst": float(worst),
            "worst_seed": seeds[int(np.flatnonzero(numbers == worst)[0])], "seeds": seeds,
            "values": [float(v) for v in numbers]}


def within_noise(a, b) -> bool:
    """Whether the means of two sets of runs differ by less than twice the standard error
    of their difference, sqrt(s_a^2 / n_a + s_b^2 / n_b) (Welch): a difference that small
    is not evidence that one is better. With a single run on either side there is no
    estimate of the noise, so this raises a ValueError. Introduced in notebook 06."""
    a, b = _values("a", a), _values("b", b)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"within_noise needs at least 2 runs on each side to estimate the "
                         f"noise, got {a.size} and {b.size}")
    standard_error = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return bool(abs(a.mean() - b.mean()) < 2 * standard_error)


#: Question and statement kinds that compare objects or count them: the relational
#: questions of Sort-of-CLEVR (Santoro et al. 2017). Every other kind is non-relational.
RELATIONAL_KINDS = ("nearest shape", "nearest colour", "furthest shape", "furthest colour",
                    "count", "spatial", "distance")


def accuracy_by_type(predictions, labels, kinds) -> dict:
    """Accuracy per question (or statement) kind, and over the two groups.

    ``predictions``: match probabilities (N,) or (N, 1), thresholded at 0.5, or qa answer
    probabilities (N, num_answers), scored by their argmax; ``labels`` (N,); ``kinds``
    the records' ``kind`` (N,). Returns ``{"relational": ..., "non_relational": ...,
    kind: ...}`` with the kinds sorted; a group with no example is ``None``.
    Introduced in notebook 06 (``mmcourse.train.tasks.accuracy_by_type``); notebook 08 scores
    generated answers with it.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    kinds = np.asarray(kinds, dtype=object)
    if not len(predictions) == len(labels) == len(kinds):
        raise ValueError(f"predictions, labels and kinds must have the same length, got "
                         f"{len(predictions)}, {len(labels)} and {len(kinds)}")
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        correct = predictions.argmax(axis=1) == labels
    else:
        correct = (predictions.reshape(-1) > 0.5) == (labels > 0.5)
    relational = np.isin(kinds, RELATIONAL_KINDS)

    def mean(selected):
        return float(correct[selected].mean()) if selected.any() else None

    result = {"relational": mean(relational), "non_relational": mean(~relational)}
    for kind in sorted(set(kinds)):
        result[kind] = mean(kinds == kind)
    return result
