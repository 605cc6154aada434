"""Exercises of notebook 10 (deployment): the batch size a latency budget allows, a TensorFlow
Serving REST request, what ``safe_mode`` refuses, and an experiment with the size of a
dynamic-range int8 TFLite file, measured by the checker.
"""

from __future__ import annotations

import base64

import numpy as np

from mmcourse.exercises import Exercise, ExerciseSet, Incorrect, Prediction, function_exercise

#: q1: the latency budget per request, in seconds.
Q1_BUDGET = 0.05


# q1's reference and solution: the batch size of highest throughput within the budget
def best_batch(seconds_per_batch):
    allowed = {size: seconds for size, seconds in seconds_per_batch.items()
               if seconds <= Q1_BUDGET}
    return max(allowed, key=lambda size: size / allowed[size])

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

#: q4: the stated bounds of the measured size ratio, float32 file / int8 file.
Q4_MIN_RATIO, Q4_MAX_RATIO = 1.5, 4.0


def _tflite_dtypes(content: bytes, name: str) -> set:
    """The dtypes of a TFLite file's tensors; ``Incorrect`` when it is not a TFLite file."""
    import warnings

    import tensorflow as tf

    if not isinstance(content, bytes):
        raise Incorrect(f"the {name} file should be the bytes convert_tflite returns, got "
                        f"{type(content).__name__}.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            interpreter = tf.lite.Interpreter(model_content=content)
    except (ValueError, RuntimeError):
        raise Incorrect(f"the {name} bytes are not a TFLite file.") from None
    return {np.dtype(detail["dtype"]).name for detail in interpreter.get_tensor_details()}


def _q4_files():
    """q4's reference: the float32 and int8 TFLite files of the prompt's model (cached)."""
    if not _Q4_FILES:
        from mmcourse.apps import deploy
        from mmcourse.matcher import model as models

        model = models.build_model("match", "concat", vocabulary_size=40, sequence_length=12)
        _Q4_FILES.extend(deploy.convert_tflite(model, quantize=q) for q in (False, True))
    return tuple(_Q4_FILES)


_Q4_FILES: list = []


def notebook_10() -> ExerciseSet:
    """Exercises of notebook 10 (deployment)."""

    q1_cases = [({1: 0.004, 8: 0.012, 32: 0.035, 128: 0.12},),
                ({1: 0.02, 4: 0.05, 16: 0.2},),  # 4 takes exactly the budget: allowed
                ({1: 0.002, 2: 0.003, 4: 0.008, 8: 0.02},),  # the largest is not the fastest
                ({1: 0.03, 64: 0.6},)]

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

    def check_sizes(answer):
        if isinstance(answer, (int, float, np.floating)):
            raise Incorrect("pass the two files' bytes, (float32 bytes, int8 bytes): the checker "
                            "measures them itself.")
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Incorrect(f"pass a pair (float32 bytes, int8 bytes), got {answer!r:.60}.")
        float_types = _tflite_dtypes(answer[0], "first (float32)")
        int8_types = _tflite_dtypes(answer[1], "second (int8)")
        if "int8" in float_types and "int8" not in int8_types:
            raise Incorrect("the other way round: the float32 file first, the int8 one second.")
        if "int8" in float_types:
            raise Incorrect("the first file holds int8 weights: convert it with quantize=False.")
        if "int8" not in int8_types:
            raise Incorrect("the second file holds no int8 tensor: convert it with "
                            "quantize=True.")
        ratio = len(answer[0]) / len(answer[1])
        if not Q4_MIN_RATIO <= ratio < Q4_MAX_RATIO:
            raise Incorrect(f"the files' size ratio measures {ratio:.2f}, outside the bounds "
                            f"[{Q4_MIN_RATIO}, {Q4_MAX_RATIO}): convert the prompt's model.")
        return ratio

    return ExerciseSet("notebook_10", [
        function_exercise(
            name="q1",
            prompt="Section 8 measured seconds per batch for several batch sizes. Write "
                   "best_batch(seconds_per_batch) that takes such a dict {batch size: seconds} "
                   "and returns the batch size with the highest throughput (examples per "
                   f"second) among those whose latency is at most the budget Q1_BUDGET = "
                   f"{Q1_BUDGET} s.",
            function=best_batch,
            cases=q1_cases,
            hints=["Throughput is batch_size / seconds; latency is the seconds themselves.",
                   "Keep the sizes with seconds <= Q1_BUDGET, then take the one with the "
                   "largest size / seconds."],
            imports="from mmcourse.exercises.notebook_10 import Q1_BUDGET",
            wrong=lambda: [
                lambda d: max(d, key=lambda size: size / d[size]),  # ignores the budget
                lambda d: min(d, key=d.get),  # the lowest latency
                lambda d: max(size for size, s in d.items() if s <= Q1_BUDGET),  # largest
                lambda d: max((size for size, s in d.items() if s < Q1_BUDGET),  # < not <=
                              key=lambda size: size / d[size]),
                lambda d: max(size / s for size, s in d.items() if s <= Q1_BUDGET),  # the rate
                lambda d: None],
        ),
        Exercise(
            name="q2",
            prompt="Write the JSON body (as a dict) that TensorFlow Serving's REST API takes "
                   "for one example: the image Q2_PNG and the text Q2_TEXT.",
            checker=check_request,
            hints=["{'signature_name': ..., 'instances': [{'image': ..., 'text': ...}]}",
                   "Binary values are written {'b64': base64.b64encode(data).decode('ascii')}."],
            solution_code=("from mmcourse.exercises.notebook_10 import Q2_PNG, Q2_TEXT\n"
                           "ex.q2.check(tfserving_rest.rest_request([Q2_PNG], [Q2_TEXT]))"),
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
                     "text": Q2_TEXT}]},
                None]),
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
                           [False, False, False, False], [True, False, True], None]),
        Exercise(
            name="q4",
            prompt="Experiment. Predict first: int8 weights take a quarter of the bytes of "
                   "float32 weights; is the int8 TFLite file 4 times smaller? Convert the course's "
                   "match model (models.build_model('match', 'concat', vocabulary_size=40, "
                   "sequence_length=12)) with deploy.convert_tflite(model, quantize=False) and "
                   "quantize=True, print the ratio of their sizes, and pass the pair of files' "
                   "bytes (float32, int8). The checker opens both with the TFLite interpreter, "
                   "checks which one holds int8 weights, and measures the ratio itself: it must "
                   f"lie in [{Q4_MIN_RATIO}, {Q4_MAX_RATIO}).",
            checker=check_sizes,
            hints=["convert_tflite returns the file's bytes: len() is its size.",
                   "Dynamic-range quantisation stores large weight tensors as int8; biases, "
                   "small tensors and the graph stay float32."],
            prediction=Prediction(
                "how many times smaller is the int8 file than the float32 one?",
                unit="x"),
            solution_code="ex.q4.predict(4)\n" +
            ("q4_model = models.build_model('match', 'concat', "
                           "vocabulary_size=40, sequence_length=12)\n"
                           "q4_files = [deploy.convert_tflite(q4_model, quantize=q) "
                           "for q in (False, True)]\n"
                           "print(round(len(q4_files[0]) / len(q4_files[1]), 2))\n"
                           "ex.q4.check(q4_files)"),
            reference=_q4_files,
            wrong=lambda: [
                1.87,  # the ratio typed in: not a measurement
                _q4_files()[::-1],  # swapped
                (_q4_files()[0], _q4_files()[0]),  # no quantisation
                (b"not a model", _q4_files()[1]),
                tuple(len(f) for f in _q4_files()),  # the sizes, not the files
                None, "2"]),
    ])
