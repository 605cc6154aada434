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

from mmcourse import REPO_ROOT
from mmcourse.apps import (
    deploy,
    owndata,
    predictors,
    raw_model,
    safe_loading,
    tf_text,
    tfserving_rest,
)
from mmcourse.cli import commands_deploy
from mmcourse.data import scans, statements, text
from mmcourse.data import scenes as data
from mmcourse.matcher import io as matcher_io
from mmcourse.matcher import model as models
from mmcourse.train import tasks as training

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
TEXTS = ["a small red circle", "一个小的红色圆形", "Ａ LARGE blue square!", "a green, triangle",
         "red", "a small red circle"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    folder = scans.write_shapes_folder(root / "shapes", count=60, seed=0)
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
served = {name: [v.decode("utf-8") if isinstance(v, bytes) else v for v in t.numpy().tolist()]
          for name, t in outputs.items()}
if "answers" in loaded.signatures:
    served["answers"] = [a.decode("utf-8") for a in
                         loaded.signatures["answers"]()["answers"].numpy().tolist()]
print(json.dumps({**served, "modules": sorted(m for m in ("mmcourse",) if m in sys.modules),
                  "inputs": sorted(signature.structured_input_signature[1])}))
"""


def _serve_without_mmcourse(model, images, texts, cwd):
    request = {"model": str(model), "images": [str(p) for p in images], "texts": texts}
    completed = subprocess.run([sys.executable, "-I", "-c", SERVER], input=json.dumps(request),
                               capture_output=True, text=True, cwd=cwd, env=ENV, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])
    assert served["modules"] == []
    assert served["inputs"] == ["image", "text"]
    return served


def test_saved_model_runs_without_mmcourse_and_agrees_with_predict(exported, tmp_path):
    served = _serve_without_mmcourse(exported["saved"], exported["images"], TEXTS, tmp_path)
    assert sorted(served) == ["inputs", "modules", "probability"]
    reference = _keras_reference(exported, exported["images"], TEXTS)
    np.testing.assert_allclose(served["probability"], reference, atol=1e-5)
    predicted = raw_model.predict(raw_model.load_raw_model(exported["keras"]), exported["images"],
                                  TEXTS)
    np.testing.assert_allclose(served["probability"], predicted, atol=1e-5)


@pytest.mark.parametrize("sample", [
    "a small red circle", "红色圆形，在左边！", "Ａ　ＢＩＧ blue-square?!", "“引号”与「括号」",
    "Tabs\tand\nnewlines  here", "CAFÉ déjà vu", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３", "αβγ ΔΕ",
    "", "...", "mixed中文and English混合", "①②③ ﬁne ㎏"])
def test_tf_standardize_matches_the_python_standardize(sample):
    import tensorflow as tf

    keys, values = tf_text.nfkc_table()
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), "")
    result = tf_text.tf_standardize(tf.constant([sample]), table).numpy()[0].decode("utf-8")
    assert result == text.standardize(sample)


def test_nfkc_table_holds_known_pairs():
    pairs = dict(zip(*tf_text.nfkc_table(), strict=True))
    assert pairs["Ａ"] == "A" and pairs["，"] == "," and pairs["\u3000"] == " "
    assert pairs["ﬁ"] == "fi" and "a" not in pairs and "红" not in pairs


def test_signature_resizes_other_sizes_as_the_course_does(exported, tmp_path):
    """96x96 PNG and JPEG: the signature decodes and resizes in-graph by the image contract
    (mmcourse.data.images), to the pixels of the course's reader, so the answers are equal."""
    paths = []
    for index, source in enumerate(exported["images"][:3]):
        big = cv2.resize(cv2.imread(str(source)), (96, 96), interpolation=cv2.INTER_CUBIC)
        for suffix in (".png", ".jpg"):
            path = tmp_path / f"big_{index}{suffix}"
            cv2.imwrite(str(path), big)
            paths.append(path)
    texts = TEXTS[:len(paths)]
    served = predictors.predict(exported["saved"], paths, texts)
    course = raw_model.predict(raw_model.load_raw_model(exported["keras"]), paths, texts)
    np.testing.assert_allclose(served, course, atol=1e-6)
    opencv = _keras_reference(exported, paths, texts)  # INTER_AREA: within a level of it
    assert np.abs(served - opencv).max() < 0.02


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
    np.testing.assert_allclose(predictors.predict(path, exported["images"], TEXTS), reference,
                               atol=atol)
    # batch sizes change between calls: the interpreter's inputs are resized each time
    predictor = predictors.load_predictor(path)
    np.testing.assert_allclose(predictor(exported["images"][:1], TEXTS[:1]), reference[:1],
                               atol=atol)


def test_tflite_int8_is_smaller_and_the_blocking_ops_are_named(exported):
    report = exported["report"]
    assert report["tflite_int8_bytes"] < report["tflite_float32_bytes"]
    assert "StaticRegexReplace" in report["tflite_note"]
    assert "DecodeJpeg" in report["tflite_note"] and "DecodePng" in report["tflite_note"]
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
    assert outputs[0]["predicted_label"] == outputs[1]["predicted_label"]
    assert "label" not in outputs[0]  # the prediction is never named like a CSV's column


def test_rest_request_is_what_the_signature_accepts(exported):
    import tensorflow as tf

    request = json.loads(json.dumps(tfserving_rest.rest_request(exported["images"][:2], TEXTS[:2])))
    assert request["signature_name"] == "serving_default"
    first = request["instances"][0]
    assert set(first) == {"image", "text"} and set(first["image"]) == {"b64"}
    assert base64.b64decode(first["image"]["b64"]) == exported["images"][0].read_bytes()
    assert first["text"] == TEXTS[0]
    signature = tf.saved_model.load(str(exported["saved"])).signatures["serving_default"]
    response = json.loads(json.dumps(tfserving_rest.rest_response(signature, request)))
    reference = _keras_reference(exported, exported["images"][:2], TEXTS[:2])
    assert len(response["predictions"]) == 2
    np.testing.assert_allclose([p["probability"] for p in response["predictions"]], reference,
                               atol=1e-5)
    with pytest.raises(ValueError, match="signature_name must be 'serving_default'"):
        tfserving_rest.rest_response(signature, {**request, "signature_name": "predict"})
    with pytest.raises(ValueError, match="non-empty list 'instances'"):
        tfserving_rest.rest_response(signature, {"instances": []})


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
    ("qa.keras", ["qa model that takes token ids", "lacks its vocabulary and answer words",
                  "--save model.keras", "--vocabulary data/vocab.json"]),
    ("corrupt.keras", ["cannot load model", "not a .keras file"])])
