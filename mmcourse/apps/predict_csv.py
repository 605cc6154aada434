"""What the ``predict`` command does with a model and its pairs (notebooks 09 and 10): an
image read as the model takes it, a CSV of pairs with every row checked by the image contract
before anything is predicted, the predictions as result rows, and those rows written as a CSV
for Excel. The command itself (flags, messages, output) is ``mmcourse.cli.commands_deploy``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmcourse.apps.deploy import IMAGE_SIZE
from mmcourse.apps.predictors import load_predictor, model_kind, predict_outputs
from mmcourse.data import folders
from mmcourse.data import images as image_contract


def read_input(path: Path, kind: str) -> np.ndarray | bytes:
    """An image file as the model of ``kind`` takes it, checked by the image contract: RGB
    pixels (64, 64, 3) for a ``.keras`` or ``.tflite`` model, the file's bytes for a
    SavedModel (which must be able to read them). ``DataError`` saying what is wrong."""
    if not path.is_file():
        raise folders.DataError(f"image file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise folders.DataError(f"cannot read {path}: {error.strerror}") from None
    try:
        if kind == "saved_model":
            image_contract.check_served(data, str(path))
            return data
        return image_contract.decode_image(data, str(path), IMAGE_SIZE)
    except image_contract.ImageError as error:
        raise folders.DataError(str(error)) from None


def predict_inputs(model_path, csv_path) -> tuple[list, list, list, bool]:
    """Read and check every row of a ``predict --csv`` file before predicting:
    (rows, inputs, problems, has_label). ``rows`` are the ``folders.Row`` records that can
    be predicted, ``inputs`` their images as ``read_input`` gives them; ``problems`` holds
    a ``folders.Problem`` (with its file line) for every other row and for the CSV itself.
    Introduced in notebook 10."""
    kind = model_kind(model_path)
    csv_path = Path(csv_path)
    captions = folders.read_captions(csv_path)
    problems = list(captions.problems)
    rows, inputs = [], []
    for row in captions.rows:
        try:
            inputs.append(read_input(csv_path.parent / row.image, kind))
            rows.append(row)
        except folders.DataError as error:
            missing = not (csv_path.parent / row.image).is_file()
            fix = (folders.missing_image_fix(csv_path.parent, row.image) if missing
                   else "replace or convert the file")
            problems.append(folders.Problem(csv_path.name, row.line, "image", str(error), fix))
    problems.sort(key=lambda problem: problem.line or 0)
    return rows, inputs, problems, captions.has_label


def write_results_csv(path, results: list[dict]) -> Path:
    """Write ``predict``'s results as a CSV for Excel (UTF-8 with a BOM), atomically: a
    temporary file in the same folder, renamed over ``path`` only when complete, so an
    interrupted run leaves the old file or none. Introduced in notebook 10."""
    import csv
    import tempfile

    path = Path(path)
    columns = list(dict.fromkeys(key for result in results for key in result))
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8-sig", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(results)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def predict_results(model_path, names, inputs, texts, rows=None,
                    has_label: bool = False) -> tuple[str, list[dict]]:
    """Load the model at ``model_path`` (``load_predictor``) and predict every pair: (its
    task, one result per pair). A result holds the CSV ``line`` (when ``rows``, the
    ``folders.Row`` records of ``predict_inputs``, are given), ``image`` (from ``names``),
    ``text``, ``probability`` and, for a qa model, ``predicted_answer``; for a match model
    ``predicted_label`` (1 when the probability is over 0.5) and, with ``has_label``, the
    row's ``label`` and whether the prediction is ``correct``. Introduced in notebook 09; qa
    and the CSV in notebook 10."""
    model = load_predictor(model_path)
    outputs = predict_outputs(model, inputs, texts, model.task)
    results = []
    for index, (name, caption) in enumerate(zip(names, texts, strict=True)):
        result = {"line": rows[index].line} if rows is not None else {}
        result.update(image=name, text=caption)
        if has_label and model.task == "match":
            result["label"] = int(rows[index].label)
        result["probability"] = round(float(outputs["probability"][index]), 6)
        if model.task == "qa":
            result["predicted_answer"] = outputs["answer"][index]
        else:
            result["predicted_label"] = int(result["probability"] > 0.5)
            if has_label:
                result["correct"] = result["predicted_label"] == result["label"]
        results.append(result)
    return model.task, results
