"""Root pytest configuration, shared by the unit tests and nbval.

nbval runs each course notebook as its teacher copy (``mmcourse.classroom.teaching``): every exercise
starter cell is swapped for its reference solution, the kernel records each check
(``MMCOURSE_RECORD``), and a last item per notebook, "solutions correct", fails unless every
exercise recorded "correct". Every other cell runs and is compared as stored, so each notebook
executes once. The starter cells' stored "Not attempted" is checked by tests/test_teaching.py.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Quiet TensorFlow's C++ logs in every process pytest starts, kernels included.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collectstart(collector):
    """Compare notebook outputs without stderr: TensorFlow logs there, and they vary."""
    if getattr(collector, "path", None) is not None and collector.path.suffix == ".ipynb":
        collector.skip_compare += ("stderr",)


class SolutionsCorrect(pytest.Item):
    """After a notebook's last cell: every exercise it uses recorded "correct" last."""

    def __init__(self, *, record, expected, problem, **kwargs):
        super().__init__(**kwargs)
        self.record, self.expected, self.problem = record, expected, problem

    def runtest(self):
        if self.problem:
            raise AssertionError(f"cannot build the teacher copy: {self.problem}")
        from mmcourse.exercises import record

        last = {(entry["notebook"], entry["question"]): entry
                for entry in record.read(self.record)}
        wrong = [f"{n} {q}: " + (f"{last[(n, q)]['status']}: {last[(n, q)]['message']}"
                                 if (n, q) in last else "never checked")
                 for n, q in self.expected if last.get((n, q), {}).get("status") != "correct"]
        if wrong:
            raise AssertionError("reference solutions that did not get Correct in the notebook "
                                 "(mmcourse/exercises/notebook_NN.py):\n" + "\n".join(wrong))

    def repr_failure(self, excinfo):
        if excinfo.errisinstance(AssertionError):
            return str(excinfo.value)  # the failed exercises say it all
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::solutions correct"


def _run_as_teacher_copy(notebook_file, cells, records_dir):
    """Swap the starter cells among ``cells`` (the items of ``notebook_file``, nbval's
    collector) for their solutions; return the item that checks the recorded outcomes, or
    None when the notebook has no exercises."""
    import nbformat

    from mmcourse.classroom import teaching

    notebook = notebook_file.nb
    numbers = teaching.sets_used(notebook)
    if not numbers:
        return None
    factories = teaching.exercise_sets()
    expected = [(n, exercise.name) for n in numbers if n in factories for exercise in factories[n]()]
    problem, solutions = None, {}
    try:
        solutions = teaching.solution_cells(notebook)
    except ValueError as error:
        problem = str(error)
    cell_index = {id(cell): index for index, cell in enumerate(notebook.cells)}
    for item in cells:
        index = cell_index.get(id(getattr(item, "cell", None)))
        if index in solutions:
            item.cell = nbformat.from_dict(solutions[index])
            item.options["check"] = False  # judged by the record instead
    record = records_dir / f"{notebook_file.path.stem}.jsonl"
    start_kernel = notebook_file.setup

    def setup():  # the kernel inherits the variable; the pytest process does not record
        os.environ["MMCOURSE_RECORD"] = str(record)
        try:
            start_kernel()
        finally:
            del os.environ["MMCOURSE_RECORD"]

    notebook_file.setup = setup
    return SolutionsCorrect.from_parent(notebook_file, name="solutions correct", record=record,
                                        expected=expected, problem=problem)


def pytest_collection_modifyitems(session, config, items):
    if not config.pluginmanager.hasplugin("nbval"):
        return
    from mmcourse import NOTEBOOKS_DIR

    records_dir = Path(tempfile.mkdtemp(prefix="mmcourse-records-"))
    config.add_cleanup(lambda: shutil.rmtree(records_dir, ignore_errors=True))
    new_items, cells = [], []
    for position, item in enumerate(items):
        new_items.append(item)
        cells.append(item)
        parent = item.parent
        if position + 1 < len(items) and items[position + 1].parent is parent:
            continue  # not the notebook's (or test module's) last item yet
        if (hasattr(parent, "nb") and parent.path.parent.resolve() == NOTEBOOKS_DIR.resolve()
                and parent.path.name[:2].isdigit()):
            check = _run_as_teacher_copy(parent, cells, records_dir)
            if check is not None:
                new_items.append(check)
        cells = []
    items[:] = new_items
