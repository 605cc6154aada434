"""The field checks shared by the course's configurations and layers (mmcourse.configs)."""

import re

import numpy as np
import pytest

from mmcourse.configs import check_positive_ints, is_int, is_number, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(1)])
def test_positive_int_returns_a_python_int(value):
    result = positive_int("units", value)
    assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value", [0, -2, True, False, 1.0, 2.5, "3", None, np.float32(2)])
def test_positive_int_names_the_argument_and_the_value(value):
    with pytest.raises(ValueError, match=f"^{re.escape(f'units must be a positive int, got {value!r}')}$"):
        positive_int("units", value)


def test_is_int_and_is_number_reject_bools():
    assert [is_int(v) for v in (1, np.int32(1), True, 1.0)] == [True, True, False, False]
    assert [is_number(v) for v in (1, 1.5, np.float32(1), True, "1")] == [
        True, True, True, False, False]


def test_check_positive_ints_skips_only_optional_nones():
    class Config:
        epochs, batch_size, patience = 3, None, None

    check_positive_ints(Config, ("epochs",), ("batch_size", "patience"))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got None"):
        check_positive_ints(Config, ("epochs", "batch_size"))
    Config.patience = 0
    with pytest.raises(ValueError, match="patience must be a positive int, got 0"):
        check_positive_ints(Config, ("epochs",), ("patience",))
