"""seed_everything: same seed, same numbers; clear errors on bad seeds."""

import numpy as np
import pytest

from mmcourse import seed_everything


def draws(seed):
    import keras

    rng = seed_everything(seed)
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    return rng.normal(size=3), np.random.rand(2), layer.get_weights()[0]


def test_same_seed_gives_identical_numbers():
    first, second = draws(7), draws(7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seed_gives_different_numbers():
    assert not np.array_equal(draws(7)[2], draws(8)[2])


@pytest.mark.parametrize(("seed", "error", "match"), [
    ("x", TypeError, "seed must be an int, got str"),
    (1.5, TypeError, "seed must be an int, got float"),
    (True, TypeError, "seed must be an int, got bool"),
    (-1, ValueError, r"seed must be in \[0, 2\*\*32\), got -1"),
])
def test_bad_seed(seed, error, match):
    with pytest.raises(error, match=match):
        seed_everything(seed)
