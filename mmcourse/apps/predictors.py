"""Loading and predicting with any of the three formats that ``python -m mmcourse export``
writes (notebook 10): ``load(path)`` opens a ``.keras`` file, an exported SavedModel folder
or a ``.tflite`` file as a ``Predictor``; ``predict(model, images, texts)`` (match) and
``answer(model, images, questions)`` (qa) give the same outputs from each. Images are
files, encoded bytes or RGB uint8 arrays. TensorFlow and Keras are imported inside the
functions.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from mmcourse.apps import raw_model
from mmcourse.apps.deploy import (
    IMAGE_SIZE,
    PREPROCESSING_FILE,
    SIGNATURE,
    TASKS,
    answer_words,
    quiet_tensorflow,
)
from mmcourse.data import folders, text
from mmcourse.data import images as image_contract
from mmcourse.matcher import io as matcher_io


def model_kind(path) -> str:
    """``"keras"``, ``"saved_model"`` or ``"tflite"`` for a model path; ``ValueError`` for
    a missing path or another kind of file. Introduced in notebook 10."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"model folder {path} holds no saved_model.pb: give a folder "
                             f"written by `python -m mmcourse export`, or a .keras file")
        return "saved_model"
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    if path.suffix == ".tflite":
        return "tflite"
    return "keras"


def image_bytes(images) -> list[bytes]:
    """Encoded bytes of each image: a file's bytes as they are, an RGB uint8 array as PNG."""
    import cv2

    encoded = []
    for index, image in enumerate(images):
        if isinstance(image, (bytes, bytearray)):
            encoded.append(bytes(image))
        elif isinstance(image, (str, Path)):
            if not Path(image).is_file():
                raise ValueError(f"images[{index}]: image file not found: {image}")
            encoded.append(Path(image).read_bytes())
        else:
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"images[{index}] must be image bytes, an image file or an "
                                 f"RGB uint8 array (H, W, 3), got {array.dtype} {array.shape}")
            encoded.append(cv2.imencode(".png", cv2.cvtColor(array, cv2.COLOR_RGB2BGR))[1]
                           .tobytes())
    return encoded


def _decoded(images) -> list:
    """Images as files or RGB arrays: encoded bytes decoded with OpenCV (RGB uint8)."""
    return [folders.decode_image(bytes(image), f"images[{index}]", IMAGE_SIZE)
            if isinstance(image, (bytes, bytearray)) else image
            for index, image in enumerate(images)]


class Predictor:
    """What ``load_predictor`` returns: ``task`` ("match" or "qa") and ``outputs(images,
    texts)``, a dict with ``probability`` (N,) and, for qa, ``answer`` (N strings) and
    ``probabilities`` (N, A) (columns: ``answers``). Calling it gives the match
    probabilities (N,). Introduced in notebook 10."""

    task, answers = "match", None

    def outputs(self, images, texts) -> dict:
        raise NotImplementedError

    def __call__(self, images, texts) -> np.ndarray:
        if self.task != "match":
            raise ValueError("this is a qa model: it answers questions; call "
                             "predictors.answer(model, images, questions) or .outputs(...)")
        return self.outputs(images, texts)["probability"]


def _answer_outputs(probabilities, answers) -> dict:
    """The qa outputs from answer probabilities (N, A) and the A answer words."""
    probabilities = np.asarray(probabilities, np.float64)
    best = probabilities.argmax(axis=1)
    return {"answer": [answers[i] for i in best],
            "probability": probabilities[np.arange(len(best)), best],
            "probabilities": probabilities}


