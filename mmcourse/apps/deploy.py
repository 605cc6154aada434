"""Deployment: a model that leaves the notebook and runs where the course code is not
installed (notebook 10).

- ``export(model, out_dir, tflite=False, vocabulary=None)``: a TensorFlow SavedModel whose
  ``serving_default`` signature takes RAW inputs, ``image`` (a batch of encoded PNG or JPEG
  bytes, ``tf.string``, read by the image contract of ``mmcourse.data.images``) and ``text`` (a batch of strings). A match model returns
  ``probability`` (B,) float32. A qa model (``text`` holds the questions) returns ``answer``
  (B,) string, the most probable answer word, ``probability`` (B,) its probability and
  ``probabilities`` (B, A), one column per answer word; the ``answers`` signature (no
  inputs) returns the A words in column order. Decoding, resizing, normalisation, the course's text standardisation and
  the vocabulary lookup all run as TensorFlow ops inside the signature, so a server needs
  TensorFlow only: no ``mmcourse``, no OpenCV, no Python function (the ``.keras`` model's
  standardisation is a ``tf.numpy_function``, which a SavedModel cannot carry; here it is
  rebuilt from ``tf.strings`` ops, see ``tf_standardize``). The model must carry its
  vocabulary (and answer words), as ``train --save`` and ``train --data-dir --save`` store
  them; for a model that takes token ids, ``vocabulary`` names the ``vocab.json`` of its data.
- With ``tflite=True``: TensorFlow Lite files of the numeric core (image float32
  (B, 64, 64, 3) in [0, 1], token ids int32 (B, L)), its LSTM unrolled, in float32 and
  with dynamic-range int8 weights, plus ``text_preprocessing.json`` (vocabulary, sequence
  length, answer words for qa). A core that TFLite builtins cannot express (the relational
  transformer's anchored attention) is a ``ValueError`` that names the blocking ops, before
  anything is written. The string ops of the preprocessing are not TFLite builtins
  (``conversion_blocker`` names them), so the app standardises and looks up tokens itself.
- ``load(path)``, ``predict(path, images, texts)`` (match) and ``answer(path, images,
  questions)`` (qa): the same outputs from a ``.keras`` file, a SavedModel folder or a
  ``.tflite`` file.
- ``rest_request`` / ``rest_response``: TensorFlow Serving's REST "instances" format.
- ``lambda_model`` and ``load_keras``: what ``safe_mode`` protects against.

Images follow one contract on every path (``mmcourse.data.images``): the signature decodes PNG
and JPEG in-graph (``images.tf_decode_image``: EXIF orientation, 16 bits, grey, alpha over
white, the exact area resize) to the same pixels as the course's OpenCV reader, and refuses
what it cannot read the same way (TIFF, GIF, BMP, WebP, CMYK JPEG) with an error that says
so. TensorFlow and Keras are imported inside the functions.
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

from mmcourse.apps import owndata
from mmcourse.data import folders, text
from mmcourse.data import images as image_contract
from mmcourse.matcher import model as models
from mmcourse.names import MODEL_TASKS

IMAGE_SIZE = owndata.IMAGE_SIZE
SIGNATURE = "serving_default"
TFLITE_FILES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite"}
PREPROCESSING_FILE = "text_preprocessing.json"
TASKS = MODEL_TASKS

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


#: Passes of ``tf_standardize``'s composition: a base character and up to this many
#: combining characters that compose with it one after the other.
COMPOSITION_PASSES = 3


@lru_cache(maxsize=1)
def composition_table() -> tuple[list[str], list[str]]:
    """Every pair (character, combining character) that Unicode canonical composition (NFC)
    turns into one character, and that character (about 12,200 pairs, 11,172 of them
    Hangul jamo): "e" + U+0301 -> "é", "ᄀ" + "ᅡ" -> "가", and the pairs whose marks NFC
    reorders first ("ê" + U+0323 -> "ệ"). The characters are the prefixes and results of
    every canonical decomposition (Hangul syllables with a final consonant left out: nothing
    composes with them); the marks are the characters after the first of a decomposition.
    Introduced in notebook 10."""
    prefixes, marks, composites = set(), set(), set()
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters
            continue
        character = chr(code)
        parts = unicodedata.normalize("NFD", character)
        if parts == character:
            continue
        if not 0xAC00 <= code <= 0xD7A3:  # Hangul syllables: their prefixes suffice
            composites.add(character)
        prefixes.update(unicodedata.normalize("NFC", parts[:k]) for k in range(1, len(parts)))
        marks.update(parts[1:])
    keys, values = [], []
    for first in sorted(prefixes | composites):
        for mark in sorted(marks):
            composed = unicodedata.normalize("NFC", first + mark)
            if len(composed) == 1:
                keys.append(first + mark)
                values.append(composed)
    return keys, values


def _compose(characters, table):
    """One pass of canonical composition over a ragged (B, None) tensor of single
    characters: each character that forms a pair of ``table`` (a
    ``tf.lookup.StaticHashTable`` of ``composition_table``) with the next one in its row
    becomes the composed character, and the next one is dropped. A character just consumed
    by its left neighbour does not start a pair in the same pass."""
    import tensorflow as tf

    flat, rows = characters.flat_values, characters.value_rowids()
    index = tf.range(tf.size(flat))
    after = tf.minimum(index + 1, tf.maximum(tf.size(flat) - 1, 0))  # gathers, not concats:
    before = tf.maximum(index - 1, 0)  # fewer ops that TFLite lacks for strings
    same_row = tf.logical_and(tf.equal(rows, tf.gather(rows, after)), index < tf.size(flat) - 1)
    composed = table.lookup(tf.strings.join([flat, tf.gather(flat, after)]))
    pair = tf.logical_and(same_row, composed != "")
    starts = tf.logical_and(pair, tf.logical_not(tf.logical_and(tf.gather(pair, before),
                                                                index > 0)))
    keep = tf.logical_not(tf.logical_and(tf.gather(starts, before), index > 0))
    flat = tf.where(starts, composed, flat)
    return tf.ragged.boolean_mask(characters.with_flat_values(flat),
                                  characters.with_flat_values(keep))


def tf_standardize(texts, table, composition=None):
    """``text.standardize`` as TensorFlow string ops, for a ``tf.string`` tensor (B,):
    NFKC per character (``table``, a ``tf.lookup.StaticHashTable`` of ``nfkc_table``), then
    canonical composition of combining sequences (``composition``, a table of
    ``composition_table``; ``COMPOSITION_PASSES`` passes), Unicode lower case, ASCII and
    Unicode punctuation to spaces, a space around every Han character, whitespace collapsed.

    What it covers (``tests/test_deploy.py`` compares with Python's ``unicodedata``): the
    NFKC of every single character, and the decomposed forms (NFD and NFKD) of every
    character, a base followed by its marks: "e" + U+0301 gives "é", Vietnamese "e" +
    U+0323 + U+0302 gives "ệ" (and in the other order of the two marks too), Hangul jamo
    U+1100 + U+1161 give "가" (the compatibility jamo "ㄱㅏ" too). What it does not: NFKC's
    canonical reordering of combining marks that do not compose (NFKC sorts a run of marks
    by combining class, so "e" + U+0301 + U+0323 becomes "ẹ" + U+0301 there and stays "é" +
    U+0323 here), and more than ``COMPOSITION_PASSES`` composing marks on one base. Without
    ``composition`` it composes nothing (the NFKC of each character alone).
    Introduced in notebook 10."""
    import tensorflow as tf

    characters = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    normal = tf.ragged.map_flat_values(table.lookup, characters)
    normal = tf.ragged.map_flat_values(
        lambda mapped, original: tf.where(mapped == "", original, mapped), normal, characters)
    joined = tf.strings.reduce_join(normal, axis=-1)
    if composition is not None:  # the NFKC of a character may be several characters
        characters = tf.strings.unicode_split(joined, "UTF-8")
        for _ in range(COMPOSITION_PASSES):
            characters = _compose(characters, composition)
        joined = tf.strings.reduce_join(characters, axis=-1)
    lowered = tf.strings.lower(joined, encoding="utf-8")
    no_punctuation = tf.strings.regex_replace(lowered, r"[[:punct:]\pP]", " ")
    spaced = tf.strings.regex_replace(no_punctuation, f"([{_HAN_CLASS}])", r" \1 ")
    collapsed = tf.strings.regex_replace(spaced, r"[\s\pZ]+", " ")
    return tf.strings.strip(collapsed)


def split_raw_model(model):
    """(core model (image, token ids) -> P(match) or answer probabilities, vocabulary,
    sequence length) of a raw-input model made by ``owndata.export_model`` or
    ``models.raw_input_model``. Introduced in notebook 10."""
    import keras

    owndata.check_raw_model(model, tasks=TASKS)
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


def answer_words(model) -> list[str] | None:
    """The answer words of a raw-input qa model (its ``StringLookup`` layer ``answers``), in
    the order of its probabilities; None for a match model. Introduced in notebook 10."""
    if owndata.check_raw_model(model, tasks=TASKS) == "match":
        return None
    return list(model.get_layer("answers").get_vocabulary())


def serving_module(model):
    """A ``tf.Module`` with ``serve(image, text)``: raw inputs (encoded image bytes and
    strings, each (B,)) -> ``{"probability": (B,) float32}`` for a match model, ``{"answer":
    (B,) string, "probability": (B,), "probabilities": (B, A)}`` for a qa model (then also
    ``answer_list()`` -> ``{"answers": (A,) string}``), every step a TensorFlow op.
    Introduced in notebook 10."""
    import keras
    import tensorflow as tf

    core, vocabulary, sequence_length = split_raw_model(model)
    image_shape = tuple(core.inputs[0].shape[1:])
    if image_shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"model's image input must be ({IMAGE_SIZE}, {IMAGE_SIZE}, 3), got "
                         f"{image_shape}")
    answers = answer_words(model)
    module = tf.Module()
    module.core = core
    module.nfkc, module.composition = (
        tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(*pairs), default_value="")
        for pairs in (nfkc_table(), composition_table()))
    module.vectorizer = keras.layers.TextVectorization(
        standardize=None, split="whitespace", output_mode="int",
        output_sequence_length=sequence_length, vocabulary=vocabulary[2:])

    def decode(data):
        return image_contract.tf_decode_image(data, IMAGE_SIZE)

    raw_specs = [tf.TensorSpec([None], tf.string, name="image"),
                 tf.TensorSpec([None], tf.string, name="text")]

    @tf.function(input_signature=raw_specs)
    def preprocess(image, text):
        pixels = tf.map_fn(decode, image, fn_output_signature=tf.TensorSpec(
            (IMAGE_SIZE, IMAGE_SIZE, 3), tf.uint8))
        token_ids = module.vectorizer(tf_standardize(text, module.nfkc, module.composition))
        return tf.cast(pixels, tf.float32) / 255.0, tf.cast(token_ids, tf.int32)

    if answers is not None:
        module.answers = tf.Variable(answers, trainable=False, name="answers")

        @tf.function(input_signature=[])
        def answer_list():
            return {"answers": tf.identity(module.answers)}

        module.answer_list = answer_list

    @tf.function(input_signature=raw_specs)
    def serve(image, text):
        pixels, token_ids = preprocess(image, text)
        probability = module.core([pixels, token_ids], training=False)
        if answers is None:
            return {"probability": tf.reshape(probability, [-1])}
        best = tf.argmax(probability, axis=-1, output_type=tf.int32)
        return {"answer": tf.gather(module.answers, best),
                "probability": tf.reduce_max(probability, axis=-1),
                "probabilities": probability}

    module.preprocess, module.serve = preprocess, serve
    module.vocabulary, module.sequence_length = vocabulary, sequence_length
    module.answer_words = answers
    return module


def read_vocabulary_file(path) -> dict:
    """``tokens``, ``sequence_length`` and ``answers`` (None if absent) of a ``vocab.json``
    (``path`` is the file or its folder, e.g. ``data/``), for a model that takes token ids;
    a ``ValueError`` that names ``vocabulary`` otherwise. Introduced in notebook 10."""
    path = Path(path)
    if path.is_dir():
        path = path / "vocab.json"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        tokens = content["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"vocabulary {path}: not a vocab.json with a 'tokens' list "
                         f"({type(error).__name__}: {error}); give the vocab.json of the data "
                         f"the model was trained on, e.g. data/vocab.json") from None
    # the longest sequence the data states: the LSTM skips padding, so any length that
    # holds every question gives the same answer
    lengths = [content.get("sequence_length", text.SEQUENCE_LENGTH),
               *(content.get("sequence_lengths") or {}).values()]
    return {"tokens": tokens, "sequence_length": int(max(lengths)),
            "answers": content.get("answers")}


def load_raw(model, vocabulary=None):
    """A raw-input model (match or qa) from a model or a ``.keras`` path. A model that takes
    token ids carries no vocabulary: it gets the one of ``vocabulary`` (a ``vocab.json`` or
    its folder, ``read_vocabulary_file``) wrapped around it (``models.raw_input_model``), or a
    ``ValueError`` that says what is missing and how to fix it. Introduced in notebook 10."""
    from mmcourse.matcher import model as models

    name = model if isinstance(model, (str, Path)) else "model"
    if isinstance(model, (str, Path)):
        model = owndata.load_model(model, tasks=None)
    task = models.raw_model_task(model)
    if task is not None and vocabulary is not None:
        raise ValueError(f"{name} is a raw-input {task} model that carries its vocabulary: "
                         f"drop --vocabulary (vocabulary=)")
    if task is not None:
        return model
    try:
        core = models.core_task(model)
    except ValueError:
        core = None
    if core is None:
        owndata.check_raw_model(model, name, tasks=TASKS)  # raises, with what it found
    if vocabulary is None:
        missing = "its vocabulary" + (" and answer words" if core == "qa" else "")
        raise ValueError(f"{name} is a {core} model that takes token ids: it lacks {missing}. "
                         f"Save the model with them inside (`python -m mmcourse train --task "
                         f"{core} ... --save model.keras`), or give the vocab.json of the data "
                         f"it was trained on (--vocabulary data/vocab.json)")
    content = read_vocabulary_file(vocabulary)
    if core == "qa" and content["answers"] is None:
        raise ValueError(f"vocabulary {vocabulary} has no 'answers' list, which a qa model "
                         f"needs: give the vocab.json of the course data it was trained on")
    try:
        return models.raw_input_model(model, content["tokens"], content["sequence_length"],
                                      content["answers"] if core == "qa" else None)
    except ValueError as error:
        raise ValueError(f"vocabulary {vocabulary} does not fit {name}: {error}") from None


def export(model, out_dir, tflite: bool = False, vocabulary=None) -> dict:
    """Write ``model`` (a raw-input match or qa model, or its ``.keras`` path; a model that
    takes token ids with ``vocabulary``, see ``load_raw``) as a SavedModel in ``out_dir``
    (see the module docstring); with ``tflite`` also the two ``.tflite`` files and
    ``text_preprocessing.json``. Returns what was written, with sizes in bytes, and the
    ``task``. Introduced in notebook 10."""
    import tensorflow as tf

    model = load_raw(model, vocabulary)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"out_dir {out_dir} exists and is not an empty folder; give a new "
                         f"folder")
    module = serving_module(model)
    tflite_files = {kind: convert_tflite(module.core, quantize=kind == "int8",
                                         sequence_length=module.sequence_length)
                    for kind in TFLITE_FILES} if tflite else {}  # before writing anything
    signatures = {SIGNATURE: module.serve.get_concrete_function()}
    if module.answer_words is not None:
        signatures["answers"] = module.answer_list.get_concrete_function()
    with quiet_tensorflow():
        tf.saved_model.save(module, str(out_dir), signatures=signatures)
    report = {"saved_model": str(out_dir), "saved_model_bytes": folder_bytes(out_dir),
              "task": "match" if module.answer_words is None else "qa",
              "vocabulary_size": len(module.vocabulary),
              "sequence_length": module.sequence_length}
    if tflite:
        settings = {"tokens": module.vocabulary, "sequence_length": module.sequence_length,
                    "standardize": text.STANDARDIZE, "image_size": IMAGE_SIZE}
        if module.answer_words is not None:
            settings["answers"] = module.answer_words
        (out_dir / PREPROCESSING_FILE).write_text(json.dumps(settings, ensure_ascii=False),
                                                  encoding="utf-8")
        for kind, content in tflite_files.items():
            (out_dir / TFLITE_FILES[kind]).write_bytes(content)
            report[f"tflite_{kind}"] = str(out_dir / TFLITE_FILES[kind])
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
        try:
            return converter.convert()
        except Exception as error:  # noqa: BLE001  (ConverterError and others)
            raise ValueError(f"--tflite: the model's numeric core does not convert to TFLite "
                             f"builtins, blocked by {_blocking_ops(error)}; these would need "
                             f"TF Select (Flex) ops, which the interpreter of tf.lite lacks. "
                             f"Export without --tflite: the SavedModel serves it") from None


def _blocking_ops(error) -> str:
    """The TensorFlow ops (and the layers they sit in) that a converter error names."""
    import re

    message = str(error)
    ops = sorted(set(re.findall(r"'tf\.(\w+)'", message)))
    layers = sorted(set(re.findall(r'fused\["\w+:", "[^"/]+/([A-Za-z]\w*?)(?:_\d+)?/',
                                   message)))
    if not ops:
        return message.strip().splitlines()[0][:200] if message.strip() else type(error).__name__
    return (f"the TensorFlow ops {', '.join(ops)}"
            + (f" (layer{'s' * (len(layers) > 1)} {', '.join(layers)})" if layers else ""))


def conversion_blocker(module) -> str:
    """Try to convert the raw-input preprocessing (``module.preprocess``: image bytes and
    strings to pixels and token ids) to TFLite builtins; a sentence naming the TensorFlow
    ops that block it (or saying that it converts). The converter's own log is silenced.
    Introduced in notebook 10."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.preprocess.get_concrete_function()], module)
    try:
        with quiet_tensorflow():
            converter.convert()
    except Exception as error:  # noqa: BLE001  (the converter raises ConverterError and others)
        return (f"the raw-input preprocessing does not convert to TFLite builtins, blocked "
                f"by {_blocking_ops(error)}; so TFLite gets the numeric core, and the "
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


def _decoded(images) -> list:
    """Images as files or RGB arrays: encoded bytes decoded with OpenCV (RGB uint8)."""
    return [folders.decode_image(bytes(image), f"images[{index}]", IMAGE_SIZE)
            if isinstance(image, (bytes, bytearray)) else image
            for index, image in enumerate(images)]


class Predictor:
    """What ``load`` returns: ``task`` ("match" or "qa") and ``outputs(images, texts)``, a
    dict with ``probability`` (N,) and, for qa, ``answer`` (N strings) and ``probabilities``
    (N, A) (columns: ``answers``). Calling it gives the match probabilities (N,).
    Introduced in notebook 10."""

    task, answers = "match", None

    def outputs(self, images, texts) -> dict:
        raise NotImplementedError

    def __call__(self, images, texts) -> np.ndarray:
        if self.task != "match":
            raise ValueError("this is a qa model: it answers questions; call "
                             "deploy.answer(model, images, questions) or .outputs(...)")
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
        self.model = owndata.load_model(path, tasks=TASKS)
        self.task = models.raw_model_task(self.model)
        self.answers = answer_words(self.model)

    def outputs(self, images, texts) -> dict:
        images = _decoded(images)
        if self.task == "match":
            return {"probability": owndata.predict(self.model, images, texts)}
        image_batch, text_batch = owndata._image_batch(images), np.array(texts, dtype=object)
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

        encoded = _image_bytes(images)
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
        result = self.run(owndata._image_batch(_decoded(images)), ids)
        return {"probability": result} if self.task == "match" else \
            _answer_outputs(result, self.answers)


def load(path) -> Predictor:
    """A ``Predictor`` for a ``.keras`` file, an exported SavedModel folder or a ``.tflite``
    file, match or qa: ``predictor(images, texts)`` gives match probabilities (N,),
    ``predictor.outputs(images, texts)`` every output. Introduced in notebook 10."""
    kind = model_kind(path)
    if kind == "saved_model":
        return SavedModelPredictor(path)
    if kind == "tflite":
        return TFLitePredictor(path)
    return KerasPredictor(path)


def _outputs(model, images, texts, task: str) -> dict:
    images, texts = owndata.check_pairs(images, texts)
    if isinstance(model, (str, Path)):
        model = load(model)
    if model.task != task:
        use = "deploy.predict(model, images, texts)" if model.task == "match" else \
            "deploy.answer(model, images, questions)"
        raise ValueError(f"model is a {model.task} model, not a {task} model: use {use}")
    return model.outputs(images, texts)


def predict(model, images, texts) -> np.ndarray:
    """P(text matches image) (N,) with a match model's path of any kind (``load``) or a
    loaded ``Predictor``; images are files, bytes or RGB uint8 arrays. Introduced in
    notebook 10."""
    return np.asarray(_outputs(model, images, texts, "match")["probability"], np.float64)


def answer(model, images, questions) -> dict:
    """A qa model's answers: ``{"answer": N strings, "probability": (N,) of each answer,
    "probabilities": (N, A)}`` with a path of any kind (``load``) or a loaded ``Predictor``
    (its ``answers`` name the columns). Introduced in notebook 10."""
    return _outputs(model, images, questions, "qa")


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
        model = load(args.model)
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
    called, ``{"predictions": [{"probability": p}, ...]}`` (a qa model: ``{"answer": word,
    "probability": p, "probabilities": [...]}``; strings as UTF-8 text, as the server writes
    them). Introduced in notebook 10."""
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
    rows = {name: [value.decode("utf-8") if isinstance(value, bytes) else value
                   for value in tensor.numpy().tolist()] for name, tensor in outputs.items()}
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
