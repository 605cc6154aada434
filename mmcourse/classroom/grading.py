"""Grade submitted notebooks: ``python -m mmcourse grade SUBMISSIONS`` (docs/TEACHING.md).

SUBMISSIONS is a folder of student folders (each holding notebooks) or of notebooks (one per
student, named by its file). Each notebook runs in a temporary copy of its folder, in a child
process with a time limit, in exam mode, with every ``check()`` recorded
(``mmcourse.exercises``); a submission is never written. The result is one CSV row per
student, notebook and question, one ``total`` row per student (score, questions, run time
and the first error of each run, with its cell), and a short Markdown feedback file per
student. The CSV is UTF-8 with a BOM, so that Excel shows 张伟 when it is double-clicked.

Submissions are code: they run with your rights. Grade them in a container or as a separate
user (docs/TEACHING.md).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from mmcourse import i18n
from mmcourse.classroom import teaching
from mmcourse.exercises import record as exercise_record
from mmcourse.i18n import _

NO_QUESTION = "-"  # the question column of a row about the whole notebook
TOTAL = "total"  # the question column of a student's summary row


@dataclass(frozen=True)
class Row:
    """One row of grades.csv; ``score``, ``questions`` and ``seconds`` only in a student's
    ``total`` row (empty strings elsewhere)."""

    student: str
    notebook: str
    question: str
    status: str
    message: str
    score: int | str = ""
    questions: int | str = ""
    seconds: float | str = ""


@dataclass
class Run:
    """What grading one notebook gave: its rows, the seconds it ran and its first error
    (``None``, or a sentence naming the cell and the exception)."""

    rows: list
    seconds: float = 0.0
    first_error: str | None = None


def find_submissions(folder: Path) -> list[tuple[str, Path]]:
    """(student, notebook) pairs: ``folder/NAME.ipynb`` is student NAME's; a subfolder is a
    student's, with every notebook inside it (checkpoints skipped)."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix == ".ipynb":
            found.append((path.stem, path))
        elif path.is_dir() and not path.name.startswith("."):
            found += [(path.name, notebook) for notebook in sorted(path.rglob("*.ipynb"))
                      if ".ipynb_checkpoints" not in notebook.parts]
    return found


def _question_order(question: str) -> tuple:
    number = question.rsplit("q", 1)[-1]
    return (question.rsplit("q", 1)[0], int(number)) if number.isdigit() else (question, 0)


def grade_notebook(student: str, notebook: Path, timeout: float, shown: str,
                   with_folder: bool = True) -> list[Row]:
    """Run a copy of one submitted notebook (with a copy of its folder, so that it finds its
    files, when ``with_folder``) and turn its recorded checks into rows; ``shown`` names
    the notebook in the rows. ``run_notebook`` also gives the run time and first error."""
    return run_notebook(student, notebook, timeout, shown, with_folder).rows