def test_export_bad_models_exit_1_with_a_clear_message(bad_models, tmp_path, name, needles):
    completed = _run("export", "--model", bad_models / name, "--out", tmp_path / "out")
    _assert_clean_error(completed, 1, "--model", *needles)
    assert not (tmp_path / "out" / "saved_model.pb").exists()


@pytest.mark.parametrize(("name", "needles"), [
    ("missing.keras", ["model file not found"]),
    ("qa.keras", ["not a raw-input match or qa model", "takes token ids",
                  "carries no vocabulary"]),
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
    path = safe_loading.lambda_model(tmp_path / "lambda.keras", marker)
    marker.unlink(missing_ok=True)  # building the model ran the payload once already
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(path, safe_mode=True)
    with pytest.raises(ValueError, match="Lambda"):
        safe_loading.load_keras(path, safe_mode=True)
    assert not marker.exists()
    model = safe_loading.load_keras(path, safe_mode=False)
    assert marker.read_text() == "code ran"
    assert model.layers[-1].name == "dense"


@pytest.mark.parametrize(("task", "fusion"), [("match", "concat"), ("match", "film"),
                                              ("qa", "attention")])
def test_the_course_models_load_in_safe_mode(tmp_path, task, fusion):
    model = models.build_model(task, fusion, vocabulary_size=20, num_answers=5)
    model.save(tmp_path / "m.keras")
    loaded = safe_loading.load_keras(tmp_path / "m.keras", safe_mode=True)
    assert len(loaded.weights) == len(model.weights)
    for saved, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(saved))


def test_the_exported_raw_model_loads_in_safe_mode(exported):
    model = safe_loading.load_keras(exported["keras"], safe_mode=True)
    assert sorted(model.input) == ["image", "text"]


def test_convert_tflite_fixes_an_open_sequence_length_and_matches_keras(capfd):
    import tensorflow as tf

    model = models.build_model("match", "concat", vocabulary_size=30)  # token ids (B, None)
    with pytest.raises(ValueError, match="fixed sequence length"):
        deploy.convert_tflite(model)
    capfd.readouterr()
    content = deploy.convert_tflite(model, sequence_length=6)
    assert capfd.readouterr().out == ""  # no "Saved artifact at ..." in a learner's output
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
    served = predictors.predict(tmp_path / "out", exported["images"][:2], TEXTS[:2])
    np.testing.assert_allclose(served, _keras_reference(exported, exported["images"][:2],
                                                        TEXTS[:2]), atol=1e-5)


# --- qa models: the answer word out, vocabulary and answer words inside ----------------------

QUESTIONS = ["what colour is the object", "what shape is the object",
             "WHAT SIZE is the object?", "什么 colour is the object", "what colour",
             "what shape is the object"]


@pytest.fixture(scope="module")
def qa_exported(tmp_path_factory):
    """A qa model trained briefly on the course data and saved by ``train(save=...)``, with
    its vocabulary and answer words inside; exported with TFLite."""
    root = tmp_path_factory.mktemp("qa")
    result = training.train("qa", "concat", "attributes", epochs=1, seed=0, train_size=256,
                            test_size=32, validate=False, log=None, keep_model=True,
                            save=root / "qa.keras")
    report = deploy.export(root / "qa.keras", root / "saved", tflite=True)
    records = data.load_records("qa", "attributes", "test")[:len(QUESTIONS)]
    images = [data.DATA_DIR / "attributes" / "test" / r["image"] for r in records]
    return {"root": root, "keras": root / "qa.keras", "saved": root / "saved", "core":
            result["model"], "report": report, "images": images}


def _qa_reference(qa_exported, images, questions):
    """The trained core model (image, token ids) on OpenCV pixels and the course's token ids;
    the answer words of ``mmcourse.data.statements.ANSWERS``."""
    batch = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in images])
    ids = text.vectorize(questions, warn=False)
    probabilities = np.asarray(qa_exported["core"]([batch.astype(np.float32) / 255, ids]))
    return [statements.ANSWERS[i] for i in probabilities.argmax(1)], probabilities


