"""Teacher copies (``python -m mmcourse exercises --solutions``), the starter-cell mapping they
rest on, and the generated exercise list and schedule (mmcourse.teaching).

``make test`` executes the teacher copies: the root conftest.py runs each course notebook
under nbval with its starter cells swapped for their solutions, and a last item per notebook
checks that every exercise recorded "correct". What nbval then no longer executes, the
starter cells, is checked here from the stored notebooks.
"""

import json
import re
import subprocess
import sys

import pytest

from mmcourse import NOTEBOOKS_DIR, REPO_ROOT, teaching
from mmcourse.__main__ import main

LESSONS = teaching.lesson_notebooks()
SETS = teaching.exercise_sets()


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _code(*sources):
    return {"cells": [{"cell_type": "code", "source": s, "outputs": [], "metadata": {}}
                      for s in sources]}


def test_every_exercise_set_has_its_notebook_and_every_notebook_its_set():
    for number in SETS:
        assert number in LESSONS, f"notebook_{number}() has no notebooks/{number}_*.ipynb"
        assert teaching.sets_used(_load(LESSONS[number])) == [number], LESSONS[number].name
    for number, path in LESSONS.items():
        assert number in SETS, f"{path.name} has no exercises (mmcourse/exercises_{number}.py)"


@pytest.mark.parametrize("number", sorted(SETS))
def test_each_starter_cell_maps_to_its_question_and_its_stored_output_is_not_attempted(number):
    notebook = _load(LESSONS[number])
    questions = [exercise.name for exercise in SETS[number]()]
    cells = teaching.starter_cells(notebook, questions)  # raises if a cell cannot be mapped
    assert list(cells) == questions
    assert sorted(cells.values()) == list(cells.values()), "starter cells out of order"
    for question, index in cells.items():
        outputs = notebook["cells"][index]["outputs"]
        shown = ["".join(o["data"]["text/markdown"]) for o in outputs
                 if "text/markdown" in o.get("data", {})]  # what it prints may come before
        assert shown == [f'<span style="color:#1565c0">**Not attempted:**</span> replace '
                         f'`____` with your answer to {question}.'], \
            f"{LESSONS[number].name} cell {index} ({question}): {shown}"


def test_the_mapping_names_what_is_wrong():
    ok = _code("from mmcourse.exercises import ____\nex = notebook_00()",
               "x = ____\nex.q1.check(x)", "ex.q1.hint()", "def f():\n    return ____\n\n"
               "\nex.q2.check(f)")
    assert teaching.starter_cells(ok, ["q1", "q2"]) == {"q1": 1, "q2": 3}
    for notebook, message in [
        (_code("x = ____"), r"cell 0 holds ____ and checks nothing"),
        (_code("ex.q1.check(____)\nex.q2.check(____)"), r"checks \['q1', 'q2'\]"),
        (_code("ex.q1.check(____)", "ex.q1.check(____ + 1)"), "cells 0 and 1 are both"),
        (_code("ex.q1.check(____)"), "no starter cell .* for q2"),
    ]:
        with pytest.raises(ValueError, match=message):
            teaching.starter_cells(notebook, ["q1", "q2"])
    with pytest.raises(ValueError, match="notebook_99\\(\\), which mmcourse.course_exercises"):
        teaching.solution_cells(_code("ex = notebook_99()"))


def test_teacher_copies_differ_from_the_notebooks_only_in_the_solution_cells(tmp_path, capsys):
    assert main(["exercises", "--solutions", str(tmp_path / "teacher")]) == 0
    assert "teacher copies" in capsys.readouterr().out
    originals = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == [p.name for p in originals]
    for path in originals:
        original, copy = _load(path), _load(tmp_path / "teacher" / path.name)
        assert len(copy["cells"]) == len(original["cells"]) and copy.keys() == original.keys()
        number = path.name[:2]
        exercises = {e.name: e for e in SETS[number]()} if number in SETS else {}
        starters = teaching.starter_cells(original, list(exercises)) if exercises else {}
        by_index = {index: exercises[q] for q, index in starters.items()}
        for index, (old, new) in enumerate(zip(original["cells"], copy["cells"], strict=True)):
            if index not in by_index:
                assert new == old, f"{path.name} cell {index} changed"
                continue
            exercise = by_index[index]
            text = teaching.source(new)
            imports = [line.strip() for line in teaching.source(old).splitlines()
                       if line.lstrip().startswith(("import ", "from ")) and "____" not in line]
            assert text == "".join(f"{line}\n" for line in imports) + (
                f"# BEGIN SOLUTION\n{exercise.solution_code.strip()}\n# END SOLUTION")
            assert f"ex.{exercise.name}.check(" in text and "____" not in text
            assert new["outputs"] == [] and new["execution_count"] is None


def test_nbval_runs_each_course_notebook_as_its_teacher_copy():
    """The root conftest adds a "solutions correct" item after each notebook's cells."""
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "notebooks"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120).stdout
    for path in LESSONS.values():
        items = [line for line in listing.splitlines() if line.startswith(f"notebooks/"
                                                                          f"{path.name}::")]
        assert items and items[-1].endswith("::solutions correct"), path.name


# --- the exercise list and the schedule ----------------------------------------------------


def _index_text():
    return "\n".join(teaching.source(c) for c in _load(teaching.INDEX_NOTEBOOK)["cells"])


def test_the_committed_exercise_lists_are_the_generated_one():
    generated = teaching.exercise_list(markdown=True)
    for name, text in (("docs/TEACHING.md", teaching.TEACHING_MD.read_text(encoding="utf-8")),
                       ("notebooks/index.ipynb", _index_text())):
        assert teaching.committed_block(text, "exercises") == generated, \
            f"{name} lists other exercises than the code: run {teaching.SYNC_COMMAND}"


def test_the_list_names_every_exercise():
    text = teaching.exercise_list(markdown=True)
    for number, factory in SETS.items():
        assert f"**{number} · " in text
        for exercise in factory():
            assert f"- `{exercise.name}`" in text
    plain = teaching.exercise_list()
    assert "**" not in plain and plain.count("\n  q") == sum(len(f()) for f in SETS.values())


def test_the_committed_schedule_has_a_row_per_lesson():
    """Its minutes come from the stored runs, so they change whenever a notebook is executed
    again; only its rows are held to the code."""
    for text in (teaching.TEACHING_MD.read_text(encoding="utf-8"), _index_text()):
        rows = re.findall(r"^\| \[(\w+)\]", teaching.committed_block(text, "schedule"), re.M)
        assert rows == [path.stem for path in LESSONS.values()]


def test_run_seconds_sums_the_cells_stored_execution_times():
    times = {"iopub.execute_input": "2026-11-29T09:24:05.000000Z",
             "shell.execute_reply": "2026-11-29T09:24:07.500000Z"}
    notebook = {"cells": [{"cell_type": "code", "metadata": {"execution": times}},
                          {"cell_type": "code", "metadata": {}},
                          {"cell_type": "markdown", "metadata": {}}] * 2}
    assert teaching.run_seconds(notebook) == 5.0
