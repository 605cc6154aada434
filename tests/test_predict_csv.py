"""``python -m mmcourse predict`` on a CSV of cases (notebook 10): every row checked first,
every problem reported with its file line, ``--skip-bad`` goes on, accuracy from a
``label`` column, prediction fields that cannot be mistaken for it, ``--out`` written
atomically as UTF-8 with a BOM; and never a traceback, with any model format."""

import csv
import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from mmcourse import REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.apps import deploy, predict_csv, predictors, raw_model
from mmcourse.matcher import model as models

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
#: the untrained model's optimizer was never built: Keras says so on loading
pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading")


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    return cv2.imencode(".png", cv2.GaussianBlur(pixels, (9, 9), 4))[1].tobytes()


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(buffer, "TIFF")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """An untrained matcher (.keras and exported), and a folder of cases with every kind of
    problem: its CSV's line numbers are what the reports must name."""
    import keras

    root = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(1)
    vocabulary = ["", "[UNK]", "red", "circle", "红色", "圆形"]
    core = models.build_model("match", vocabulary_size=len(vocabulary), sequence_length=6)
    raw_model.export_model(core, vocabulary, 6).save(root / "m.keras")
    deploy.export(root / "m.keras", root / "saved")
    folder = root / "cases"
    (folder / "images").mkdir(parents=True)
    jpeg = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(_png(3), np.uint8), 1))[1].tobytes()
    files = {"a.png": _png(1), "b.png": _png(2), "c.png": _png(4), "cut.jpg": jpeg[:300],
             "cut.png": _png(5)[:200], "scan.tif": _tiff()}
    for name, content in files.items():
        (folder / "images" / name).write_bytes(content)
    lines = ["image,text,label",
             "images/a.png,red circle,1",      # line 2
             "images/cut.jpg,red circle,0",    # line 3: truncated JPEG
             "images/cut.png,红色 圆形,1",      # line 4: truncated PNG
             "images/scan.tif,red,0",          # line 5: TIFF (the exported model refuses it)
             "images/gone.png,red,1",          # line 6: missing
             "images/b.png,,1",                # line 7: no text
             "images/b.png,红色圆形,0",         # line 8
             "images/c.png,circle,1"]          # line 9
    (folder / "cases.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"keras": root / "m.keras", "saved": root / "saved", "folder": folder,
            "csv": folder / "cases.csv"}


def _run(*arguments):
    return subprocess.run([sys.executable, "-m", "mmcourse", *map(str, arguments)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=ENV, timeout=300)


def test_the_exported_model_reports_every_bad_row_by_line_without_a_traceback(cases):
    completed = _run("predict", "--model", cases["saved"], "--csv", cases["csv"])
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == 1 and completed.stdout == ""
    for line, needle in ((3, "cannot decode"), (4, "cannot decode"),
                         (5, "TIFF file: the exported model reads PNG and JPEG"),
                         (6, "not found"), (7, "the text column is empty")):
        assert f"cases.csv line {line}" in completed.stderr, (line, completed.stderr)
        report = next(row for row in completed.stderr.splitlines()
                      if f"cases.csv line {line}" in row)
        assert needle in report, (line, report)
    assert "5 problem(s)" in completed.stderr and "--skip-bad" in completed.stderr
    assert "nothing predicted" in completed.stderr


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png", "scan.tif"])
def test_one_bad_image_with_the_exported_model_is_a_clear_error(cases, name):
    completed = _run("predict", "--model", cases["saved"], "--image",
                     cases["folder"] / "images" / name, "--text", "red")
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == 1 and completed.stdout == ""
    assert completed.stderr.startswith("error: ") and name in completed.stderr, completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1  # nothing from the decoders


def test_the_keras_model_reads_the_tiff_and_reports_the_other_rows(cases, capsys):
    assert main(["predict", "--model", str(cases["keras"]), "--csv", str(cases["csv"])]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "line 5" not in captured.err  # the course reads TIFF
    assert all(f"cases.csv line {line}" in captured.err for line in (3, 4, 6, 7))


@pytest.mark.parametrize("model", ["keras", "saved"])
def test_skip_bad_predicts_the_other_rows_with_their_accuracy(cases, capsys, model, tmp_path):
    out = tmp_path / "results.csv"
    arguments = ["predict", "--model", str(cases[model]), "--csv", str(cases["csv"]),
                 "--skip-bad", "--json", "--out", str(out)]
    assert main(arguments) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    good = [2, 8, 9] if model == "saved" else [2, 5, 8, 9]
    assert [row["line"] for row in report["predictions"]] == good
    bad = sorted({3, 4, 5, 6, 7} - set(good))
    assert [row["line"] for row in report["skipped"]] == bad
    assert "skipped" in captured.err
    labels = {2: 1, 5: 0, 8: 0, 9: 1}
    images = [cases["folder"] / row["image"] for row in report["predictions"]]
    probabilities = predictors.predict(cases["keras"], images,
                                   [row["text"] for row in report["predictions"]])
    for row, probability in zip(report["predictions"], probabilities, strict=True):
        assert row["probability"] == pytest.approx(probability, abs=1e-5)
        assert row["predicted_label"] == int(probability > 0.5)
        assert row["label"] == labels[row["line"]]
    right = [int(p > 0.5) == labels[row["line"]]
             for row, p in zip(report["predictions"], probabilities, strict=True)]
    assert report["accuracy"] == pytest.approx(np.mean(right)) and report["labelled"] == len(good)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, so Excel shows 红色圆形
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [int(row["line"]) for row in rows] == list(range(2, 10))
    written = {int(row["line"]): row for row in rows}
    assert written[8]["text"] == "红色圆形" and written[8]["predicted_label"] in ("0", "1")
    assert all(written[line]["problem"] and not written[line]["probability"] for line in bad)


def test_the_text_output_names_prediction_and_label_apart(cases, capsys):
    assert main(["predict", "--model", str(cases["keras"]), "--csv", str(cases["csv"]),
                 "--skip-bad"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line[:1].isdigit()]
    assert len(rows) == 4 and all("predicted" in row and "label" in row for row in rows)
    assert out[-1].startswith("accuracy ") and "on 4 labelled row(s)" in out[-1]


def test_an_interrupted_write_leaves_the_old_results(tmp_path):
    out = tmp_path / "results.csv"
    out.write_text("old", encoding="utf-8")

    class Boom:
        def __str__(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_csv.write_results_csv(out, [{"line": 2, "image": "a.png"}, {"line": 3, "image": Boom()}])
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
    predict_csv.write_results_csv(out, [{"line": 2, "text": "张伟"}])
    assert out.read_bytes() == "\ufeffline,text\r\n2,张伟\r\n".encode()


def test_out_in_a_missing_folder_is_refused_before_predicting(cases, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--model", str(cases["keras"]), "--csv", str(cases["csv"]),
              "--out", str(tmp_path / "nowhere" / "results.csv")])
    assert stop.value.code == 2
    assert "argument --out: the folder" in capsys.readouterr().err