def test_train_save_stores_a_qa_model_with_its_vocabulary_and_answers(qa_exported):
    text.register_keras_objects()
    model = keras.saving.load_model(qa_exported["keras"], safe_mode=True)
    assert sorted(model.input) == ["image", "text"]
    assert deploy.answer_words(model) == list(statements.ANSWERS)
    assert deploy.split_raw_model(model)[1] == text.load_vocabulary()
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"], QUESTIONS)
    batch = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                      for p in qa_exported["images"]]).astype(np.float32) / 255
    outputs = model({"image": batch, "text": np.array(QUESTIONS, object)})
    assert [a.decode() for a in outputs["answer"].numpy()] == answers
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-6)


def test_qa_saved_model_runs_without_mmcourse_and_agrees_with_predict(qa_exported, tmp_path):
    served = _serve_without_mmcourse(qa_exported["saved"], qa_exported["images"], QUESTIONS,
                                     tmp_path)
    assert served["answers"] == list(statements.ANSWERS)
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"], QUESTIONS)
    assert served["answer"] == answers
    np.testing.assert_allclose(served["probabilities"], probabilities, atol=1e-5)
    np.testing.assert_allclose(served["probability"], probabilities.max(1), atol=1e-5)
    for images in (qa_exported["images"], [p.read_bytes() for p in qa_exported["images"]]):
        predicted = predictors.answer(qa_exported["keras"], images, QUESTIONS)
        assert predicted["answer"] == served["answer"]
        np.testing.assert_allclose(predicted["probabilities"], served["probabilities"],
                                   atol=1e-5)


@pytest.mark.parametrize(("kind", "atol"), [("saved", 1e-5), ("float32", 1e-5),
                                            ("int8", 0.02)])
