"""Deployment (notebook 10): the SavedModel with a raw-input signature, loaded where
``mmcourse`` cannot be imported; the REST format; the predict formats; safe loading."""

import base64
import json
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

from mmcourse import REPO_ROOT, deploy, models, owndata, text

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TEXTS = ["a small red circle", "一个小的红色圆形", "Ａ LARGE blue square!", "a green, triangle",
         "red", "a small red circle"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    folder = owndata.write_shapes_folder(root / "shapes", count=60, seed=0)
    owndata.train_folder(folder, epochs=1, seed=0, save=root / "m.keras", log=None)
    report = deploy.export(root / "m.keras", root / "saved", tflite=True)
    images = sorted((folder / "images").glob("*.png"))[:len(TEXTS)]
    return {"root": root, "keras": root / "m.keras", "saved": root / "saved", "report": report,
            "images": images}


def _keras_reference(exported, images, texts):
    """The .keras model in this process, images read with OpenCV as the course does."""
    model = keras.saving.load_model(exported["keras"], safe_mode=True)
    batch = np.stack([cv2.cvtColor(cv2.resize(cv2.imread(str(p)), (64, 64),
                                              interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                      for p in images]).astype(np.float32) / 255
    return np.asarray(model({"image": batch, "text": np.array(texts, object)})).reshape(-1)


SERVER = r"""
import importlib.util, json, os, sys
# no mmcourse: drop the editable install's finder and every path that holds the package
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if p and not os.path.isdir(os.path.join(p, "mmcourse"))]
assert importlib.util.find_spec("mmcourse") is None, "mmcourse is importable"
sys.modules["cv2"] = None  # and no OpenCV: any import of it fails
import tensorflow as tf
request = json.loads(sys.stdin.read())
loaded = tf.saved_model.load(request["model"])
signature = loaded.signatures["serving_default"]
images = [open(path, "rb").read() for path in request["images"]]
outputs = signature(image=tf.constant(images), text=tf.constant(request["texts"]))
print(json.dumps({"probability": outputs["probability"].numpy().tolist(),
                  "modules": sorted(m for m in ("mmcourse",) if m in sys.modules),
                  "inputs": sorted(signature.structured_input_signature[1])}))
"""


def test_saved_model_runs_without_mmcourse_and_agrees_with_predict(exported, tmp_path):
    request = {"model": str(exported["saved"]), "images": [str(p) for p in exported["images"]],
               "texts": TEXTS}
    completed = subprocess.run([sys.executable, "-I", "-c", SERVER], input=json.dumps(request),
                               capture_output=True, text=True, cwd=tmp_path, env=ENV,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    assert served["inputs"] == ["image", "text"]
    reference = _keras_reference(exported, exported["images"], TEXTS)
    np.testing.assert_allclose(served["probability"], reference, atol=1e-5)
    predicted = owndata.predict(owndata.load_model(exported["keras"]), exported["images"], TEXTS)
    np.testing.assert_allclose(served["probability"], predicted, atol=1e-5)


@pytest.mark.parametrize("sample", [
    "a small red circle", "红色圆形，在左边！", "Ａ　ＢＩＧ blue-square?!", "“引号”与「括号」",
    "Tabs\tand\nnewlines  here", "CAFÉ déjà vu", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３", "αβγ ΔΕ",
    "", "...", "mixed中文and English混合", "①②③ ﬁne ㎏"])
def test_tf_standardize_matches_the_python_standardize(sample):
    import tensorflow as tf

    keys, values = deploy.nfkc_table()
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), "")
    result = deploy.tf_standardize(tf.constant([sample]), table).numpy()[0].decode("utf-8")
    assert result == text.standardize(sample)


def test_nfkc_table_holds_known_pairs():
    pairs = dict(zip(*deploy.nfkc_table(), strict=True))
    assert pairs["Ａ"] == "A" and pairs["，"] == "," and pairs["\u3000"] == " "
    assert pairs["ﬁ"] == "fi" and "a" not in pairs and "红" not in pairs


def test_signature_resizes_other_sizes_close_to_opencv(exported, tmp_path):
    """96x96 PNG and JPEG: TensorFlow decodes and resizes ("area"); the course uses OpenCV
    (INTER_AREA). Pixels and probabilities differ by a measured, bounded amount."""
    import tensorflow as tf

    paths = []
    for index, source in enumerate(exported["images"][:3]):
        big = cv2.resize(cv2.imread(str(source)), (96, 96), interpolation=cv2.INTER_CUBIC)
        for suffix in (".png", ".jpg"):
            path = tmp_path / f"big_{index}{suffix}"
            cv2.imwrite(str(path), big)
            paths.append(path)
    for path in paths:
        ours = tf.image.resize(tf.io.decode_image(path.read_bytes(), channels=3), (64, 64),
                               method="area")
        ours = np.clip(np.round(ours.numpy()), 0, 255)
        course = cv2.cvtColor(cv2.resize(cv2.imread(str(path)), (64, 64),
                                         interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        bound = 1 if path.suffix == ".png" else 12  # JPEG: two decoders' rounding, measured
        assert np.abs(ours - course).max() <= bound, (path.name, np.abs(ours - course).max())
        assert np.abs(ours - course).mean() < 1
    texts = TEXTS[:len(paths)]
    served = deploy.predict(exported["saved"], paths, texts)
    reference = _keras_reference(exported, paths, texts)
    assert np.abs(served - reference).max() < 0.02


def test_predict_accepts_the_saved_model_folder_with_the_same_output(exported):
    csv = exported["images"][0].parent.parent / "pairs.csv"
    rows = [f"images/{p.name},{t.replace(',', '')}"
            for p, t in zip(exported["images"], TEXTS, strict=True)]
    csv.write_text("image,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    outputs = []
    for model in (exported["keras"], exported["saved"]):
        completed = subprocess.run(
            [sys.executable, "-m", "mmcourse", "predict", "--model", str(model), "--csv",
             str(csv), "--json"], capture_output=True, text=True, cwd=REPO_ROOT, env=ENV,
            timeout=300)
        assert completed.returncode == 0, completed.stderr[-2000:]
        outputs.append(json.loads(completed.stdout)["predictions"])
    keras_rows, saved_rows = outputs
    assert [r["text"] for r in keras_rows] == [r["text"] for r in saved_rows]
    np.testing.assert_allclose([r["probability"] for r in saved_rows],
                               [r["probability"] for r in keras_rows], atol=2e-6)
    reference = _keras_reference(exported, exported["images"],
                                 [t.replace(",", "") for t in TEXTS])
    np.testing.assert_allclose([r["probability"] for r in saved_rows], reference, atol=2e-6)


@pytest.mark.parametrize(("kind", "atol"), [("float32", 1e-5), ("int8", 0.02)])
def test_tflite_variants_agree_with_the_keras_model(exported, kind, atol):
    path = exported["saved"] / deploy.TFLITE_FILES[kind]
    assert path.stat().st_size == exported["report"][f"tflite_{kind}_bytes"]
    reference = _keras_reference(exported, exported["images"], TEXTS)
    np.testing.assert_allclose(deploy.predict(path, exported["images"], TEXTS), reference,
                               atol=atol)
    # batch sizes change between calls: the interpreter's inputs are resized each time
    predictor = deploy.load(path)
    np.testing.assert_allclose(predictor(exported["images"][:1], TEXTS[:1]), reference[:1],
                               atol=atol)


def test_tflite_int8_is_smaller_and_the_blocking_ops_are_named(exported):
    report = exported["report"]
    assert report["tflite_int8_bytes"] < report["tflite_float32_bytes"]
    assert "StaticRegexReplace" in report["tflite_note"]
    assert "DecodeImage" in report["tflite_note"]
    settings = json.loads((exported["saved"] / deploy.PREPROCESSING_FILE).read_text("utf-8"))
    assert settings["tokens"][:2] == ["", "[UNK]"] and settings["sequence_length"] >= 1


def test_predict_cli_with_tflite_matches_the_keras_model(exported):
    outputs = []
    for model in (exported["keras"], exported["saved"] / deploy.TFLITE_FILES["float32"]):
        completed = _run("predict", "--model", model, "--image", exported["images"][0],
                         "--text", TEXTS[0], "--json")
        assert completed.returncode == 0, completed.stderr[-2000:]
        outputs.append(json.loads(completed.stdout))
    assert abs(outputs[0]["probability"] - outputs[1]["probability"]) <= 2e-6
    assert outputs[0]["label"] == outputs[1]["label"]


def test_rest_request_is_what_the_signature_accepts(exported):
    import tensorflow as tf

    request = json.loads(json.dumps(deploy.rest_request(exported["images"][:2], TEXTS[:2])))
    assert request["signature_name"] == "serving_default"
    first = request["instances"][0]
    assert set(first) == {"image", "text"} and set(first["image"]) == {"b64"}
    assert base64.b64decode(first["image"]["b64"]) == exported["images"][0].read_bytes()
    assert first["text"] == TEXTS[0]
    signature = tf.saved_model.load(str(exported["saved"])).signatures["serving_default"]
    response = json.loads(json.dumps(deploy.rest_response(signature, request)))
    reference = _keras_reference(exported, exported["images"][:2], TEXTS[:2])
    assert len(response["predictions"]) == 2
    np.testing.assert_allclose([p["probability"] for p in response["predictions"]], reference,
                               atol=1e-5)
    with pytest.raises(ValueError, match="signature_name must be 'serving_default'"):
        deploy.rest_response(signature, {**request, "signature_name": "predict"})
    with pytest.raises(ValueError, match="non-empty list 'instances'"):
        deploy.rest_response(signature, {"instances": []})


def _run(*arguments):
    return subprocess.run([sys.executable, "-m", "mmcourse", *map(str, arguments)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=ENV, timeout=300)


def _assert_clean_error(completed, status, *needles):
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status, (completed.returncode, completed.stderr)
    for needle in needles:
        assert needle in completed.stderr, (needle, completed.stderr)


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    qa = models.build_model("qa", "concat", vocabulary_size=20, num_answers=5)
    qa.save(root / "qa.keras")
    (root / "corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "corrupt.tflite").write_bytes(b"not a flatbuffer at all" * 10)
    (root / "tflite").mkdir()
    (root / "tflite" / "model.tflite").write_bytes(b"not a flatbuffer at all" * 10)
    (root / "tflite" / deploy.PREPROCESSING_FILE).write_text(
        json.dumps({"tokens": ["", "[UNK]", "red"], "sequence_length": 4}))
    (root / "empty_dir").mkdir()
    (root / "broken_saved").mkdir()
    (root / "broken_saved" / "saved_model.pb").write_bytes(b"garbage")
    return root


@pytest.mark.parametrize(("name", "needles"), [
    ("missing.keras", ["model file not found"]),
    ("qa.keras", ["not a raw-input match model"]),
    ("corrupt.keras", ["cannot load model", "not a .keras file"])])
def test_export_bad_models_exit_1_with_a_clear_message(bad_models, tmp_path, name, needles):
    completed = _run("export", "--model", bad_models / name, "--out", tmp_path / "out")
    _assert_clean_error(completed, 1, "--model", *needles)
    assert not (tmp_path / "out" / "saved_model.pb").exists()


@pytest.mark.parametrize(("name", "needles"), [
    ("missing.keras", ["model file not found"]),
    ("qa.keras", ["not a raw-input match model"]),
    ("corrupt.keras", ["cannot load model"]),
    ("corrupt.tflite", ["text_preprocessing.json", "not found"]),
    ("tflite/model.tflite", ["cannot load TFLite model"]),
    ("empty_dir", ["holds no saved_model.pb"]),
    ("broken_saved", ["cannot load SavedModel"])])
def test_predict_bad_models_exit_1_with_a_clear_message(bad_models, exported, name, needles):
    completed = _run("predict", "--model", bad_models / name, "--image", exported["images"][0],
                     "--text", "a red circle")
    _assert_clean_error(completed, 1, *needles)


def test_export_refuses_a_non_empty_out_folder(exported):
    completed = _run("export", "--model", exported["keras"], "--out", exported["saved"])
    _assert_clean_error(completed, 2, "argument --out", "is not empty")
    with pytest.raises(ValueError, match="not an empty folder"):
        deploy.export(exported["keras"], exported["saved"])


def test_a_lambda_layer_is_refused_in_safe_mode_and_runs_code_otherwise(tmp_path):
    marker = tmp_path / "marker.txt"
    path = deploy.lambda_model(tmp_path / "lambda.keras", marker)
    marker.unlink(missing_ok=True)  # building the model ran the payload once already
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(path, safe_mode=True)
    with pytest.raises(ValueError, match="Lambda"):
        deploy.load_keras(path, safe_mode=True)
    assert not marker.exists()
    model = deploy.load_keras(path, safe_mode=False)
    assert marker.read_text() == "code ran"
    assert model.layers[-1].name == "dense"


@pytest.mark.parametrize(("task", "fusion"), [("match", "concat"), ("match", "film"),
                                              ("qa", "attention")])
def test_the_course_models_load_in_safe_mode(tmp_path, task, fusion):
    model = models.build_model(task, fusion, vocabulary_size=20, num_answers=5)
    model.save(tmp_path / "m.keras")
    loaded = deploy.load_keras(tmp_path / "m.keras", safe_mode=True)
    assert len(loaded.weights) == len(model.weights)
    for saved, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))


def test_the_exported_raw_model_loads_in_safe_mode(exported):
    model = deploy.load_keras(exported["keras"], safe_mode=True)
    assert sorted(model.input) == ["image", "text"]


def test_convert_tflite_fixes_an_open_sequence_length_and_matches_keras():
    import tensorflow as tf

    model = models.build_model("match", "concat", vocabulary_size=30)  # token ids (B, None)
    with pytest.raises(ValueError, match="fixed sequence length"):
        deploy.convert_tflite(model)
    content = deploy.convert_tflite(model, sequence_length=6)
    rng = np.random.default_rng(0)
    images = rng.random((3, 64, 64, 3)).astype(np.float32)
    token_ids = rng.integers(2, 30, (3, 6)).astype(np.int32)
    token_ids[:, 4:] = 0  # padding: the mask must survive the unrolling
    interpreter = tf.lite.Interpreter(model_content=content)
    for detail in interpreter.get_input_details():
        interpreter.resize_tensor_input(detail["index"], (3, *detail["shape"][1:]))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], images if len(detail["shape"]) == 4
                               else token_ids)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(output.ravel(), np.asarray(model([images, token_ids])).ravel(),
                               atol=1e-5)


def test_export_command_writes_the_saved_model_and_tflite_files(exported, tmp_path):
    completed = _run("export", "--model", exported["keras"], "--out", tmp_path / "out",
                     "--tflite", "--json")
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"saved_model.pb", "variables", deploy.PREPROCESSING_FILE,
            *deploy.TFLITE_FILES.values()} <= set(written)
    for kind, name in deploy.TFLITE_FILES.items():
        assert report[f"tflite_{kind}_bytes"] == (tmp_path / "out" / name).stat().st_size
    served = deploy.predict(tmp_path / "out", exported["images"][:2], TEXTS[:2])
    np.testing.assert_allclose(served, _keras_reference(exported, exported["images"][:2],
                                                        TEXTS[:2]), atol=1e-5)
