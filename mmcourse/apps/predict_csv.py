"""The ``python -m mmcourse predict`` command (notebooks 09 and 10): one image and text, or
a CSV of them (``--csv``), every row checked by the image contract before anything is
predicted, the results printed, as JSON or written to a CSV for Excel (``--out``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from mmcourse.apps.deploy import IMAGE_SIZE
from mmcourse.apps.predictors import _outputs, load_predictor, model_kind
from mmcourse.data import folders
from mmcourse.data import images as image_contract


def _read_input(path: Path, kind: str) -> np.ndarray | bytes:
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
    be predicted, ``inputs`` their images as ``_read_input`` gives them; ``problems`` holds
    a ``folders.Problem`` (with its file line) for every other row and for the CSV itself.
    Introduced in notebook 10."""
    kind = model_kind(model_path)
    csv_path = Path(csv_path)
    captions = folders.read_captions(csv_path)
    problems = list(captions.problems)
    rows, inputs = [], []
    for row in captions.rows:
        try:
            inputs.append(_read_input(csv_path.parent / row.image, kind))
            rows.append(row)
        except folders.DataError as error:
            missing = not (csv_path.parent / row.image).is_file()
            fix = (folders._missing_image_fix(csv_path.parent, row.image) if missing
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


def _print_results(results: list[dict], task: str) -> None:
    for result in results:
        if "problem" in result:
            continue
        if task == "qa":
            print(f"{result['predicted_answer']}  (probability {result['probability']:.3f})  "
                  f"{result['image']}  {result['text']!r}")
            continue
        verdict = "matches" if result["predicted_label"] else "does not match"
        known = ""
        if "label" in result:
            known = f"  label {result['label']}, {'right' if result['correct'] else 'wrong'}"
        print(f"{result['probability']:.3f}  predicted {result['predicted_label']} "
              f"({verdict}){known}  {result['image']}  {result['text']!r}")


def main_predict(args) -> int:
    """``python -m mmcourse predict --model M (--image F --text T | --csv FILE) [--json]
    [--skip-bad] [--out results.csv]``. 0 on success, 1 on a bad model, image or CSV (clear
    messages, no traceback). MODEL is a ``.keras`` file, an exported SavedModel folder or a
    ``.tflite`` file; for a qa model each text is a question, and the output its
    ``predicted_answer`` and that answer's probability; a match model gives ``probability``
    and ``predicted_label`` (1 when over 0.5).

    With ``--csv``, every row is checked first (its image read by the image contract,
    ``mmcourse.data.images``, as the model will read it), and every problem is reported with its
    file line; nothing is predicted unless ``--skip-bad`` says to skip the bad rows and go
    on. A ``label`` column (match models) is kept as ``label`` beside ``predicted_label``,
    and the accuracy reported. ``--out`` writes the results, skipped rows included with
    their ``problem``, as a CSV (``write_results_csv``). Introduced in notebook 09; the other
    formats, qa and the checks in notebook 10."""
    skip_bad = getattr(args, "skip_bad", False)
    out = getattr(args, "out", None)
    try:
        kind = model_kind(args.model)
        if args.csv is not None:
            rows, inputs, problems, has_label = predict_inputs(args.model, args.csv)
            names = [str(Path(args.csv).parent / row.image) for row in rows]
        else:
            rows, problems, has_label = None, [], False
            inputs, names = [_read_input(Path(args.image), kind)], [str(args.image)]
        if problems:
            print("\n".join(str(problem) for problem in problems), file=sys.stderr)
            if not skip_bad:
                good = f"the other {len(rows)} row(s)" if rows else "the rows that are good"
                raise folders.DataError(f"{len(problems)} problem(s) in {args.csv}: nothing "
                                        f"predicted; fix them, or add --skip-bad to predict "
                                        f"{good}")
            if not rows:
                raise folders.DataError(f"{args.csv}: no row left to predict")
            print(f"--skip-bad: skipped {len(problems)} problem(s); predicting the other "
                  f"{len(rows)} row(s)", file=sys.stderr)
        texts = [row.text for row in rows] if rows is not None else [args.text]
        model = load_predictor(args.model)
        outputs = _outputs(model, inputs, texts, model.task)
    except (folders.DataError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
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
    labelled = [result["correct"] for result in results if "correct" in result]
    accuracy = round(float(np.mean(labelled)), 6) if labelled else None
    skipped = [{"line": problem.line, "problem": str(problem)} for problem in problems]
    if out is not None:
        every = sorted(results + skipped, key=lambda result: result.get("line") or 0)
        try:
            write_results_csv(out, every)
        except OSError as error:
            print(f"error: --out {out}: cannot write it ({error.strerror})", file=sys.stderr)
            return 1
    if args.json:
        summary = {"predictions": results}
        if accuracy is not None:
            summary.update(accuracy=accuracy, labelled=len(labelled))
        if skipped:
            summary["skipped"] = skipped
        print(json.dumps(results[0] if rows is None else summary, ensure_ascii=False))
    else:
        _print_results(results, model.task)
        if accuracy is not None:
            print(f"accuracy {accuracy:.3f} on {len(labelled)} labelled row(s) (predicted 1 "
                  f"when the probability is over 0.5)")
        if out is not None:
            print(f"results written to {out}")
    return 0