def test_qa_answers_agree_across_formats(qa_exported, kind, atol):
    path = qa_exported["saved"] if kind == "saved" else \
        qa_exported["saved"] / deploy.TFLITE_FILES[kind]
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"], QUESTIONS)
    encoded = [p.read_bytes() for p in qa_exported["images"]]  # bytes, as a server gets them
    predicted = predictors.answer(path, encoded, QUESTIONS)
    np.testing.assert_allclose(predicted["probabilities"], probabilities, atol=atol)
    if kind != "int8":  # int8 may swap two close answers; its probabilities are bounded above
        assert predicted["answer"] == answers
    assert predictors.load_predictor(path).answers == list(statements.ANSWERS)
    with pytest.raises(ValueError, match="qa model, not a match model: use predictors.answer"):
        predictors.predict(path, qa_exported["images"], QUESTIONS)


def test_predict_command_answers_with_the_keras_file_and_the_saved_model(qa_exported, capsys):
    """``predict --model M --image F --text Q --json`` (``commands_deploy.run_predict``, in
    process)."""
    import argparse

    outputs = []
    for model in (qa_exported["keras"], qa_exported["saved"]):
        args = argparse.Namespace(model=str(model), image=str(qa_exported["images"][0]),
                                  text=QUESTIONS[0], csv=None, json=True)
        assert commands_deploy.run_predict(args) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"][:1],
                                           QUESTIONS[:1])
    assert outputs[0]["predicted_answer"] == outputs[1]["predicted_answer"] == answers[0]
    assert abs(outputs[0]["probability"] - probabilities[0].max()) <= 2e-6
    assert abs(outputs[1]["probability"] - probabilities[0].max()) <= 2e-6
    assert "label" not in outputs[0] and "predicted_label" not in outputs[0]


def test_qa_rest_request_gives_the_answer_words(qa_exported):
    import tensorflow as tf

    request = json.loads(json.dumps(tfserving_rest.rest_request(qa_exported["images"][:2],
                                                        QUESTIONS[:2])))
    assert set(request["instances"][0]) == {"image", "text"}
    assert request["instances"][1]["text"] == QUESTIONS[1]
    signature = tf.saved_model.load(str(qa_exported["saved"])).signatures["serving_default"]
    response = json.loads(json.dumps(tfserving_rest.rest_response(signature, request)))
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"][:2],
                                           QUESTIONS[:2])
    assert [p["answer"] for p in response["predictions"]] == answers
    np.testing.assert_allclose([p["probabilities"] for p in response["predictions"]],
                               probabilities, atol=1e-5)
    assert sorted(response["predictions"][0]) == ["answer", "probabilities", "probability"]


def test_export_wraps_a_token_id_qa_model_with_a_vocab_json(qa_exported, tmp_path):
    """``train --run-dir`` saves the core model (token ids in): export --vocabulary adds the
    course's vocab.json and answer words and serves the same answers."""
    qa_exported["core"].save(tmp_path / "core.keras")
    report = deploy.export(tmp_path / "core.keras", tmp_path / "out", vocabulary=data.DATA_DIR)
    assert report["task"] == "qa" and report["vocabulary_size"] == len(text.load_vocabulary())
    predicted = predictors.answer(tmp_path / "out", qa_exported["images"], QUESTIONS)
    answers, probabilities = _qa_reference(qa_exported, qa_exported["images"], QUESTIONS)
    assert predicted["answer"] == answers
    np.testing.assert_allclose(predicted["probabilities"], probabilities, atol=1e-5)


def test_export_of_a_qa_model_with_a_wrong_vocabulary_says_what_does_not_fit(bad_models,
                                                                           qa_exported,
                                                                           tmp_path):
    tokens = ["", "[UNK]", *(f"w{i}" for i in range(18))]  # 20 rows, as bad_models' qa.keras
    for name, content, needle in [
            ("no_answers.json", {"tokens": tokens}, "has no 'answers' list"),
            ("three.json", {"tokens": tokens, "answers": ["a", "b", "c"]},
             "5 answer units but answers holds 3 words"),
            ("short.json", {"tokens": tokens[:10], "answers": list("abcde")},
             "embedding has 20 rows but the vocabulary holds 10 tokens")]:
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(ValueError, match=needle):
            deploy.export(bad_models / "qa.keras", tmp_path / "out", vocabulary=tmp_path / name)
    with pytest.raises(ValueError, match="carries its vocabulary: drop --vocabulary"):
        deploy.export(qa_exported["keras"], tmp_path / "out", vocabulary=data.DATA_DIR)
    completed = _run("export", "--model", bad_models / "qa.keras", "--out", tmp_path / "out",
                     "--vocabulary", tmp_path / "missing.json")
    _assert_clean_error(completed, 2, "argument --vocabulary", "not found")
    assert not (tmp_path / "out").exists()


