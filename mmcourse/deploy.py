"""Deployment: a model that leaves the notebook and runs where the course code is not
installed (notebook 10).

- ``export(model, out_dir, tflite=False)``: a TensorFlow SavedModel whose
  ``serving_default`` signature takes RAW inputs, ``image`` (a batch of encoded PNG or JPEG
  bytes, ``tf.string``) and ``text`` (a batch of strings), and returns ``probability``
  (B,) float32. Decoding, resizing, normalisation, the course's text standardisation and
  the vocabulary lookup all run as TensorFlow ops inside the signature, so a server needs
  TensorFlow only: no ``mmcourse``, no OpenCV, no Python function (the ``.keras`` model's
  standardisation is a ``tf.numpy_function``, which a SavedModel cannot carry; here it is
  rebuilt from ``tf.strings`` ops, see ``tf_standardize``).
- With ``tflite=True``: TensorFlow Lite files of the numeric core (image float32
  (B, 64, 64, 3) in [0, 1], token ids int32 (B, L)), its LSTM unrolled, in float32 and
  with dynamic-range int8 weights, plus ``text_preprocessing.json`` (vocabulary, sequence
  length). The string ops of the preprocessing are not TFLite builtins
  (``conversion_blocker`` names them), so the app standardises and looks up tokens itself.
- ``load(path)`` and ``predict(path, images, texts)``: the same probabilities from a
  ``.keras`` file, a SavedModel folder or a ``.tflite`` file.
- ``rest_request`` / ``rest_response``: TensorFlow Serving's REST "instances" format.
- ``lambda_model`` and ``load_keras``: what ``safe_mode`` protects against.

Images: PNG files of 64x64 pixels go through without resizing and give the same pixels as
the course's OpenCV reader. Other sizes are resized with ``tf.image.resize(method="area")``
and JPEGs decoded by TensorFlow's decoder: pixels may then differ from OpenCV's by a few
levels (``tests/test_deploy.py`` measures and bounds the probability difference).
TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import unicodedata
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmcourse import folders, owndata, text

IMAGE_SIZE = owndata.IMAGE_SIZE
SIGNATURE = "serving_default"
TFLITE_FILES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite"}
PREPROCESSING_FILE = "text_preprocessing.json"
@contextmanager
def quiet_tensorflow():
    """Silence TensorFlow's Python INFO log ("Assets written to ...") and what its C++ code
    prints on file descriptor 2 (the TFLite converter's op list, the XNNPACK notice) while
    the block runs; errors still raise. Introduced in notebook 10."""
    import logging

    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        logger.setLevel(level)


#: Han characters for the regular expression, the ranges of ``text.HAN_RANGES``.
_HAN_CLASS = "".join(f"\\x{{{low:X}}}-\\x{{{high:X}}}" for low, high in text.HAN_RANGES)


@lru_cache(maxsize=1)
def nfkc_table() -> tuple[list[str], list[str]]:
    """Every code point that Unicode NFKC changes, and what it becomes (about 4,900 pairs
    with the running Python's Unicode version): a lookup table lets TensorFlow apply NFKC
    character by character. Introduced in notebook 10."""
    keys, values = [], []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters
            continue
        character = chr(code)
        normal = unicodedata.normalize("NFKC", character)
        if normal != character:
            keys.append(character)
            values.append(normal)
    return keys, values


def tf_standardize(texts, table):
    """``text.standardize`` as TensorFlow string ops, for a ``tf.string`` tensor (B,):
    NFKC per character (``table``, a ``tf.lookup.StaticHashTable`` of ``nfkc_table``),
    Unicode lower case, ASCII and Unicode punctuation to spaces, a space around every Han
    character, whitespace collapsed. It agrees with ``text.standardize`` except on
    combining sequences that NFKC composes (e.g. "e" + U+0301). Introduced in notebook 10."""
    import tensorflow as tf

    characters = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    normal = tf.ragged.map_flat_values(table.lookup, characters)
    normal = tf.ragged.map_flat_values(
        lambda mapped, original: tf.where(mapped == "", original, mapped), normal, characters)
    joined = tf.strings.reduce_join(normal, axis=-1)
    lowered = tf.strings.lower(joined, encoding="utf-8")
    no_punctuation = tf.strings.regex_replace(lowered, r"[[:punct:]\pP]", " ")
    spaced = tf.strings.regex_replace(no_punctuation, f"([{_HAN_CLASS}])", r" \1 ")
    collapsed = tf.strings.regex_replace(spaced, r"[\s\pZ]+", " ")
    return tf.strings.strip(collapsed)


def split_raw_model(model):
    """(core model (image, token ids) -> P(match), vocabulary, sequence length) of a
    raw-input model made by ``owndata.export_model``. Introduced in notebook 10."""
    import keras

    owndata.check_raw_model(model)
    vectorizers = [layer for layer in model.layers
                   if isinstance(layer, keras.layers.TextVectorization)]
    cores = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(vectorizers) != 1 or len(cores) != 1:
        raise ValueError(f"model must hold one TextVectorization layer and one inner model "
                         f"(what owndata.export_model makes), got {len(vectorizers)} and "
                         f"{len(cores)}")
    vectorizer = vectorizers[0]
    sequence_length = int(vectorizer.get_config()["output_sequence_length"])
    return cores[0], list(vectorizer.get_vocabulary()), sequence_length


def serving_module(model):
    """A ``tf.Module`` with ``serve(image, text)``: raw inputs (encoded image bytes and
    strings, each (B,)) -> ``{"probability": (B,) float32}``, every step a TensorFlow op.
    Introduced in notebook 10."""
    import keras
    import tensorflow as tf

    core, vocabulary, sequence_length = split_raw_model(model)
    image_shape = tuple(core.inputs[0].shape[1:])
    if image_shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"model's image input must be ({IMAGE_SIZE}, {IMAGE_SIZE}, 3), got "
                         f"{image_shape}")
    keys, values = nfkc_table()
    module = tf.Module()
    module.core = core
    module.nfkc = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value="")
    module.vectorizer = keras.layers.TextVectorization(
        standardize=None, split="whitespace", output_mode="int",
        output_sequence_length=sequence_length, vocabulary=vocabulary[2:])

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        shape = tf.shape(image)

        def resize():
            area = tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE), method="area")
            return tf.cast(tf.clip_by_value(tf.round(area), 0, 255), tf.uint8)

        same = tf.logical_and(shape[0] == IMAGE_SIZE, shape[1] == IMAGE_SIZE)
        image = tf.cond(same, lambda: image, resize)
        return tf.ensure_shape(image, (IMAGE_SIZE, IMAGE_SIZE, 3))

    raw_specs = [tf.TensorSpec([None], tf.string, name="image"),
                 tf.TensorSpec([None], tf.string, name="text")]

    @tf.function(input_signature=raw_specs)
    def preprocess(image, text):
        pixels = tf.map_fn(decode, image, fn_output_signature=tf.TensorSpec(
            (IMAGE_SIZE, IMAGE_SIZE, 3), tf.uint8))
        token_ids = module.vectorizer(tf_standardize(text, module.nfkc))
        return tf.cast(pixels, tf.float32) / 255.0, tf.cast(token_ids, tf.int32)

    @tf.function(input_signature=raw_specs)
    def serve(image, text):
        pixels, token_ids = preprocess(image, text)
        probability = module.core([pixels, token_ids], training=False)
        return {"probability": tf.reshape(probability, [-1])}

    module.preprocess, module.serve = preprocess, serve
    module.vocabulary, module.sequence_length = vocabulary, sequence_length
    return module


def _load_raw(model):
    if isinstance(model, (str, Path)):
        return owndata.load_model(model)
    owndata.check_raw_model(model)
    return model


def export(model, out_dir, tflite: bool = False) -> dict:
    """Write ``model`` (a raw-input match model or its ``.keras`` path) as a SavedModel in
    ``out_dir`` (see the module docstring); with ``tflite`` also the two ``.tflite`` files
    and ``text_preprocessing.json``. Returns what was written, with sizes in bytes.
    Introduced in notebook 10."""
    import tensorflow as tf

    model = _load_raw(model)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"out_dir {out_dir} exists and is not an empty folder; give a new "
                         f"folder")
    module = serving_module(model)
    with quiet_tensorflow():
        tf.saved_model.save(module, str(out_dir), signatures={
            SIGNATURE: module.serve.get_concrete_function()})
    report = {"saved_model": str(out_dir), "saved_model_bytes": folder_bytes(out_dir),
              "vocabulary_size": len(module.vocabulary),
              "sequence_length": module.sequence_length}
    if tflite:
        core = module.core
        (out_dir / PREPROCESSING_FILE).write_text(json.dumps(
            {"tokens": module.vocabulary, "sequence_length": module.sequence_length,
             "standardize": text.STANDARDIZE, "image_size": IMAGE_SIZE}, ensure_ascii=False),
            encoding="utf-8")
        for kind, name in TFLITE_FILES.items():
            content = convert_tflite(core, quantize=kind == "int8",
                                     sequence_length=module.sequence_length)
            (out_dir / name).write_bytes(content)
            report[f"tflite_{kind}"] = str(out_dir / name)
            report[f"tflite_{kind}_bytes"] = len(content)
        report["tflite_note"] = conversion_blocker(module)
    return report


def folder_bytes(folder) -> int:
    """Total size in bytes of the files under ``folder``. Introduced in notebook 10."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def unrolled(core, sequence_length: int):
    """A copy of ``core`` (same weights, same outputs) whose token-id inputs have the fixed
    length ``sequence_length`` and whose LSTM layers are unrolled: a Python loop over the
    sequence instead of a ``while`` loop, which TFLite builtins cannot express with a dynamic
    batch. Rebuilt from the model's configuration (nested encoders included).
    Introduced in notebook 10."""
    import keras

    def edit(node):
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer" and \
                    list(node["config"].get("batch_shape", [])) == [None, None]:
                node["config"]["batch_shape"] = [None, int(sequence_length)]
            if node.get("class_name") == "LSTM":
                node["config"]["unroll"] = True
            for value in node.values():
                edit(value)
        elif isinstance(node, list):
            for value in node:
                edit(value)

    config = core.get_config()
    edit(config)
    owndata.register_keras_objects()
    copy = keras.Model.from_config(config)
    copy.set_weights(core.get_weights())
    return copy


def convert_tflite(core, quantize: bool = False, sequence_length: int | None = None) -> bytes:
    """The core model (image float32 (B, 64, 64, 3), token ids int32 (B, L)) as TFLite
    bytes, float32 or with dynamic-range int8 weights (``quantize``); ``sequence_length``
    fixes L when the core's token-id input leaves it open. Keras' export archive,
    then ``TFLiteConverter.from_saved_model`` with builtin ops only. Introduced in
    notebook 10."""
    import functools
    import tempfile

    import keras
    import tensorflow as tf

    length = core.inputs[1].shape[1] if len(core.inputs) == 2 else None
    length = length or sequence_length
    if len(core.inputs) != 2 or length is None:
        raise ValueError(f"core must take (image, token ids) with a fixed sequence length "
                         f"(build_model(..., sequence_length=L), or pass sequence_length), got "
                         f"inputs {[tuple(i.shape) for i in core.inputs]}")
    model = unrolled(core, length)
    specs = [keras.InputSpec(shape=(None, *core.inputs[0].shape[1:]), dtype="float32"),
             keras.InputSpec(shape=(None, length), dtype="int32")]
    with tempfile.TemporaryDirectory() as folder, quiet_tensorflow():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                             input_signature=[specs])
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def conversion_blocker(module) -> str:
    """Try to convert the raw-input preprocessing (``module.preprocess``: image bytes and
    strings to pixels and token ids) to TFLite builtins; a sentence naming the TensorFlow
    ops that block it (or saying that it converts). The converter's own log is silenced.
    Introduced in notebook 10."""
    import re

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.preprocess.get_concrete_function()], module)
    try:
        with quiet_tensorflow():
            converter.convert()
    except Exception as error:  # noqa: BLE001  (the converter raises ConverterError and others)
        ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(error))))
        named = ", ".join(ops) if ops else str(error).strip().splitlines()[0][:200]
        return (f"the raw-input preprocessing does not convert to TFLite builtins, blocked "
                f"by the TensorFlow ops {named}; so TFLite gets the numeric core, and the "
                f"app decodes images and looks up tokens itself")
    return "the raw-input preprocessing also converts to TFLite builtins"


