"""The exercise record, the one place that knows its format (docs/TEACHING.md, notebook 00).

When the environment variable ``MMCOURSE_RECORD`` names a file, every ``check()`` appends its
outcome there as one JSON line: ``notebook``, ``question``, ``status`` (correct, incorrect or
not attempted) and ``message``; a check of an experiment that asks for a prediction adds
``prediction`` and ``measurement`` (a number, a choice, or null). ``predict()`` appends a line
with status ``predicted`` and its ``prediction``: ``read`` skips those lines and
``read_predictions`` returns them. ``python -m mmcourse grade`` sets the variable for each
notebook it runs (``environment``) and reads the lines back (``read``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORD_VARIABLE = "MMCOURSE_RECORD"
FIELDS = ("notebook", "question", "status", "message")
STATUSES = ("correct", "incorrect", "not attempted")


def environment(path: Path | str) -> dict[str, str]:
    """The environment variables that make a child process's checks append to ``path``."""
    return {RECORD_VARIABLE: str(path)}


PREDICTED = "predicted"
_MISSING = object()


def write(notebook: str, question: str, status: str, message: str,
          prediction: Any = _MISSING, measurement: Any = _MISSING) -> None:
    """Append one check's outcome to the file named by ``MMCOURSE_RECORD``, if set; with
    ``prediction`` and ``measurement`` when the exercise asks for a prediction. Never
    raises: a record that cannot be written must not break the learner's cell."""
    entry = {"notebook": notebook, "question": question, "status": status, "message": message}
    if prediction is not _MISSING:
        entry.update(prediction=prediction, measurement=measurement)
    _append(entry)


def write_prediction(notebook: str, question: str, prediction: float | str) -> None:
    """Append a learner's prediction (``predict()``), before the experiment runs."""
    _append({"notebook": notebook, "question": question, "status": PREDICTED,
             "prediction": prediction})


def _append(entry: dict) -> None:
    path = os.environ.get(RECORD_VARIABLE)
    if not path:
        return
    try:
        line = json.dumps(entry, ensure_ascii=False)
        with open(path, "a", encoding="utf-8") as record:
            record.write(line + "\n")
    except Exception:  # recording is best effort: the learner's cell goes on
        pass


def _lines(path: Path) -> list[dict]:
    """The JSON objects of ``path``, in order; lines that are not (one cut short by a kill)
    are skipped."""
    path = Path(path)
    entries = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() \
        if path.is_file() else []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def read(path: Path) -> list[dict]:
    """The checks recorded in ``path``, in order; no file gives []. Lines that are not
    check records (predictions, one cut short by a kill) are skipped."""
    return [entry for entry in _lines(path)
            if all(isinstance(entry.get(key), str) for key in FIELDS)
            and entry["status"] in STATUSES]


def read_predictions(path: Path) -> list[dict]:
    """The predictions recorded in ``path`` (``predict()`` calls), in order."""
    return [entry for entry in _lines(path)
            if entry.get("status") == PREDICTED
            and all(isinstance(entry.get(key), str) for key in ("notebook", "question"))
            and isinstance(entry.get("prediction"), (int, float, str))]