def test_answer_refuses_a_match_model(exported):
    with pytest.raises(ValueError, match="match model, not a qa model: use predictors.predict"):
        predictors.answer(exported["saved"], exported["images"][:1], TEXTS[:1])


def test_tflite_names_the_ops_that_block_the_anchored_transformer(tmp_path):
    model = models.build_model("qa", "anchored", vocabulary_size=20, num_answers=5)
    with pytest.raises(ValueError, match=r"StridedSlice \(layer hop2\).*without --tflite"):
        deploy.convert_tflite(model, sequence_length=6)


@pytest.mark.parametrize(("arguments", "needle"), [
    (["--task", "retrieval", "--save", "m.keras"], "only with --task match or qa"),
    (["--task", "qa", "--save", "m.h5"], "must end in .keras"),
    (["--task", "qa", "--strategy", "multiworker", "--save", "m.keras"], "multiworker")])
def test_train_save_bad_arguments_exit_2(arguments, needle):
    _assert_clean_error(_run("train", *arguments), 2, "argument --save", needle)


# --- the in-graph standardisation on combining sequences ------------------------------------


def _tf_standardize(samples):
    import tensorflow as tf

    tables = [tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(*pairs), "")
              for pairs in (tf_text.nfkc_table(), tf_text.composition_table())]
    return [t.decode("utf-8") for t in
            tf_text.tf_standardize(tf.constant(samples), *tables).numpy()]


@pytest.mark.parametrize(("sample", "expected"), [
    ("e\u0301", "\u00e9"),  # e + combining acute: é
    ("CAFE\u0301 de\u0301ja\u0300", "caf\u00e9 d\u00e9j\u00e0"),
    ("\uff45\u0301", "\u00e9"),  # full-width e + acute
    ("\uff21\uff22\uff23 \uff11\uff12\uff13", "abc 123"),  # full-width letters, digits
    ("\ufb01ne", "fine"),  # the fi ligature
    ("\uf900\uf901", "\u8c48 \u66f4"),  # CJK compatibility ideographs, Han: spaced
    ("e\u0323\u0302", "\u1ec7"),  # Vietnamese: dot below, circumflex
    ("e\u0302\u0323", "\u1ec7"),  # the same marks in the other order
    ("u\u0344", "\u01d8"),  # a mark whose NFKC is two marks
    ("\u1100\u1161\u11a8", "\uac01"),  # Hangul jamo L V T: 각
    ("\u3131\u314f", "\uac00"),  # compatibility jamo: 가
    ("\u0049\u0307 \u212b", "i\u0307 \u00e5")])  # İ decomposed, the angstrom sign
def test_tf_standardize_composes_combining_sequences(sample, expected):
    assert text.standardize(sample) == expected  # the hand-written value, via unicodedata
    assert _tf_standardize([sample]) == [expected]


def test_tf_standardize_agrees_on_every_decomposed_character():
    """Every character's NFD and NFKD form (a base and its marks, in canonical order):
    about 15,000 strings, each compared with Python's NFKC-based ``text.standardize``."""
    import unicodedata

    samples = set()
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        for form in ("NFD", "NFKD"):
            decomposed = unicodedata.normalize(form, chr(code))
            if decomposed != chr(code):
                samples.add(decomposed)
    samples = sorted(samples)
    assert len(samples) > 14000
    wrong = [(s, got) for s, got in zip(samples, _tf_standardize(samples), strict=True)
             if got != text.standardize(s)]
    assert not wrong, (len(wrong), wrong[:5])


def test_train_save_needs_a_keras_file_name():
    with pytest.raises(ValueError, match=r"save m\.h5: the file name must end in \.keras"):
        training.train("qa", "concat", save="m.h5")