# --- loading and predicting with any of the three formats ------------------------------------


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


def _image_bytes(images) -> list[bytes]:
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


class SavedModelPredictor:
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

    def __call__(self, images, texts) -> np.ndarray:
        import tensorflow as tf

        outputs = self.signature(image=tf.constant(_image_bytes(images)),
                                 text=tf.constant([t.encode("utf-8") for t in texts]))
        return outputs["probability"].numpy().astype(np.float64)


class TFLitePredictor:
    """A ``.tflite`` core model with its ``text_preprocessing.json`` (same folder): images
    read and resized with OpenCV, texts vectorised with the saved vocabulary, in Python.
    Introduced in notebook 10."""

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
        """P(match) (B,) for float32 images (B, 64, 64, 3) in [0, 1] and int32 token ids."""
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
        return interpreter.get_tensor(self.output_index).reshape(-1).astype(np.float64)

    def __call__(self, images, texts) -> np.ndarray:
        ids = text.vectorize(list(texts), vocabulary=self.vocabulary,
                             sequence_length=self.sequence_length, warn=False)
        return self.run(owndata._image_batch(images), ids)


def load(path):
    """A callable ``(images, texts) -> probabilities (N,)`` for a ``.keras`` file, an
    exported SavedModel folder or a ``.tflite`` file. Introduced in notebook 10."""
    kind = model_kind(path)
    if kind == "saved_model":
        return SavedModelPredictor(path)
    if kind == "tflite":
        return TFLitePredictor(path)
    model = owndata.load_model(path)
    return lambda images, texts: owndata.predict(model, images, texts)


