"""Export: a model that leaves the notebook and runs where the course code is not
installed (notebook 10), what ``python -m mmcourse export`` writes.

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
  rebuilt from ``tf.strings`` ops, see ``tf_text.tf_standardize``). The model must carry its
  vocabulary (and answer words), as ``train --save`` and ``train --data-dir --save`` store
  them; for a model that takes token ids, ``vocabulary`` names the ``vocab.json`` of its data.
- With ``tflite=True``: TensorFlow Lite files of the numeric core (image float32
  (B, 64, 64, 3) in [0, 1], token ids int32 (B, L)), its LSTM unrolled, in float32 and
  with dynamic-range int8 weights, plus ``text_preprocessing.json`` (vocabulary, sequence
  length, answer words for qa). A core that TFLite builtins cannot express (the relational
  transformer's anchored attention) is a ``ValueError`` that names the blocking ops, before
  anything is written. The string ops of the preprocessing are not TFLite builtins
  (``conversion_blocker`` names them), so the app standardises and looks up tokens itself.

Images follow one contract on every path (``mmcourse.data.images``): the signature decodes PNG
and JPEG in-graph (``images.tf_decode_image``: EXIF orientation, 16 bits, grey, alpha over
white, the exact area resize) to the same pixels as the course's OpenCV reader, and refuses
what it cannot read the same way (TIFF, GIF, BMP, WebP, CMYK JPEG) with an error that says
so. The exported files are read back by ``mmcourse.apps.predictors`` (any of the three
formats) and served by ``python -m mmcourse serve``. TensorFlow and Keras are imported
inside the functions.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from mmcourse.apps import raw_model
from mmcourse.apps.tf_text import composition_table, nfkc_table, tf_standardize
from mmcourse.data import images as image_contract
from mmcourse.data import text
from mmcourse.names import MODEL_TASKS

IMAGE_SIZE = raw_model.IMAGE_SIZE
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


def split_raw_model(model):
    """(core model (image, token ids) -> P(match) or answer probabilities, vocabulary,
    sequence length) of a raw-input model made by ``raw_model.export_model`` or
    ``mmcourse.matcher.io.raw_input_model``. Introduced in notebook 10."""
    import keras

    raw_model.check_raw_model(model, tasks=TASKS)
    vectorizers = [layer for layer in model.layers
                   if isinstance(layer, keras.layers.TextVectorization)]
    cores = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(vectorizers) != 1 or len(cores) != 1:
        raise ValueError(f"model must hold one TextVectorization layer and one inner model "
                         f"(what raw_model.export_model makes), got {len(vectorizers)} and "
                         f"{len(cores)}")
    vectorizer = vectorizers[0]
    sequence_length = int(vectorizer.get_config()["output_sequence_length"])
    return cores[0], list(vectorizer.get_vocabulary()), sequence_length


def answer_words(model) -> list[str] | None:
    """The answer words of a raw-input qa model (its ``StringLookup`` layer ``answers``), in
    the order of its probabilities; None for a match model. Introduced in notebook 10."""
    if raw_model.check_raw_model(model, tasks=TASKS) == "match":
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


def exportable_model(model, vocabulary=None):
    """A raw-input model (match or qa) from a model or a ``.keras`` path. A model that takes
    token ids carries no vocabulary: it gets the one of ``vocabulary`` (a ``vocab.json`` or
    its folder, ``read_vocabulary_file``) wrapped around it
    (``mmcourse.matcher.io.raw_input_model``), or a ``ValueError`` that says what is missing
    and how to fix it. Introduced in notebook 10."""
    from mmcourse.matcher import io as matcher_io

    name = model if isinstance(model, (str, Path)) else "model"
    if isinstance(model, (str, Path)):
        model = raw_model.load_raw_model(model, tasks=None)
    task = matcher_io.raw_model_task(model)
    if task is not None and vocabulary is not None:
        raise ValueError(f"{name} is a raw-input {task} model that carries its vocabulary: "
                         f"drop --vocabulary (vocabulary=)")
    if task is not None:
        return model
    try:
        core = matcher_io.core_task(model)
    except ValueError:
        core = None
    if core is None:
        raw_model.check_raw_model(model, name, tasks=TASKS)  # raises, with what it found
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
        return matcher_io.raw_input_model(model, content["tokens"], content["sequence_length"],
                                          content["answers"] if core == "qa" else None)
    except ValueError as error:
        raise ValueError(f"vocabulary {vocabulary} does not fit {name}: {error}") from None


def export(model, out_dir, tflite: bool = False, vocabulary=None) -> dict:
    """Write ``model`` (a raw-input match or qa model, or its ``.keras`` path; a model that
    takes token ids with ``vocabulary``, see ``exportable_model``) as a SavedModel in ``out_dir``
    (see the module docstring); with ``tflite`` also the two ``.tflite`` files and
    ``text_preprocessing.json``. Returns what was written, with sizes in bytes, and the
    ``task``. Introduced in notebook 10."""
    import tensorflow as tf

    model = exportable_model(model, vocabulary)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"out_dir {out_dir} exists and is not an empty folder; give a new "
                         f"folder")
    module = serving_module(model)
    tflite_files = convert_tflite_files(module.core, module.sequence_length) if tflite \
        else {}  # before writing anything
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
    raw_model.register_keras_objects()
    copy = keras.Model.from_config(config)
    copy.set_weights(core.get_weights())
    return copy


def convert_tflite(core, quantize: bool = False, sequence_length: int | None = None) -> bytes:
    """The core model (image float32 (B, 64, 64, 3), token ids int32 (B, L)) as TFLite
    bytes, float32 or with dynamic-range int8 weights (``quantize``); ``sequence_length``
    fixes L when the core's token-id input leaves it open. Keras' export archive,
    then ``TFLiteConverter.from_saved_model`` with builtin ops only. Introduced in
    notebook 10."""
    kind = "int8" if quantize else "float32"
    return convert_tflite_files(core, sequence_length, kinds=(kind,))[kind]


def convert_tflite_files(core, sequence_length: int | None = None,
                         kinds=tuple(TFLITE_FILES)) -> dict:
    """``convert_tflite`` for each of ``kinds`` ("float32", "int8") from one unrolled copy and
    one export archive: ``{kind: bytes}``. ``export`` writes both files this way.
    Introduced in notebook 10."""
    import functools
    import tempfile

    import keras
    import tensorflow as tf

    if not kinds or set(kinds) - set(TFLITE_FILES):
        raise ValueError(f"kinds must be some of {sorted(TFLITE_FILES)}, got {kinds!r}")
    length = core.inputs[1].shape[1] if len(core.inputs) == 2 else None
    length = length or sequence_length
    if len(core.inputs) != 2 or length is None:
        raise ValueError(f"core must take (image, token ids) with a fixed sequence length "
                         f"(build_model(..., sequence_length=L), or pass sequence_length), got "
                         f"inputs {[tuple(i.shape) for i in core.inputs]}")
    model = unrolled(core, length)
    specs = [keras.InputSpec(shape=(None, *core.inputs[0].shape[1:]), dtype="float32"),
             keras.InputSpec(shape=(None, length), dtype="int32")]
    files = {}
    with tempfile.TemporaryDirectory() as folder, quiet_tensorflow():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", functools.partial(model.__call__, training=False),
                             input_signature=[specs])
        archive.write_out(folder, verbose=False)
        for kind in kinds:
            converter = tf.lite.TFLiteConverter.from_saved_model(folder)
            if kind == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            try:
                files[kind] = converter.convert()
            except Exception as error:  # noqa: BLE001  (ConverterError and others)
                raise ValueError(
                    f"--tflite: the model's numeric core does not convert to TFLite builtins, "
                    f"blocked by {_blocking_ops(error)}; these would need TF Select (Flex) "
                    f"ops, which the interpreter of tf.lite lacks. Export without --tflite: "
                    f"the SavedModel serves it") from None
    return files


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

