"""The exercise record, the one place that knows its format (docs/TEACHING.md, notebook 00).

When the environment variable ``MMCOURSE_RECORD`` names a file, every ``check()`` appends its
outcome there as one JSON line: ``notebook``, ``question``, ``status`` (correct, incorrect or
not attempted) and ``message``. ``python -m mmcourse grade`` sets the variable for each
notebook it runs (``environment``) and reads the lines back (``read``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_VARIABLE = "MMCOURSE_RECORD"
FIELDS = ("notebook", "question", "status", "message")
STATUSES = ("correct", "incorrect", "not attempted")


def environment(path: Path | str) -> dict[str, str]:
    """The environment variables that make a child process's checks append to ``path``."""
    return {RECORD_VARIABLE: str(path)}


def write(notebook: str, question: str, status: str, message: str) -> None:
    """Append one check's outcome to the file named by ``MMCOURSE_RECORD``, if set. Never
    raises: a record that cannot be written must not break the learner's cell."""
    path = os.environ.get(RECORD_VARIABLE)
    if not path:
        return
    try:
        line = json.dumps({"notebook": notebook, "question": question, "status": status,
                           "message": message}, ensure_ascii=False)
        with open(path, "a", encoding="utf-8") as record:
            record.write(line + "\n")
    except Exception:  # recording is best effort: the learner's cell goes on
        pass


def read(path: Path) -> list[dict]:
    """The checks recorded in ``path``, in order; no file gives []. Lines that are not
    records (one cut short by a kill) are skipped."""
    records = []
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() \
        if path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and all(isinstance(record.get(key), str) for key in FIELDS) \
                and record["status"] in STATUSES:
            records.append(record)
    return records
