"""The course's exercises, one ``notebook_NN()`` function per notebook.

Each returns an ``ExerciseSet`` (see ``mmcourse.exercises``); a notebook uses
``ex = notebook_02()`` and then ``ex.q1.check(...)``. Every exercise carries a
``reference`` (right answer) and ``wrong`` answers, and
``tests/test_course_exercises.py`` checks each one with both.
"""

from __future__ import annotations

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, expect_function, expect_model, expect_value
