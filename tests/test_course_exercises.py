"""Every exercise in the course: placeholder, right answer and wrong answers."""

import inspect

import pytest

from mmcourse import course_exercises
from mmcourse.exercises import ____

SETS = {
    name: factory
    for name, factory in inspect.getmembers(course_exercises, inspect.isfunction)
    if name.startswith("notebook_")
}
EXERCISES = [
    pytest.param(name, index, id=f"{name}-q{index + 1}")
    for name, factory in SETS.items()
    for index in range(len(factory()))
]


def _exercise(name, index):
    return list(SETS[name]())[index]


def test_every_notebook_has_at_least_three_exercises():
    assert SETS, "no notebook_NN() exercise sets found"
    for name, factory in SETS.items():
        assert len(factory()) >= 3, name


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_placeholder_is_not_attempted(name, index):
    assert _exercise(name, index).check(____).status == "not attempted"


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_reference_answer_is_correct(name, index):
    exercise = _exercise(name, index)
    feedback = exercise.check(exercise.reference())
    assert feedback.correct, str(feedback)


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_wrong_answers_are_incorrect_with_a_reason(name, index):
    exercise = _exercise(name, index)
    wrong_answers = exercise.wrong()
    assert wrong_answers, "each exercise needs at least one wrong answer"
    for answer in wrong_answers:
        feedback = exercise.check(answer)
        assert feedback.status == "incorrect", f"{answer!r} was accepted"
        assert len(feedback.message) > 10


@pytest.mark.parametrize(("name", "index"), EXERCISES)
def test_hints_and_solution_render(name, index):
    exercise = _exercise(name, index)
    assert exercise.hints
    assert "Hint" in exercise.hint(1)._repr_markdown_()
    assert exercise.solution().code.strip()