def predict(model, images, texts) -> np.ndarray:
    """P(text matches image) (N,) with a model path of any kind (``load``) or a loaded
    predictor; images are files, bytes or RGB uint8 arrays. Introduced in notebook 10."""
    images, texts = owndata.check_pairs(images, texts)
    if isinstance(model, (str, Path)):
        model = load(model)
    return np.asarray(model(images, texts), np.float64)


def main_predict(args) -> int:
    """``python -m mmcourse predict --model M (--image F --text T | --csv FILE) [--json]``.
    0 on success, 1 on a bad model, image or CSV (clear message, no traceback).
    MODEL is a ``.keras`` file, an exported SavedModel folder or a ``.tflite`` file.
    Introduced in notebook 09; the other formats in notebook 10."""
    try:
        model = load(args.model)
        if args.csv is not None:
            captions = folders.read_captions(args.csv)
            if captions.problems:
                raise folders.DataError("\n".join(str(p) for p in captions.problems))
            folder = Path(args.csv).parent
            rows = captions.rows
            images = [folder / row.image for row in rows]
            texts = [row.text for row in rows]
        else:
            images, texts, rows = [Path(args.image)], [args.text], None
        probabilities = predict(model, images, texts)
    except (folders.DataError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    results = [{"image": str(image), "text": caption, "probability": round(float(p), 6),
                "label": int(p > 0.5)}
               for image, caption, p in zip(images, texts, probabilities, strict=True)]
    if rows is not None:
        for result, row in zip(results, rows, strict=True):
            result["line"] = row.line
    if args.json:
        print(json.dumps(results[0] if rows is None else {"predictions": results},
                         ensure_ascii=False))
    else:
        for result in results:
            verdict = "matches" if result["label"] else "does not match"
            print(f"{result['probability']:.3f}  label {result['label']}  ({verdict}) "
                  f"{result['image']}  {result['text']!r}")
    return 0


# --- TensorFlow Serving's REST format ---------------------------------------------------------


def rest_request(images, texts) -> dict:
    """The JSON body TensorFlow Serving's REST API takes for the exported signature
    (``POST /v1/models/NAME:predict``): binary inputs as ``{"b64": ...}``.
    Introduced in notebook 10."""
    encoded = _image_bytes(images)
    return {"signature_name": SIGNATURE, "instances": [
        {"image": {"b64": base64.b64encode(data).decode("ascii")}, "text": caption}
        for data, caption in zip(encoded, texts, strict=True)]}


def rest_response(signature, request: dict) -> dict:
    """What TensorFlow Serving answers for ``request`` (a dict, e.g. ``json.loads`` of the
    body): the instances decoded as the server does (``{"b64": s}`` -> bytes), the signature
    called, ``{"predictions": [{"probability": p}, ...]}``. Introduced in notebook 10."""
    import tensorflow as tf

    if request.get("signature_name", SIGNATURE) != SIGNATURE:
        raise ValueError(f"signature_name must be {SIGNATURE!r}, got "
                         f"{request.get('signature_name')!r}")
    instances = request.get("instances")
    if not isinstance(instances, list) or not instances:
        raise ValueError("request must hold a non-empty list 'instances'")

    def decoded(value):
        return base64.b64decode(value["b64"]) if isinstance(value, dict) else \
            str(value).encode("utf-8")

    columns = {name: tf.constant([decoded(instance[name]) for instance in instances])
               for name in ("image", "text")}
    outputs = signature(**columns)
    rows = {name: tensor.numpy().tolist() for name, tensor in outputs.items()}
    return {"predictions": [{name: rows[name][i] for name in rows}
                            for i in range(len(instances))]}


# --- safe loading -----------------------------------------------------------------------------


def lambda_model(path, marker) -> Path:
    """Save a small ``.keras`` model with a ``Lambda`` layer whose code, when Keras rebuilds
    the model, writes the file ``marker``: a harmless stand-in for what a malicious file
    could run. Introduced in notebook 10."""
    import keras

    inputs = keras.Input(shape=(2,), name="x")
    outputs = keras.layers.Lambda(
        lambda x, marker: (__import__("pathlib").Path(marker).write_text("code ran"), x)[1],
        arguments={"marker": str(marker)}, name="payload")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense")(outputs))
    model.save(path)
    return Path(path)


def load_keras(path, safe_mode: bool = True, compile: bool = True):  # noqa: A002  (Keras' name)
    """``keras.saving.load_model(path, safe_mode=..., compile=...)`` after registering the
    course's objects. Under ``safe_mode=True`` a ``Lambda`` layer's Python code is refused: a
    ``ValueError`` that says so. Introduced in notebook 10."""
    import keras

    owndata.register_keras_objects()
    return keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