def run_notebook(student: str, notebook: Path, timeout: float, shown: str,
                 with_folder: bool = True) -> Run:
    """``grade_notebook`` as a ``Run``: the rows, the seconds the notebook ran and its first
    error with its cell. Question rows whose cell failed after that first error, in another
    cell, name it as the likely cause."""
    def whole(status, message):
        return Run([Row(student, shown, NO_QUESTION, status, message)], 0.0,
                   f"{shown}: {message}" if status == "error" else None)

    try:
        content = json.loads(notebook.read_text(encoding="utf-8"))
        if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
            raise ValueError(_("it has no list of cells"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return whole("error", _("not a readable notebook ({error}); nothing was run").format(
            error=error))
    name = Path(shown).name  # 04_fusion.ipynb uses notebook_04() even if its cell is gone
    numbers = teaching.sets_used(content) or (
        [name[:2]] if name[:2].isdigit() and name[2:3] == "_" else [])
    factories = teaching.exercise_sets()
    unknown = [n for n in numbers if n not in factories]
    if unknown or not numbers:
        return whole("error", _("no course exercises: the notebook never calls notebook_NN() "
                                "(from mmcourse.course_exercises); nothing was run")
                     if not numbers else _("notebook_{number}() is not one of the course's "
                                           "exercise sets").format(number=unknown[0]))
    expected = [(n, e.name) for n in numbers for e in factories[n]()]
    in_source = {q for cell in content["cells"] if cell.get("cell_type") == "code"
                 for q in teaching.CHECK_CALL.findall(teaching.source(cell))}
    outcome = _execute(notebook, timeout, with_folder)
    first = outcome["first_error"]
    first_error = (_("{notebook} cell {cell} ({kind}): {error}").format(
        notebook=shown, cell=first["cell"], kind=_cell_kind(first), error=first["error"])
                   if first else (f"{shown}: {outcome['failure'][1]}" if outcome["failure"]
                                  else None))
    last = {(r["notebook"], r["question"]): r for r in outcome["records"]}
    rows, keys = [], set(expected) | set(last)
    for number, question in sorted(keys, key=lambda key: (key[0], _question_order(key[1]))):
        name = question if len({n for n, _ in keys}) == 1 else f"{number}.{question}"
        if (number, question) in last:
            record = last[(number, question)]
            rows.append(Row(student, shown, name, record["status"], record["message"]))
        elif question in outcome["cell_errors"]:
            cause = ""
            if first and question not in first["questions"]:
                cause = _(" after the first error, in cell {cell}: {error} (fix that one "
                          "first)").format(cell=first["cell"], error=first["error"])
            rows.append(Row(student, shown, name, "error", _("its cell raised {error}").format(
                error=outcome["cell_errors"][question]) + cause))
        elif question not in in_source:
            rows.append(Row(student, shown, name, "not attempted",
                            _("the notebook has no ex.{question}.check(...)").format(
                                question=question)))
        elif outcome["failure"]:
            rows.append(Row(student, shown, name, outcome["failure"][0],
                            _("{failure}; ex.{question}.check(...) never ran").format(
                                failure=outcome["failure"][1], question=question)))
        else:
            rows.append(Row(student, shown, name, "not attempted",
                            _("ex.{question}.check(...) never ran").format(question=question)))
    return Run(rows, outcome["seconds"], first_error)


def _cell_kind(first: dict) -> str:
    questions = first["questions"]
    return (_("the cell of {questions}").format(questions=", ".join(questions)) if questions
            else _("not an exercise cell")) + f": {first['source']!r}"


def _execute(notebook: Path, timeout: float, with_folder: bool) -> dict:
    """Execute a copy of ``notebook`` in a child process; return its records, the questions
    whose cells raised, and ``failure``: None or (status, message)."""
    with tempfile.TemporaryDirectory(prefix="mmcourse-grade-") as scratch:
        scratch = Path(scratch)
        work = scratch / "work"
        if with_folder:
            shutil.copytree(notebook.parent, work, symlinks=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            work.mkdir()
            shutil.copy2(notebook, work / notebook.name)
        copy = work / notebook.name
        record, result = scratch / "record.jsonl", scratch / "result.json"
        env = dict(os.environ, **exercise_record.environment(record), MMCOURSE_EXAM="1",
                   MMCOURSE_LANG=i18n.current(),
                   MMCOURSE_RUNS=str(scratch / "runs"), TF_CPP_MIN_LOG_LEVEL="2",
                   PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                         os.environ.get("PATH", "")]))
        child = subprocess.Popen(
            [sys.executable, "-m", "mmcourse.classroom.grading", str(copy), str(result), str(timeout)],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        failure = None
        start = time.perf_counter()
        try:
            _output, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child, result)
            failure = ("timeout", _("the notebook ran longer than {timeout:g} s").format(
                timeout=timeout))
        report = _read_json(result)
        if failure is None and child.returncode != 0:
            last_line = (stderr.strip().splitlines() or ["no message"])[-1]
            failure = ("error", report.get("failure") or
                       _("the run stopped (exit status {status}: {line})").format(
                           status=child.returncode, line=last_line))
        seconds = time.perf_counter() - start
        return {"records": exercise_record.read(record),
                "cell_errors": report.get("cell_errors", {}),
                "failure": failure, "first_error": report.get("first_error"),
                "seconds": seconds}


def _read_json(path: Path) -> dict:
    """The child's report; {} when it wrote none or was killed while writing it."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _kill(child: subprocess.Popen, result: Path) -> None:
    """End the child and the kernel it started (its own process group, named in the result
    file as soon as it started)."""
    groups = [child.pid, _read_json(result).get("kernel_pgid")]
    for group in filter(None, groups):
        try:
            os.killpg(group, signal.SIGKILL)
        except (OSError, AttributeError):  # gone already; no process groups on Windows
            child.kill()
    child.wait()


def _run_child(notebook: str, result: str, timeout: str) -> int:
    """In the child process: execute ``notebook`` with nbclient, every cell even after an
    error, and write what happened to ``result`` (JSON)."""
    import nbclient
    import nbformat

    path = Path(notebook)
    report: dict = {"cell_errors": {}}

    def save():
        Path(result).write_text(json.dumps(report), encoding="utf-8")

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=float(timeout), kernel_name="python3",
                                     allow_errors=True, resources={"metadata": {
                                         "path": str(path.parent)}})

    def started(**_kwargs):
        provisioner = client.km.provisioner
        report["kernel_pgid"] = getattr(provisioner, "pgid", None) or provisioner.pid
        save()

    client.on_notebook_start = started
    try:
        client.execute()
    except Exception as error:  # a dead kernel, a kernel that never started
        with i18n.language(os.environ.get("MMCOURSE_LANG") or "en"):
            report["failure"] = _("the notebook stopped ({kind}: {error})").format(
                kind=type(error).__name__, error=error)
        save()
        return 1
    for number, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                questions = teaching.CHECK_CALL.findall(teaching.source(cell))
                error = f"{output['ename']}: {output['evalue']}"
                for question in questions:
                    report["cell_errors"].setdefault(question, error)
                if "first_error" not in report:
                    lines = [line for line in teaching.source(cell).splitlines() if
                             line.strip()]
                    report["first_error"] = {
                        "cell": number, "error": error, "questions": questions,
                        "source": (lines[0][:60] if lines else "")}
    save()
    return 0


def feedback(student: str, rows: list[Row], runs: list[Run] = ()) -> str:
    """A student's Markdown feedback: score, the first error of each run (with its cell) and
    the run time, then each question's status and message."""
    graded = [r for r in rows if r.question not in (NO_QUESTION, TOTAL)]
    correct = sum(r.status == "correct" for r in graded)
    lines = [_("# Feedback for {student}").format(student=student), "",
             _("{correct} of {count} questions correct.").format(correct=correct,
                                                                 count=len(graded)), ""]
    for run in runs:
        if run.first_error:
            lines += [_("**First error:** {error}. Later errors may follow from this one: fix "
                        "it first.").format(error=run.first_error), ""]
    if runs:
        lines += [_("Run time: {seconds:.1f} s.").format(
            seconds=sum(run.seconds for run in runs)), ""]
    for notebook in dict.fromkeys(r.notebook for r in rows if r.question != TOTAL):
        lines += [f"## {notebook}", ""]
        for row in (r for r in rows if r.notebook == notebook and r.question != TOTAL):
            label = _("notebook") if row.question == NO_QUESTION else row.question
            lines.append(f"- **{label}** {row.status}: {row.message}")
        lines.append("")
    return "\n".join(lines)


def grade(submissions: Path, out: Path, jobs: int = 1, timeout: float = 300,
          log=print) -> list[Row]:
    """Grade every notebook of ``submissions``; write ``out`` (CSV) and one feedback file per
    student in ``<out stem>_feedback/``; return the rows."""
    submissions = Path(submissions)
    found = find_submissions(submissions)

    def one(pair):
        student, notebook = pair
        alone = notebook.parent == submissions  # one notebook per student, beside the others
        shown = notebook.name if alone else notebook.relative_to(submissions / student)
        run = run_notebook(student, notebook, timeout, Path(shown).as_posix(),
                           with_folder=not alone)
        correct = sum(r.status == "correct" for r in run.rows)
        log(_("{student} {notebook}: {correct} of {count} correct").format(
            student=student, notebook=notebook.name, correct=correct, count=len(run.rows)))
        return student, run

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        graded = list(pool.map(one, found))
    students = dict.fromkeys(student for student, _ in found)
    runs = {student: [run for name, run in graded if name == student] for student in students}
    rows = []
    for student in students:
        rows += [row for run in runs[student] for row in run.rows]
        rows.append(total_row(student, runs[student]))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8-sig") as handle:  # a BOM for Excel
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(Row)])
        writer.writerows(astuple(row) for row in rows)
    feedback_dir = out.with_name(out.stem + "_feedback")
    feedback_dir.mkdir(exist_ok=True)
    for student in students:
        (feedback_dir / f"{student}.md").write_text(
            feedback(student, [r for r in rows if r.student == student], runs[student]),
            encoding="utf-8")
    log(_("wrote {out} ({rows} rows, {students} students) and {feedback}/").format(
        out=out, rows=len(rows), students=len(students), feedback=feedback_dir))
    return rows


def total_row(student: str, runs: list[Run]) -> Row:
    """A student's summary row: status ``error`` when a run had an error (``ok`` otherwise),
    the first error of each run (or "no error"), the score (questions correct), the number
    of questions and the run time in seconds."""
    graded = [r for run in runs for r in run.rows if r.question != NO_QUESTION]
    errors = [run.first_error for run in runs if run.first_error]
    notebooks = " + ".join(dict.fromkeys(r.notebook for run in runs for r in run.rows))
    return Row(student, notebooks, TOTAL, "error" if errors else "ok",
               "; ".join(errors) or _("no error"), sum(r.status == "correct" for r in graded),
               len(graded), round(sum(run.seconds for run in runs), 1))


if __name__ == "__main__":
    sys.exit(_run_child(*sys.argv[1:]))
