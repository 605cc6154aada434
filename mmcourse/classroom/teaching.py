"""For instructors: teacher copies of the notebooks, and the exercise list (docs/TEACHING.md).

A notebook's exercise starter cells are found by their check call: the one code cell that
holds the placeholder ``____`` and ``ex.qN.check(`` answers question qN. A teacher copy is the
notebook with each starter cell replaced by that exercise's ``solution_code`` between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines (the form nbgrader and otter-grader read);
every other cell, outputs included, stays as it is. The root ``conftest.py`` runs each course
notebook under nbval as its teacher copy, so ``make test`` executes every notebook once and
every reference solution in its notebook's own context.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
from datetime import datetime
from pathlib import Path

from mmcourse.paths import NOTEBOOKS_DIR, REPO_ROOT

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
#: ``ex = notebook_04()`` (any variable name): the exercise sets a notebook uses.
SET_CALL = re.compile(r"\bnotebook_(\d\d)\s*\(\s*\)")
#: ``ex.q3.check(``: the question a cell answers.
CHECK_CALL = re.compile(r"\b\w+\.(q\d+)\.check\(")
PLACEHOLDER = "____"
IMPORT_LINE = re.compile(r"^\s*(from\s+\S+\s+)?import\b.*$", re.M)
#: The files with generated blocks (the schedule and the exercise list), and how to renew them.
TEACHING_MD = REPO_ROOT / "docs" / "TEACHING.md"
INDEX_NOTEBOOK = NOTEBOOKS_DIR / "index.ipynb"
SYNC_COMMAND = "python -m mmcourse exercises --sync"


def exercise_sets() -> dict[str, object]:
    """{"04": notebook_04, ...}: every exercise-set factory of ``mmcourse.course_exercises``."""
    from mmcourse import course_exercises

    return {name.removeprefix("notebook_"): factory for name, factory
            in inspect.getmembers(course_exercises, inspect.isfunction)
            if re.fullmatch(r"notebook_\d\d", name)}


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return text if isinstance(text, str) else "".join(text)


def sets_used(notebook: dict) -> list[str]:
    """The exercise sets a notebook creates (``notebook_NN()`` calls in code cells), in order."""
    found = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            found += [n for n in SET_CALL.findall(source(cell)) if n not in found]
    return found


def starter_cells(notebook: dict, questions: list[str]) -> dict[str, int]:
    """{question: index of its starter cell} for ``questions`` (e.g. ["q1", "q2"]).

    Raises ``ValueError`` naming the cell or question when a cell with ``____`` checks no
    question or several, two cells check one question, or a question has no starter cell."""
    found: dict[str, int] = {}
    for index, cell in enumerate(notebook.get("cells", [])):
        text = source(cell)
        if cell.get("cell_type") != "code" or PLACEHOLDER not in IMPORT_LINE.sub("", text):
            continue  # `from mmcourse.exercises import ____` alone is no starter
        checked = sorted(set(CHECK_CALL.findall(text)))
        if len(checked) != 1:
            raise ValueError(f"cell {index} holds {PLACEHOLDER} and checks {checked or 'nothing'};"
                             f" a starter cell ends with exactly one ex.qN.check(...)")
        question = checked[0]
        if question in found:
            raise ValueError(f"cells {found[question]} and {index} are both starter cells of "
                             f"{question}; keep one")
        found[question] = index
    missing = [q for q in questions if q not in found]
    if missing:
        raise ValueError(f"no starter cell (a code cell with {PLACEHOLDER} and ex.qN.check(...)) "
                         f"for {', '.join(missing)}")
    return {q: found[q] for q in questions}


def solution_cell(cell: dict, solution_code: str) -> dict:
    """The starter ``cell`` with the solution in place of its code; no outputs. The starter's
    own import lines (what it gives the learner, e.g. data or a helper) stay above the
    solution; the placeholder's import goes."""
    new = copy.deepcopy(cell)
    kept = [match.group(0) for match in IMPORT_LINE.finditer(source(cell))
            if PLACEHOLDER not in match.group(0)]
    new["source"] = "".join(f"{line.strip()}\n" for line in kept) + \
        f"{BEGIN}\n{solution_code.strip()}\n{END}"
    new["outputs"] = []
    new["execution_count"] = None
    new.get("metadata", {}).pop("execution", None)
    return new


def solution_cells(notebook: dict) -> dict[int, dict]:
    """{cell index: its solution cell} for every exercise of every set ``notebook`` uses."""
    factories = exercise_sets()
    cells = {}
    for number in sets_used(notebook):
        if number not in factories:
            raise ValueError(f"the notebook calls notebook_{number}(), which "
                             f"mmcourse.course_exercises does not define")
        exercises = {exercise.name: exercise for exercise in factories[number]()}
        for question, index in starter_cells(notebook, list(exercises)).items():
            cells[index] = solution_cell(notebook["cells"][index],
                                         exercises[question].solution_code)
    return cells


def teacher_copy(notebook: dict) -> dict:
    """``notebook`` with each starter cell replaced by its solution cell (a new dict)."""
    copied = copy.deepcopy(notebook)
    for index, cell in solution_cells(notebook).items():
        copied["cells"][index] = cell
    return copied