def test_keras_predictor_answers_more_than_256_questions_in_order(tmp_path):
    """A qa ``.keras`` file (an untrained tiny core behind ``raw_input_model``, no training)
    asked 300 questions, more than one chunk of 256: every answer and probability row equals
    the core's own output on the pixels / 255 and the course's token ids, in order."""
    vocabulary, length, answers = text.load_vocabulary(), text.SEQUENCE_LENGTH, ["p", "q", "r"]
    image, ids = keras.Input((64, 64, 3)), keras.Input((length,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    words = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(len(vocabulary), 4)(ids))
    output = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers
                                .RandomNormal(stddev=3.0, seed=0))(
        keras.layers.Concatenate()([pooled, words]))
    core = keras.Model([image, ids], output)
    matcher_io.raw_input_model(core, vocabulary, length, answers).save(tmp_path / "qa.keras")
    colours = np.random.default_rng(0).integers(0, 256, (300, 1, 1, 3), dtype=np.uint8)
    images = list(np.broadcast_to(colours, (300, 64, 64, 3)).copy())  # one colour each
    questions = [QUESTIONS[i % len(QUESTIONS)] + " " * (i % 3) for i in range(300)]
    predictor = predictors.KerasPredictor(tmp_path / "qa.keras")
    assert (predictor.task, predictor.answers) == ("qa", answers)
    outputs = predictor.outputs(images, questions)
    token_ids = text.vectorize(questions, vocabulary=vocabulary, warn=False)
    expected = np.asarray(core([np.stack(images).astype(np.float32) / 255, token_ids]))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert outputs["answer"] == [answers[i] for i in expected.argmax(axis=1)]
    assert len(set(outputs["answer"])) == 3  # so that the answers' order is checked too
    np.testing.assert_allclose(outputs["probability"], expected.max(axis=1), atol=1e-5)


def test_first_line_keeps_the_useful_line_of_a_tensorflow_message():
    first = predictors._first_line
    assert first("\n  the file is empty  \nsecond line") == "the file is empty"
    assert first("{{function_node __inference_serve_1}} {{node DecodeImage}} Unknown image "
                 "file format.\n\t [[x]]") == "Unknown image file format."
    assert first("[[{{node Assert}}]] image contract: the image is 0 x 0 pixels]]") == \
        "image contract: the image is 0 x 0 pixels"
    assert first("") == "unknown error"
    assert first("x" * 300) == "x" * 200


# --- export's parts on tiny models and files written by hand (mutation audit, issue 28, 7) ---


def test_quiet_tensorflow_silences_file_descriptor_2_only_and_restores_it(capfd):
    import logging

    logger = logging.getLogger("tensorflow")
    level = logger.level
    capfd.readouterr()
    with deploy.quiet_tensorflow():
        os.write(2, b"I0000 a C++ log line\n")
        os.write(1, b"a result\n")
        assert logger.level == logging.ERROR
    os.write(2, b"an error after the block\n")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("a result\n", "an error after the block\n")
    assert logger.level == level


def test_read_vocabulary_file_takes_the_longest_sequence_the_file_states(tmp_path):
    tokens = ["", "[UNK]", "red", "circle"]
    (tmp_path / "vocab.json").write_text(json.dumps({
        "tokens": tokens, "sequence_length": 6, "sequence_lengths": {"qa": 9, "match": 4},
        "answers": ["yes", "no"]}), encoding="utf-8")
    expected = {"tokens": tokens, "sequence_length": 9, "answers": ["yes", "no"]}
    assert deploy.read_vocabulary_file(tmp_path) == expected  # the folder
    assert deploy.read_vocabulary_file(tmp_path / "vocab.json") == expected  # the file
    (tmp_path / "only.json").write_text(json.dumps({"tokens": tokens, "sequence_length": 7}))
    assert deploy.read_vocabulary_file(tmp_path / "only.json") == {
        "tokens": tokens, "sequence_length": 7, "answers": None}
    (tmp_path / "bare.json").write_text(json.dumps({"tokens": tokens}))
    assert deploy.read_vocabulary_file(tmp_path / "bare.json")["sequence_length"] == 12  # text's
    (tmp_path / "bad.json").write_text(json.dumps({"words": tokens}))
    with pytest.raises(ValueError, match=r"vocabulary .*bad\.json: not a vocab\.json"):
        deploy.read_vocabulary_file(tmp_path / "bad.json")


