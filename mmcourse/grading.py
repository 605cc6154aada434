"""Grade submitted notebooks: ``python -m mmcourse grade SUBMISSIONS`` (docs/TEACHING.md).

SUBMISSIONS is a folder of student folders (each holding notebooks) or of notebooks (one per
student, named by its file). Each notebook runs in a temporary copy of its folder, in a child
process with a time limit, in exam mode, with every ``check()`` recorded
(``mmcourse.exercises``); a submission is never written. The result is one CSV row per
student, notebook and question, and a short Markdown feedback file per student.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from mmcourse import teaching

NO_QUESTION = "-"  # the question column of a row about the whole notebook


@dataclass(frozen=True)
class Row:
    student: str
    notebook: str
    question: str
    status: str
    message: str


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
    the notebook in the rows."""
    def whole(status, message):
        return [Row(student, shown, NO_QUESTION, status, message)]

    try:
        content = json.loads(notebook.read_text(encoding="utf-8"))
        if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
            raise ValueError("it has no list of cells")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return whole("error", f"not a readable notebook ({error}); nothing was run")
    name = Path(shown).name  # 04_fusion.ipynb uses notebook_04() even if its cell is gone
    numbers = teaching.sets_used(content) or (
        [name[:2]] if name[:2].isdigit() and name[2:3] == "_" else [])
    factories = teaching.exercise_sets()
    unknown = [n for n in numbers if n not in factories]
    if unknown or not numbers:
        return whole("error", "no course exercises: the notebook never calls notebook_NN() "
                     "(from mmcourse.course_exercises); nothing was run" if not numbers else
                     f"notebook_{unknown[0]}() is not one of the course's exercise sets")
    expected = [(n, e.name) for n in numbers for e in factories[n]()]
    in_source = {q for cell in content["cells"] if cell.get("cell_type") == "code"
                 for q in teaching.CHECK_CALL.findall(teaching.source(cell))}
    outcome = _execute(notebook, timeout, with_folder)
    last = {(r["notebook"], r["question"]): r for r in outcome["records"]}
    rows, keys = [], set(expected) | set(last)
    for number, question in sorted(keys, key=lambda key: (key[0], _question_order(key[1]))):
        name = question if len({n for n, _ in keys}) == 1 else f"{number}.{question}"
        if (number, question) in last:
            record = last[(number, question)]
            rows.append(Row(student, shown, name, record["status"], record["message"]))
        elif question in outcome["cell_errors"]:
            rows.append(Row(student, shown, name, "error",
                            f"its cell raised {outcome['cell_errors'][question]}"))
        elif question not in in_source:
            rows.append(Row(student, shown, name, "not attempted",
                            f"the notebook has no ex.{question}.check(...)"))
        elif outcome["failure"]:
            rows.append(Row(student, shown, name, outcome["failure"][0],
                            f"{outcome['failure'][1]}; ex.{question}.check(...) never ran"))
        else:
            rows.append(Row(student, shown, name, "not attempted",
                            f"ex.{question}.check(...) never ran"))
    return rows


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
        env = dict(os.environ, MMCOURSE_EXAM="1", MMCOURSE_RECORD=str(record),
                   MMCOURSE_RUNS=str(scratch / "runs"), TF_CPP_MIN_LOG_LEVEL="2",
                   PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                         os.environ.get("PATH", "")]))
        child = subprocess.Popen(
            [sys.executable, "-m", "mmcourse.grading", str(copy), str(result), str(timeout)],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        failure = None
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child, result)
            failure = ("timeout", f"the notebook ran longer than {timeout:g} s")
        report = _read_json(result)
        if failure is None and child.returncode != 0:
            last_line = (stderr.strip().splitlines() or ["no message"])[-1]
            failure = ("error", report.get("failure") or
                       f"the run stopped (exit status {child.returncode}: {last_line})")
        return {"records": read_records(record), "cell_errors": report.get("cell_errors", {}),
                "failure": failure}


def _read_json(path: Path) -> dict:
    """The child's report; {} when it wrote none or was killed while writing it."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def read_records(path: Path) -> list[dict]:
    """The checks recorded in ``path`` (``MMCOURSE_RECORD``), in order; no file gives [].
    Lines that are not records (one cut short by a kill) are skipped."""
    records = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() \
        if path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and all(isinstance(record.get(key), str) for key in (
                "notebook", "question", "status", "message")) and record["status"] in (
                "correct", "incorrect", "not attempted"):
            records.append(record)
    return records


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

    def started(**_):
        provisioner = client.km.provisioner
        report["kernel_pgid"] = getattr(provisioner, "pgid", None) or provisioner.pid
        save()

    client.on_notebook_start = started
    try:
        client.execute()
    except Exception as error:  # a dead kernel, a kernel that never started
        report["failure"] = f"the notebook stopped ({type(error).__name__}: {error})"
        save()
        return 1
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                for question in teaching.CHECK_CALL.findall(teaching.source(cell)):
                    report["cell_errors"].setdefault(
                        question, f"{output['ename']}: {output['evalue']}")
    save()
    return 0


def feedback(student: str, rows: list[Row]) -> str:
    """A student's Markdown feedback: score, then each question's status and message."""
    graded = [r for r in rows if r.question != NO_QUESTION]
    correct = sum(r.status == "correct" for r in graded)
    lines = [f"# Feedback for {student}", "",
             f"{correct} of {len(graded)} questions correct.", ""]
    for notebook in dict.fromkeys(r.notebook for r in rows):
        lines += [f"## {notebook}", ""]
        for row in (r for r in rows if r.notebook == notebook):
            label = "notebook" if row.question == NO_QUESTION else row.question
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
        rows = grade_notebook(student, notebook, timeout, Path(shown).as_posix(),
                              with_folder=not alone)
        correct = sum(r.status == "correct" for r in rows)
        log(f"{student} {notebook.name}: {correct} of {len(rows)} correct")
        return rows

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = [row for result in pool.map(one, found) for row in result]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(Row)])
        writer.writerows(astuple(row) for row in rows)
    feedback_dir = out.with_name(out.stem + "_feedback")
    feedback_dir.mkdir(exist_ok=True)
    students = dict.fromkeys(student for student, _ in found)
    for student in students:
        (feedback_dir / f"{student}.md").write_text(
            feedback(student, [r for r in rows if r.student == student]), encoding="utf-8")
    log(f"wrote {out} ({len(rows)} rows, {len(students)} students) and {feedback_dir}/")
    return rows


if __name__ == "__main__":
    sys.exit(_run_child(*sys.argv[1:]))