class KerasPredictor(Predictor):
    """A raw-input ``.keras`` model (match or qa), called on images read with OpenCV.
    Introduced in notebook 10."""

    def __init__(self, path):
        self.model = raw_model.load_raw_model(path, tasks=TASKS)
        self.task = matcher_io.raw_model_task(self.model)
        self.answers = answer_words(self.model)

    def outputs(self, images, texts) -> dict:
        images = _decoded(images)
        if self.task == "match":
            return {"probability": raw_model.predict(self.model, images, texts)}
        image_batch, text_batch = raw_model.stack_images(images), np.array(texts, dtype=object)
        chunks = [self.model({"image": image_batch[start:start + 256],
                              "text": text_batch[start:start + 256]}, training=False)
                  for start in range(0, len(texts), 256)]
        result = _answer_outputs(np.concatenate([np.asarray(c["probabilities"])
                                                 for c in chunks]), self.answers)
        result["answer"] = [a.decode("utf-8") for c in chunks for a in c["answer"].numpy()]
        return result


def _served_problem(data: bytes) -> str | None:
    return image_contract.served_problem(data) if data else "the file is empty"


def _image_name(image, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def _first_line(message: str) -> str:
    """The useful line of a TensorFlow error message: the assertion's text or the
    decoder's complaint, without the graph's node names."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if "image contract:" in line:
            return line[line.index("image contract:"):].rstrip("]").rstrip()
    first = lines[0] if lines else "unknown error"
    return first.split("}}")[-1].strip()[:200]


class SavedModelPredictor(Predictor):
    """The ``serving_default`` signature of an exported folder, called with raw inputs.
    Introduced in notebook 10."""

    def __init__(self, path):
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
            self.signature = loaded.signatures[SIGNATURE]
        except Exception as error:  # noqa: BLE001  (protobuf, op and key errors alike)
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ValueError(f"cannot load SavedModel {path} ({type(error).__name__}: "
                             f"{reason}); export one with `python -m mmcourse export`") from None
        self._loaded = loaded  # keeps the signature's variables alive
        if "answer" in self.signature.structured_outputs:
            self.task = "qa"
            self.answers = [a.decode("utf-8") for a in
                            loaded.signatures["answers"]()["answers"].numpy()]

    def outputs(self, images, texts) -> dict:
        import tensorflow as tf

        encoded = image_bytes(images)
        for index, data in enumerate(encoded):  # what the signature would refuse, named
            problem = _served_problem(data)
            if problem is not None:
                raise ValueError(f"images[{index}] ({_image_name(images[index], index)}): "
                                 f"{problem}")
        try:
            outputs = self.signature(image=tf.constant(encoded),
                                     text=tf.constant([t.encode("utf-8") for t in texts]))
        except tf.errors.InvalidArgumentError as error:  # a corrupt file: TF's decoder says
            raise ValueError(f"the exported model refused an image: "
                             f"{_first_line(error.message)}") from None
        result = {name: tensor.numpy() for name, tensor in outputs.items()}
        result["probability"] = result["probability"].astype(np.float64)
        if self.task == "qa":
            result["answer"] = [a.decode("utf-8") for a in result["answer"]]
            result["probabilities"] = result["probabilities"].astype(np.float64)
        return result


class TFLitePredictor(Predictor):
    """A ``.tflite`` core model with its ``text_preprocessing.json`` (same folder): images
    read and resized with OpenCV, texts vectorised with the saved vocabulary, in Python;
    a qa model's answer words come from the same file. Introduced in notebook 10."""

    def __init__(self, path):
        import tensorflow as tf

        path = Path(path)
        settings = path.parent / PREPROCESSING_FILE
        if not settings.is_file():
            raise ValueError(f"{settings} not found: a .tflite model needs the "
                             f"{PREPROCESSING_FILE} that `python -m mmcourse export --tflite` "
                             f"writes beside it (the vocabulary)")
        config = json.loads(settings.read_text(encoding="utf-8"))
        self.vocabulary, self.sequence_length = config["tokens"], config["sequence_length"]
        self.answers = config.get("answers")
        self.task = "match" if self.answers is None else "qa"
        try:
            with warnings.catch_warnings(), quiet_tensorflow():  # LiteRT will replace it
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                self.interpreter = tf.lite.Interpreter(model_path=str(path))
                self.interpreter.allocate_tensors()
        except Exception as error:  # noqa: BLE001
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            raise ValueError(f"cannot load TFLite model {path} ({type(error).__name__}: "
                             f"{reason}); convert one with `python -m mmcourse export "
                             f"--tflite`") from None
        details = self.interpreter.get_input_details()
        by_rank = {len(d["shape"]): d["index"] for d in details}
        if len(details) != 2 or set(by_rank) != {2, 4}:
            raise ValueError(f"{path} is not a course TFLite model (inputs image (B, 64, 64, 3) "
                             f"and token ids (B, L)), it has inputs "
                             f"{[tuple(d['shape']) for d in details]}")
        self.image_index, self.ids_index = by_rank[4], by_rank[2]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def run(self, image_batch, token_ids) -> np.ndarray:
        """P(match) (B,) for float32 images (B, 64, 64, 3) in [0, 1] and int32 token ids;
        answer probabilities (B, A) for a qa model."""
        interpreter = self.interpreter
        image_batch = np.asarray(image_batch, np.float32)
        token_ids = np.asarray(token_ids, np.int32)
        if self._batch != len(image_batch):
            interpreter.resize_tensor_input(self.image_index, image_batch.shape)
            interpreter.resize_tensor_input(self.ids_index, token_ids.shape)
            interpreter.allocate_tensors()
            self._batch = len(image_batch)
        interpreter.set_tensor(self.image_index, image_batch)
        interpreter.set_tensor(self.ids_index, token_ids)
        interpreter.invoke()
        output = interpreter.get_tensor(self.output_index).astype(np.float64)
        return output.reshape(-1) if self.task == "match" else output

    def outputs(self, images, texts) -> dict:
        ids = text.vectorize(list(texts), vocabulary=self.vocabulary,
                             sequence_length=self.sequence_length, warn=False)
        result = self.run(raw_model.stack_images(_decoded(images)), ids)
        return {"probability": result} if self.task == "match" else \
            _answer_outputs(result, self.answers)


def load_predictor(path) -> Predictor:
    """A ``Predictor`` for a ``.keras`` file, an exported SavedModel folder or a ``.tflite``
    file, match or qa: ``predictor(images, texts)`` gives match probabilities (N,),
    ``predictor.outputs(images, texts)`` every output. Introduced in notebook 10."""
    kind = model_kind(path)
    if kind == "saved_model":
        return SavedModelPredictor(path)
    if kind == "tflite":
        return TFLitePredictor(path)
    return KerasPredictor(path)


def predict_outputs(model, images, texts, task: str) -> dict:
    """The outputs of a ``task`` (``"match"`` or ``"qa"``) model for the pairs: ``predict``'s
    and ``answer``'s common core, with a path of any kind or a loaded ``Predictor``;
    ``ValueError`` when the model is of the other task. Introduced in notebook 10."""
    images, texts = raw_model.check_pairs(images, texts)
    if isinstance(model, (str, Path)):
        model = load_predictor(model)
    if model.task != task:
        use = "predictors.predict(model, images, texts)" if model.task == "match" else \
            "predictors.answer(model, images, questions)"
        raise ValueError(f"model is a {model.task} model, not a {task} model: use {use}")
    return model.outputs(images, texts)


def predict(model, images, texts) -> np.ndarray:
    """P(text matches image) (N,) with a match model's path of any kind (``load_predictor``)
    or a loaded ``Predictor``; images are files, bytes or RGB uint8 arrays. The contract of
    ``raw_model.predict`` (notebook 09, a Keras model in memory), for every exported format.
    Introduced in notebook 10."""
    return np.asarray(predict_outputs(model, images, texts, "match")["probability"], np.float64)


def answer(model, images, questions) -> dict:
    """A qa model's answers: ``{"answer": N strings, "probability": (N,) of each answer,
    "probabilities": (N, A)}`` with a path of any kind (``load_predictor``) or a loaded
    ``Predictor`` (its ``answers`` name the columns). Introduced in notebook 10."""
    return predict_outputs(model, images, questions, "qa")