def _tiny_core(units, length=5):
    """A token-id core (image (B, 64, 64, 3), token ids (B, length)) with random weights:
    one sigmoid unit (match) or ``units`` softmax units (qa)."""
    image, ids = keras.Input((64, 64, 3)), keras.Input((length,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    words = keras.layers.Flatten()(keras.layers.Embedding(5, 3)(ids))
    initializer = keras.initializers.RandomNormal(stddev=2.0, seed=1)
    output = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax",
                                kernel_initializer=initializer)(
        keras.layers.Concatenate()([pooled, words]))
    return keras.Model([image, ids], output)


TINY_TOKENS = ["", "[UNK]", "red", "circle", "a"]


def test_exportable_model_wraps_a_token_id_model_with_the_vocabulary_file(tmp_path):
    (tmp_path / "match.json").write_text(json.dumps({"tokens": TINY_TOKENS, "sequence_length": 5}))
    (tmp_path / "qa.json").write_text(json.dumps({"tokens": TINY_TOKENS, "sequence_length": 5,
                                                  "answers": ["p", "q", "r"]}))
    pixels = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    texts = ["A red circle", "circle red blue"]
    ids = np.array([[4, 2, 3, 0, 0], [3, 2, 1, 0, 0]], np.int32)  # by hand: blue is [UNK]
    core = _tiny_core(1)
    raw = deploy.exportable_model(core, tmp_path / "match.json")  # no answers: a match model
    assert matcher_io.raw_model_task(raw) == "match"
    assert raw.get_layer("vectorizer").get_vocabulary() == TINY_TOKENS
    np.testing.assert_allclose(np.asarray(raw({"image": pixels, "text": np.array(texts)})),
                               np.asarray(core([pixels, ids])), atol=1e-6)
    with pytest.raises(ValueError, match="carries its vocabulary: drop --vocabulary"):
        deploy.exportable_model(raw, tmp_path / "match.json")
    qa_core = _tiny_core(3)
    qa = deploy.exportable_model(qa_core, tmp_path / "qa.json")
    assert matcher_io.raw_model_task(qa) == "qa" and deploy.answer_words(qa) == ["p", "q", "r"]
    np.testing.assert_allclose(
        np.asarray(qa({"image": pixels, "text": np.array(texts)})["probabilities"]),
        np.asarray(qa_core([pixels, ids])), atol=1e-6)
    with pytest.raises(ValueError, match="has no 'answers' list, which a qa model needs"):
        deploy.exportable_model(qa_core, tmp_path / "match.json")


def test_export_writes_no_tflite_unless_asked(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"tokens": TINY_TOKENS, "sequence_length": 5}))
    report = deploy.export(_tiny_core(1), tmp_path / "out", vocabulary=tmp_path)
    assert sorted(report) == ["saved_model", "saved_model_bytes", "sequence_length", "task",
                              "vocabulary_size"]
    assert (report["task"], report["vocabulary_size"], report["sequence_length"]) == \
        ("match", 5, 5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "assets", "fingerprint.pb", "saved_model.pb", "variables"]


def test_convert_tflite_keeps_a_fixed_sequence_length_and_refuses_a_one_input_core():
    import tensorflow as tf

    core = _tiny_core(1, length=5)
    interpreter = tf.lite.Interpreter(model_content=deploy.convert_tflite(core))  # no length
    shapes = sorted(tuple(d["shape"]) for d in interpreter.get_input_details())
    assert shapes == [(1, 5), (1, 64, 64, 3)]
    interpreter.allocate_tensors()
    pixels = np.full((1, 64, 64, 3), 0.5, np.float32)
    ids = np.array([[4, 2, 3, 0, 0]], np.int32)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], pixels if len(detail["shape"]) == 4 else ids)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(output, np.asarray(core([pixels, ids])), atol=1e-5)
    image = keras.Input((64, 64, 3))
    alone = keras.Model(image, keras.layers.Dense(1)(keras.layers.Flatten()(image)))
    with pytest.raises(ValueError, match=r"core must take \(image, token ids\)"):
        deploy.convert_tflite(alone, sequence_length=5)