def write_teacher_copies(out_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write a teacher copy of every notebook of ``notebooks_dir`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(notebooks_dir).glob("*.ipynb")):
        notebook = teacher_copy(json.loads(path.read_text(encoding="utf-8")))
        target = out_dir / path.name
        target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
        written.append(target)
    return written


# --- the exercise list and the schedule ---------------------------------------------------


def lesson_notebooks() -> dict[str, Path]:
    """{"00": notebooks/00_environment_setup.ipynb, ...}: the numbered lessons."""
    return {path.name[:2]: path for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))}


def _title(path: Path | None, number: str) -> str:
    if path is not None:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            first = source(cell).strip().splitlines()[:1]
            if cell["cell_type"] == "markdown" and first and first[0].startswith("# "):
                return first[0][2:].strip()
    return f"{number} · (notebook {number})"


def is_experiment(exercise) -> bool:
    """An experiment's prompt starts with "Experiment." (the schedule gives it more time)."""
    return exercise.prompt.lstrip().lower().startswith("experiment")


def exercise_list(markdown: bool = False) -> str:
    """Every exercise of ``mmcourse.course_exercises``, one line each, grouped by notebook."""
    lessons = lesson_notebooks()
    lines = []
    for number, factory in sorted(exercise_sets().items()):
        title = _title(lessons.get(number), number)
        lines += [f"**{title}**", ""] if markdown else [title]
        for exercise in factory():
            prompt = " ".join(exercise.prompt.split())
            lines.append(f"- `{exercise.name}` {prompt}" if markdown
                         else f"  {exercise.name}  {prompt}")
        if markdown:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


#: Learner-time model of the schedule: reading speed of technical text and code, and minutes
#: per exercise (experiments take longer: the learner runs something and waits for it).
WORDS_PER_MINUTE = 100
EXERCISE_MINUTES, EXPERIMENT_MINUTES = 5, 10


def run_seconds(notebook: dict) -> float:
    """Seconds the notebook's code cells took at their stored execution (``make notebook``),
    from the timestamps Jupyter keeps in each cell's metadata."""
    total = 0.0
    for cell in notebook["cells"]:
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in times and "shell.execute_reply" in times:
            start, end = (datetime.fromisoformat(times[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            total += (end - start).total_seconds()
    return total


def schedule(link_base: str = "") -> str:
    """The suggested schedule: one row per lesson with its learner minutes (see TEACHING.md);
    links to the notebooks start with ``link_base``."""
    factories = exercise_sets()
    rows = [("notebook", "run (s)", "reading (min)", "exercises", "learner time (min)")]
    total = 0
    for number, path in lesson_notebooks().items():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        words = sum(len(source(cell).split()) for cell in notebook["cells"])
        exercises = list(factories[number]()) if number in factories else []
        experiments = sum(map(is_experiment, exercises))
        exercise_minutes = (EXERCISE_MINUTES * (len(exercises) - experiments)
                            + EXPERIMENT_MINUTES * experiments)
        seconds = run_seconds(notebook)
        reading = words / WORDS_PER_MINUTE
        minutes = 5 * math.ceil((seconds / 60 + reading + exercise_minutes) / 5)
        total += minutes
        plural = "s" if experiments > 1 else ""
        rows.append((f"[{path.stem}]({link_base}{path.name})", f"{seconds:.0f}",
                     f"{reading:.0f}", f"{len(exercises)}" + (
                         f" ({experiments} experiment{plural})" if experiments else ""),
                     f"{minutes}"))
    rows.append(("total", "", "", "", f"{total} ({total / 60:.1f} h)"))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---:|---:|---|---:|")
    return "\n".join(lines) + "\n"


def generated_blocks(link_base: str = "") -> dict[str, str]:
    """The generated Markdown blocks, with links to the notebooks starting with
    ``link_base`` ("../notebooks/" from docs/)."""
    return {"schedule": schedule(link_base=link_base), "exercises": exercise_list(markdown=True)}


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- BEGIN GENERATED {name.upper()}: {SYNC_COMMAND} -->",
            f"<!-- END GENERATED {name.upper()} -->")


def committed_block(text: str, name: str) -> str:
    """The text between ``name``'s markers in ``text``; ValueError if they are missing."""
    begin, end = _markers(name)
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    if match is None:
        raise ValueError(f"no {begin} ... {end} block")
    return match.group(1)


def _replace_blocks(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        begin, end = _markers(name)
        committed_block(text, name)  # raises when the markers are missing
        text = re.sub(re.escape(begin) + r"\n.*?" + re.escape(end),
                      lambda _m, b=begin, e=end, body=body: f"{b}\n{body}{e}", text, flags=re.S)
    return text


def sync_docs() -> list[Path]:
    """Rewrite the generated blocks of docs/TEACHING.md and notebooks/index.ipynb; return the
    files that changed."""
    changed = []
    text = TEACHING_MD.read_text(encoding="utf-8")
    new_text = _replace_blocks(text, generated_blocks("../notebooks/"))
    if new_text != text:
        TEACHING_MD.write_text(new_text, encoding="utf-8")
        changed.append(TEACHING_MD)
    blocks = generated_blocks()
    notebook = json.loads(INDEX_NOTEBOOK.read_text(encoding="utf-8"))
    before = json.dumps(notebook)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and "<!-- BEGIN GENERATED" in source(cell):
            cell["source"] = _replace_blocks(source(cell), {
                name: body for name, body in blocks.items()
                if _markers(name)[0] in source(cell)}).splitlines(keepends=True)
    if json.dumps(notebook) != before:
        INDEX_NOTEBOOK.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
        changed.append(INDEX_NOTEBOOK)
    return changed
