"""Exercises of notebook 10 (deployment): the serving signature's inputs, a TensorFlow
Serving REST request, what ``safe_mode`` refuses, and an experiment with the size of a
dynamic-range int8 TFLite file.

``notebook_10()`` returns the ``ExerciseSet`` that the notebook's ``## Exercises`` section uses
(``from mmcourse.course_exercises import notebook_10``); see ``mmcourse.exercises`` for the
API and ``tests/test_course_exercises.py`` for how each exercise is tested.
"""

from __future__ import annotations

import base64

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Incorrect

#: q1: the serving signature's inputs and their dtypes, worked out by hand.
Q1_INPUTS = {"image": "string", "text": "string"}

#: q2: the text of the request, and a tiny valid PNG (1x1, red) as its image.
Q2_TEXT = "a small red circle"
Q2_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQIHWP4z8AAAAMBAQBb2/lEAAAAAElFTkSu"
    "QmCC")

#: q3: what a .keras file holds, and whether ``safe_mode=True`` loads it (by hand).
Q3_FILES = ["Dense layers only", "a Lambda layer with a Python lambda",
            "a TextVectorization with the registered mmcourse>standardize",
            "the course's FiLM fusion layer (registered)"]
Q3_LOADS = [True, False, True, True]


def notebook_10() -> ExerciseSet:
    """Exercises of notebook 10 (deployment)."""

    def check_inputs(answer):
        if not isinstance(answer, dict):
            raise Incorrect(f"give a dict {{input name: dtype name}}, got "
                            f"{type(answer).__name__}.")
        answer = {str(k): str(v).replace("tf.", "").replace("<dtype: '", "").rstrip("'>")
                  for k, v in answer.items()}
        if sorted(answer) != ["image", "text"]:
            raise Incorrect(f"the signature has two inputs, image and text; got {sorted(answer)}.")
        if answer["image"] in ("float32", "uint8"):
            raise Incorrect("the image goes in encoded (PNG or JPEG bytes): decoding happens "
                            "inside the signature, so its dtype is string.")
        if answer != Q1_INPUTS:
            raise Incorrect(f"{answer} is not what structured_input_signature says.")

    def check_request(answer):
        if not isinstance(answer, dict):
            raise Incorrect(f"give the request body as a dict, got {type(answer).__name__}.")
        if answer.get("signature_name") != "serving_default":
            raise Incorrect("name the signature: \"signature_name\": \"serving_default\".")
        instances = answer.get("instances")
        if not isinstance(instances, list) or len(instances) != 1:
            raise Incorrect("\"instances\" is a list with one object per example (here one).")
        instance = instances[0]
        if not isinstance(instance, dict) or sorted(instance) != ["image", "text"]:
            raise Incorrect("each instance is an object with the keys image and text.")
        image = instance["image"]
        if isinstance(image, (bytes, str)):
            raise Incorrect("JSON has no bytes: binary inputs go as {\"b64\": base64 text}.")
        if not isinstance(image, dict) or sorted(image) != ["b64"]:
            raise Incorrect("the image is an object with one key, b64.")
        try:
            decoded = base64.b64decode(image["b64"], validate=True)
        except (ValueError, TypeError):
            raise Incorrect("the b64 value is not base64 text.") from None
        if decoded != Q2_PNG:
            raise Incorrect("the b64 value does not decode to Q2_PNG's bytes.")
        if instance["text"] != Q2_TEXT:
            raise Incorrect(f"the text must be {Q2_TEXT!r} as it is (the signature "
                            f"standardises it), got {instance['text']!r}.")

    def check_loads(answer):
        if not isinstance(answer, (list, tuple)) or len(answer) != len(Q3_FILES):
            raise Incorrect(f"give one True/False per file ({len(Q3_FILES)} in all).")
        answer = [bool(a) for a in answer]
        if answer[1]:
            raise Incorrect("a Lambda's Python code is exactly what safe_mode=True refuses.")
        if not answer[2] or not answer[3]:
            raise Incorrect("registered objects are loaded by name, not as code: safe_mode "
                            "allows them (the course's models all load with safe_mode=True).")
        if answer != Q3_LOADS:
            raise Incorrect(f"{answer} differs from what safe_mode does.")

    def check_ratio(answer):
        if not isinstance(answer, (int, float, np.floating)) or isinstance(answer, bool):
            raise Incorrect(f"give the ratio float32 bytes / int8 bytes as a number, got "
                            f"{answer!r}.")
        if answer < 1:
            raise Incorrect(f"{answer:.2f} < 1: that is int8 / float32; pass float32 / int8.")
        if abs(answer - 4) < 0.05:
            raise Incorrect("exactly 4 is the guess from 32 bits to 8 bits; measure the files: "
                            "biases, small tensors and the graph stay as they were.")
        if not 1.1 < answer < 3.9:
            raise Incorrect(f"{answer:.2f} is not a measured ratio of the two files of "
                            f"q4's model; convert it with quantize=False and True.")

    return ExerciseSet("notebook_10", [
        Exercise(
            name="q1",
            prompt="Read back the exported signature's inputs "
                   "(signature.structured_input_signature[1]) and pass a dict "
                   "{input name: dtype name}.",
            checker=check_inputs,
            hints=["loaded.signatures['serving_default'].structured_input_signature is "
                   "(args, kwargs); kwargs maps each input name to a TensorSpec.",
                   "A TensorSpec's dtype has a .name: 'string' for tf.string."],
            solution_code=(
                "q1_model = owndata.export_model(models.build_model(\n"
                "    'match', 'concat', vocabulary_size=4), ['', '[UNK]', 'red', 'circle'], 4)\n"
                "q1_folder = Path(tempfile.mkdtemp()) / 'q1'\n"
                "deploy.export(q1_model, q1_folder)\n"
                "signature = tf.saved_model.load(str(q1_folder)).signatures['serving_default']\n"
                "specs = signature.structured_input_signature[1]\n"
                "ex.q1.check({name: spec.dtype.name for name, spec in specs.items()})"),
            reference=lambda: dict(Q1_INPUTS),
            wrong=lambda: [{"image": "float32", "text": "string"},
                           {"image": "uint8", "text": "string"}, {"image": "string"},
                           ["image", "text"], {"image": "string", "text": "int32"}]),
        Exercise(
            name="q2",
            prompt="Write the JSON body (as a dict) that TensorFlow Serving's REST API takes "
                   "for one example: the image Q2_PNG and the text Q2_TEXT.",
            checker=check_request,
            hints=["{'signature_name': ..., 'instances': [{'image': ..., 'text': ...}]}",
                   "Binary values are written {'b64': base64.b64encode(data).decode('ascii')}."],
            solution_code=("from mmcourse.exercises_10 import Q2_PNG, Q2_TEXT\n"
                           "ex.q2.check(deploy.rest_request([Q2_PNG], [Q2_TEXT]))"),
            reference=lambda: {"signature_name": "serving_default", "instances": [
                {"image": {"b64": base64.b64encode(Q2_PNG).decode("ascii")}, "text": Q2_TEXT}]},
            wrong=lambda: [
                {"signature_name": "serving_default",
                 "instances": [{"image": Q2_PNG.hex(), "text": Q2_TEXT}]},
                {"instances": [{"image": {"b64": base64.b64encode(Q2_PNG).decode("ascii")},
                                "text": Q2_TEXT}]},
                {"signature_name": "serving_default", "instances": {
                    "image": {"b64": base64.b64encode(Q2_PNG).decode("ascii")},
                    "text": Q2_TEXT}},
                {"signature_name": "serving_default", "instances": [
                    {"image": {"b64": base64.b64encode(Q2_PNG).decode("ascii")},
                     "text": "small red circle"}]},
                {"signature_name": "serving_default", "instances": [
                    {"image": {"b64": base64.b64encode(b"not the png").decode("ascii")},
                     "text": Q2_TEXT}]}]),
        Exercise(
            name="q3",
            prompt="For each file of Q3_FILES, does keras.saving.load_model(path, "
                   "safe_mode=True) load it (after register_keras_objects)? One True/False "
                   "each.",
            checker=check_loads,
            hints=["safe_mode refuses Python code stored in the file (a lambda's bytecode).",
                   "Registered objects are stored by name; the loader looks them up."],
            solution_code="ex.q3.check([True, False, True, True])",
            reference=lambda: list(Q3_LOADS),
            wrong=lambda: [[True, True, True, True], [True, False, False, False],
                           [False, False, False, False], [True, False, True]]),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: how many times smaller is a dynamic-range int8 "
                   "TFLite file than the float32 one? Convert the course's match model "
                   "(models.build_model('match', 'concat', vocabulary_size=40, sequence_length=12)) with "
                   "deploy.convert_tflite(model, quantize=False) and quantize=True and pass "
                   "len(float32 bytes) / len(int8 bytes).",
            checker=check_ratio,
            hints=["convert_tflite returns the file's bytes: len() is its size.",
                   "Dynamic-range quantisation stores large weight tensors as int8; biases, "
                   "small tensors and the graph stay float32."],
            solution_code=("q4_model = models.build_model('match', 'concat', "
                           "vocabulary_size=40, sequence_length=12)\n"
                           "q4_sizes = [len(deploy.convert_tflite(q4_model, quantize=q))\n"
                           "            for q in (False, True)]\n"
                           "ex.q4.check(q4_sizes[0] / q4_sizes[1])"),
            reference=lambda: 1.8,
            wrong=lambda: [4.0, 0.55, 1.0, 8.0, "2"]),
    ])
