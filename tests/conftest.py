"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture(scope="session")
def course_data():
    """The default course datasets under mmcourse.DATA_DIR, generated once if missing."""
    from mmcourse.data.store import ensure_data

    return ensure_data()