def test_the_tflite_preprocessing_file_of_a_match_model_holds_exactly_what_an_app_needs(
        exported):
    settings = json.loads((exported["saved"] / deploy.PREPROCESSING_FILE).read_text("utf-8"))
    vectorizer = keras.saving.load_model(exported["keras"], safe_mode=True).get_layer(
        "vectorizer")
    assert settings == {"tokens": vectorizer.get_vocabulary(),
                        "sequence_length": vectorizer.get_config()["output_sequence_length"],
                        "standardize": text.STANDARDIZE, "image_size": 64}  # no answers


def test_blocking_ops_names_the_ops_and_layers_or_the_first_line_of_the_message():
    blocking = deploy._blocking_ops
    assert blocking(ValueError("x" * 300 + "\nmore")) == "x" * 200
    assert blocking(ValueError("  ")) == "ValueError"
    message = ("'tf.Einsum' op is neither a custom op nor a flex op\n"
               'loc(fused["Einsum:", "functional_1/anchored_attention_1/einsum/Einsum@x"]): '
               "'tf.Einsum' and 'tf.Erf'")
    assert blocking(ValueError(message)) == \
        "the TensorFlow ops Einsum, Erf (layer anchored_attention)"


def test_split_raw_model_refuses_a_raw_model_without_an_inner_core():
    image, words = keras.Input((64, 64, 3), name="image"), keras.Input((), dtype="string",
                                                                       name="text")
    ids = keras.layers.TextVectorization(output_sequence_length=5,
                                         vocabulary=["red", "circle"])(words)
    features = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(image),
                                           keras.ops.cast(ids, "float32")])
    flat = keras.Model({"image": image, "text": words},
                       keras.layers.Dense(1, activation="sigmoid")(features))
    assert matcher_io.raw_model_task(flat) == "match"  # a raw-input model, but all in one
    with pytest.raises(ValueError, match="one TextVectorization layer and one inner model "
                                         r"\(what raw_model.export_model makes\), got 1 and 0"):
        deploy.split_raw_model(flat)


def test_the_signature_runs_the_core_in_inference_mode():
    """A core with batch normalisation (``build_model(..., batch_norm=True)`` has it) whose
    moving statistics are set by hand: in inference mode the layer uses them, in training
    mode the batch's own; the signature must give what the Keras model gives in inference."""
    import tensorflow as tf

    image, ids = keras.Input((64, 64, 3)), keras.Input((5,), dtype="int32")
    pooled = keras.layers.BatchNormalization(name="bn")(
        keras.layers.GlobalAveragePooling2D()(image))
    words = keras.layers.Flatten()(keras.layers.Embedding(5, 3)(ids))
    core = keras.Model([image, ids], keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Concatenate()([pooled, words])))
    gamma, beta, _, _ = core.get_layer("bn").get_weights()
    core.get_layer("bn").set_weights([gamma, beta, np.full(3, 0.2, np.float32),
                                      np.full(3, 4.0, np.float32)])
    raw = matcher_io.raw_input_model(core, TINY_TOKENS, 5)
    colours = np.array([[[[10, 200, 30]]], [[[250, 5, 120]]]], np.uint8)
    pixels = np.broadcast_to(colours, (2, 64, 64, 3)).copy()
    encoded = [cv2.imencode(".png", cv2.cvtColor(p, cv2.COLOR_RGB2BGR))[1].tobytes()
               for p in pixels]
    texts = ["a red circle", "circle"]
    module = deploy.serving_module(raw)
    served = np.asarray(module.serve(tf.constant(encoded), tf.constant(texts))["probability"])
    expected = np.asarray(raw({"image": pixels.astype(np.float32) / 255,
                               "text": np.array(texts)})).ravel()
    trained = np.asarray(raw({"image": pixels.astype(np.float32) / 255,
                              "text": np.array(texts)}, training=True)).ravel()
    assert np.abs(trained - expected).max() > 1e-3  # the two modes differ here
    np.testing.assert_allclose(served, expected, atol=1e-5)
