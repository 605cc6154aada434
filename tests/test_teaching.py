"""Teacher copies (``python -m mmcourse exercises --solutions``), the starter-cell mapping they
rest on, and the generated exercise list and schedule (mmcourse.classroom.teaching).

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

from mmcourse import NOTEBOOKS_DIR, REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.classroom import teaching

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
        assert number in SETS, f"{path.name} has no exercises (mmcourse/exercises/notebook_{number}.py)"


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
    # a cell interrupted before its reply has a start and no end: it counts nothing
    started = {"iopub.execute_input": times["iopub.execute_input"]}
    notebook["cells"].append({"cell_type": "code", "metadata": {"execution": started}})
    notebook["cells"].append({"cell_type": "code", "metadata": {"execution": {
        "shell.execute_reply": times["shell.execute_reply"]}}})
    assert teaching.run_seconds(notebook) == 5.0


# --- the schedule and the generated blocks, on a small course built here (issue 28, s. 7) ------
# Every expected value below is worked out by hand from the fake notebooks' words, stored run
# times and exercises, with the learner-time model of docs/TEACHING.md: reading at 100 words a
# minute, 5 minutes an exercise, 10 an experiment, the sum rounded up to 5 minutes.


def _exercise(name, prompt):
    return type("Exercise", (), {"name": name, "prompt": prompt})()


def _lesson(path, title_words, words, seconds):
    """A notebook whose cells hold ``words`` words in all (a "# Title" heading first) and whose
    one code cell ran for ``seconds``."""
    times = {"iopub.execute_input": "2026-11-29T09:00:00Z",
             "shell.execute_reply": f"2026-11-29T09:{seconds // 60:02d}:{seconds % 60:02d}Z"}
    heading = "# " + " ".join(title_words)
    rest = words - 1 - len(title_words) - 1
    cells = [{"cell_type": "markdown", "metadata": {}, "source": heading + "\n" + "w " * rest},
             {"cell_type": "code", "metadata": {"execution": times}, "outputs": [],
              "source": "pass"}]
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")


@pytest.fixture
def small_course(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _lesson(folder / "01_alpha.ipynb", ["Alpha"], 300, 90)     # 3 min reading, 1.5 min run
    _lesson(folder / "02_beta.ipynb", ["Beta"], 100, 0)        # 1 min reading
    _lesson(folder / "03_gamma.ipynb", ["Gamma"], 600, 240)    # 6 min reading, 4 min run
    (folder / "index.ipynb").write_text(json.dumps({"cells": []}), encoding="utf-8")
    sets = {"01": lambda: [_exercise("q1", "Compute x."), _exercise("q2", "Plot y."),
                           _exercise("q3", "  Experiment. Train twice.")],
            "02": lambda: [_exercise("q1", "experiment: vary the seed."),
                           _exercise("q2", "Experiment. Vary the size.")]}
    monkeypatch.setattr(teaching, "NOTEBOOKS_DIR", folder)
    monkeypatch.setattr(teaching, "exercise_sets", lambda: sets)
    return folder


#: 01: 1.5 + 3 + 2 * 5 + 10 = 24.5 -> 25; 02: 0 + 1 + 2 * 10 = 21 -> 25; 03: 4 + 6 = 10 -> 10.
SMALL_SCHEDULE = (
    "| notebook | run (s) | reading (min) | exercises | learner time (min) |\n"
    "|---|---:|---:|---|---:|\n"
    "| [01_alpha](L/01_alpha.ipynb) | 90 | 3 | 3 (1 experiment) | 25 |\n"
    "| [02_beta](L/02_beta.ipynb) | 0 | 1 | 2 (2 experiments) | 25 |\n"
    "| [03_gamma](L/03_gamma.ipynb) | 240 | 6 | 0 | 10 |\n"
    "| total |  |  |  | 60 (1.0 h) |\n")
SMALL_EXERCISES = ("**Alpha**\n\n- `q1` Compute x.\n- `q2` Plot y.\n"
                   "- `q3` Experiment. Train twice.\n\n"
                   "**Beta**\n\n- `q1` experiment: vary the seed.\n- `q2` Experiment. Vary the size.\n")


def test_is_experiment_reads_the_first_word_of_the_prompt():
    assert teaching.is_experiment(_exercise("q", "Experiment. Train it."))
    assert teaching.is_experiment(_exercise("q", "\n  experiment: vary it"))
    assert not teaching.is_experiment(_exercise("q", "Run one experiment."))
    assert not teaching.is_experiment(_exercise("q", "Compute the loss."))
    # the house rule: every lesson has at least one experiment, and it is the last exercise
    for number, factory in SETS.items():
        flags = [teaching.is_experiment(e) for e in factory()]
        assert any(flags), f"notebook_{number}() has no experiment"


def test_schedule_of_a_small_course_by_hand(small_course):
    assert teaching.lesson_notebooks() == {
        "01": small_course / "01_alpha.ipynb", "02": small_course / "02_beta.ipynb",
        "03": small_course / "03_gamma.ipynb"}
    assert teaching.schedule(link_base="L/") == SMALL_SCHEDULE
    assert teaching.schedule() == SMALL_SCHEDULE.replace("](L/", "](")


def test_generated_blocks_are_the_schedule_and_the_markdown_exercise_list(small_course):
    assert teaching.generated_blocks("L/") == {"schedule": SMALL_SCHEDULE,
                                               "exercises": SMALL_EXERCISES}


def _block(name, body):
    return (f"<!-- BEGIN GENERATED {name}: {teaching.SYNC_COMMAND} -->\n{body}"
            f"<!-- END GENERATED {name} -->")


def test_sync_docs_rewrites_only_the_generated_blocks_and_then_nothing(small_course, tmp_path,
                                                                         monkeypatch):
    teaching_md, index = tmp_path / "TEACHING.md", tmp_path / "index.ipynb"
    monkeypatch.setattr(teaching, "TEACHING_MD", teaching_md)
    monkeypatch.setattr(teaching, "INDEX_NOTEBOOK", index)
    teaching_md.write_text("# Teaching\n\nkept 1\n" + _block("SCHEDULE", "old\n") + "\nkept 2\n"
                           + _block("EXERCISES", "- `q9` gone\n") + "\nkept 3\n",
                           encoding="utf-8")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Index\n"]},
             {"cell_type": "markdown", "metadata": {},
              "source": ("Plan:\n" + _block("SCHEDULE", "stale\n")).splitlines(keepends=True)},
             {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": [_block("EXERCISES", "code cells are not docs\n")]},
             {"cell_type": "markdown", "metadata": {},
              "source": _block("EXERCISES", "").splitlines(keepends=True)}]
    index.write_text(json.dumps({"cells": cells}), encoding="utf-8")

    assert teaching.sync_docs() == [teaching_md, index]
    assert teaching_md.read_text(encoding="utf-8") == (
        "# Teaching\n\nkept 1\n"
        + _block("SCHEDULE", SMALL_SCHEDULE.replace("](L/", "](../notebooks/")) + "\nkept 2\n"
        + _block("EXERCISES", SMALL_EXERCISES) + "\nkept 3\n")
    synced = json.loads(index.read_text(encoding="utf-8"))["cells"]
    assert synced[0] == cells[0] and synced[2] == cells[2]
    assert "".join(synced[1]["source"]) == "Plan:\n" + _block(
        "SCHEDULE", SMALL_SCHEDULE.replace("](L/", "]("))
    assert "".join(synced[3]["source"]) == _block("EXERCISES", SMALL_EXERCISES)
    assert teaching.sync_docs() == []  # in sync: nothing written

    teaching_md.write_text("# Teaching\n" + _block("SCHEDULE", "x\n"), encoding="utf-8")
    with pytest.raises(ValueError, match="BEGIN GENERATED EXERCISES"):
        teaching.sync_docs()


def test_teacher_copies_go_into_a_new_nested_folder_and_can_be_written_again(small_course,
                                                                              tmp_path):
    out = tmp_path / "class" / "teacher"
    for _ in range(2):  # the second time over the first
        written = teaching.write_teacher_copies(out, notebooks_dir=small_course)
        assert written == [out / name for name in ("01_alpha.ipynb", "02_beta.ipynb",
                                                   "03_gamma.ipynb", "index.ipynb")]
    for path in written:  # no exercise set is used: each copy is its notebook
        assert _load(path) == _load(small_course / path.name)
        # in the notebooks' own layout: one space of indent, a final newline
        assert path.read_text(encoding="utf-8") == json.dumps(_load(path), indent=1) + "\n"
