"""Text to token ids with a fixed vocabulary (introduced in notebook 01).

The vocabulary is saved beside the data as ``vocab.json`` and loaded into Keras'
``TextVectorization``, so a word gets the same id on every run and machine (a vocabulary
learnt with ``adapt`` would depend on the data seen). Index 0 is padding (``""``), index 1
is ``[UNK]`` for out-of-vocabulary words.

One standardisation serves every language, and the same function runs when a vocabulary
is built (``build_vocabulary``) and when texts are vectorised (``vectorize``, and the
``TextVectorization`` layer inside a saved model): ``standardize`` applies Unicode NFKC
(full-width letters and punctuation become their ASCII forms), lower case, replaces ASCII
and Unicode punctuation (Chinese 。，、！？「」 included) by spaces and puts spaces around
every Han character, so ``"红色圆形"`` gives the tokens 红 色 圆 形 (notebook 09). Texts are
then split on whitespace and padded with 0 or truncated to ``SEQUENCE_LENGTH`` (or the
``sequence_length`` a ``vocab.json`` states).

``vocab.json`` format (``save_vocabulary`` writes it): a JSON object with ``tokens`` (the
list, ``""`` and ``"[UNK]"`` first), ``sequence_length`` and, for the course data,
``answers`` (qa labels index this list). TensorFlow is imported only inside functions.
"""

from __future__ import annotations

import json
import string
import unicodedata
import warnings
from pathlib import Path

import numpy as np

from mmcourse import paths

SEQUENCE_LENGTH = 12
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
#: The registered name of ``standardize`` inside saved Keras models.
STANDARDIZE = "mmcourse>standardize"
#: Warn when more than this share of a text batch's tokens is out of the vocabulary.
OOV_WARNING = 0.2
#: Code point ranges (inclusive) of Han characters: CJK radicals, Extension A, the Unified
#: Ideographs, compatibility ideographs and the supplementary planes' extensions.
HAN_RANGES = ((0x2E80, 0x2FDF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
              (0x20000, 0x323AF))
_ASCII_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})


class OOVWarning(UserWarning):
    """Many tokens are out of the vocabulary (build one from your captions)."""


def is_han(character: str) -> bool:
    """Whether one character is a Han (Chinese) character. Introduced in notebook 09."""
    code = ord(character)
    return any(low <= code <= high for low, high in HAN_RANGES)


def standardize(text: str) -> str:
    """The course's one text standardisation, for any language: NFKC, lower case, ASCII and
    Unicode punctuation replaced by spaces, a space around each Han character, runs of
    whitespace collapsed. ``standardize("红色圆形，在左边！")`` is ``"红 色 圆 形 在 左 边"``.
    Introduced in notebook 01; the languages in notebook 09."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if text.isascii():  # fast path: NFKC changes no ASCII text, and there is no Han
        return " ".join(text.lower().translate(_ASCII_PUNCTUATION).split())
    pieces = []
    for character in unicodedata.normalize("NFKC", text):
        character = character.lower()
        if character in string.punctuation or unicodedata.category(character[0])[0] == "P":
            pieces.append(" ")
        elif is_han(character[0]):
            pieces.append(f" {character} ")
        else:
            pieces.append(character)
    return " ".join("".join(pieces).split())


def _standardize_array(values):
    """``standardize`` on a NumPy array of UTF-8 bytes (what ``tf.numpy_function`` passes)."""
    flat = [standardize(value.decode("utf-8", "replace") if isinstance(value, bytes)
                        else str(value)).encode("utf-8") for value in values.reshape(-1)]
    return np.array(flat, dtype=object).reshape(values.shape)


def register_keras_objects():
    """Register ``keras_standardize`` with Keras (as ``"mmcourse>standardize"``), so that a
    model holding a ``TextVectorization`` that uses it saves and loads with
    ``keras.saving.load_model(path, safe_mode=True)``. Idempotent; returns the function.
    Introduced in notebook 09."""
    import keras

    registered = keras.saving.get_custom_objects()
    if STANDARDIZE not in registered:
        keras.saving.register_keras_serializable(package="mmcourse", name="standardize")(
            keras_standardize)
    return registered[STANDARDIZE]


def keras_standardize(inputs):
    """``standardize`` as a TensorFlow op for ``TextVectorization(standardize=...)``: the
    same Python function runs inside the graph, so a saved model and ``build_vocabulary``
    can never disagree. Introduced in notebook 09."""
    import tensorflow as tf

    outputs = tf.numpy_function(_standardize_array, [inputs], tf.string, stateful=False)
    outputs.set_shape(inputs.shape)
    return outputs


def _read_vocab_file(root=None) -> dict:
    path = (Path(root) if root is not None else paths.DATA_DIR) / "vocab.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mmcourse data` or "
                                f"mmcourse.data.store.ensure_data()")
    return json.loads(path.read_text(encoding="utf-8"))


def load_vocabulary(root=None) -> list[str]:
    """The token list from ``root/vocab.json``: index 0 is "" (padding), 1 is "[UNK]".
    Introduced in notebook 01."""
    tokens = _read_vocab_file(root)["tokens"]
    if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
        raise ValueError(f"vocab.json must start with {PAD_TOKEN!r}, {OOV_TOKEN!r}; "
                         f"got {tokens[:2]}")
    return list(tokens)


def answer_vocabulary(root=None) -> list[str]:
    """The qa answer words; a qa label is an index into this list. Introduced in notebook 01."""
    return list(_read_vocab_file(root)["answers"])


def saved_sequence_length(root=None, level: str | None = None) -> int:
    """The ``sequence_length`` stated in ``root/vocab.json`` (``SEQUENCE_LENGTH`` if none),
    or the level's entry of its ``sequence_lengths`` (the Chinese data: one token per Han
    character, so the relations level needs longer sequences). Introduced in notebook 09."""
    try:
        vocab = _read_vocab_file(root)
    except FileNotFoundError:
        return SEQUENCE_LENGTH
    per_level = vocab.get("sequence_lengths") or {}
    return int(per_level.get(level, vocab.get("sequence_length", SEQUENCE_LENGTH)))


def save_vocabulary(tokens, path, sequence_length: int = SEQUENCE_LENGTH,
                    answers=None) -> Path:
    """Write a vocabulary as ``vocab.json`` (``path`` is the file or its folder): the
    module docstring describes the format; ``load_vocabulary(folder)`` reads it back.
    Introduced in notebook 09."""
    tokens = [str(token) for token in tokens]
    _check_tokens(tokens, "tokens")
    _check_sequence_length(sequence_length)
    path = Path(path)
    if path.is_dir():
        path = path / "vocab.json"
    content = {"tokens": tokens, "standardize": STANDARDIZE, "split": "whitespace",
               "sequence_length": int(sequence_length)}
    if answers is not None:
        content["answers"] = list(answers)
    path.write_text(json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def _check_tokens(tokens, name: str) -> None:
    if list(tokens[:2]) != [PAD_TOKEN, OOV_TOKEN]:
        raise ValueError(f"{name} must start with {PAD_TOKEN!r} (padding) and "
                         f"{OOV_TOKEN!r} (unknown words); got {list(tokens[:2])}")
    if len(set(tokens)) != len(tokens):
        duplicates = sorted({t for t in tokens if list(tokens).count(t) > 1})
        raise ValueError(f"{name} has duplicate tokens {duplicates[:5]}: each token once")


def _check_sequence_length(sequence_length) -> None:
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, (int, np.integer)) \
            or sequence_length < 1:
        raise ValueError(f"sequence_length must be an int >= 1, got {sequence_length!r}")


def make_vectorizer(root=None, vocabulary=None, sequence_length: int | None = None,
                    name: str | None = None):
    """A ``keras.layers.TextVectorization`` with the saved (or given) fixed vocabulary and
    the course's ``standardize`` (registered, so a model holding the layer saves and loads
    with ``safe_mode=True``).

    Int output padded/truncated to ``sequence_length`` (default: ``root/vocab.json``'s, or
    ``SEQUENCE_LENGTH``); ``vocabulary`` (a token list that starts with "" and "[UNK]")
    overrides ``root/vocab.json``. Introduced in notebook 01.
    """
    import keras

    tokens = list(vocabulary) if vocabulary is not None else load_vocabulary(root)
    _check_tokens(tokens, "vocabulary")
    if sequence_length is None:
        sequence_length = saved_sequence_length(root) if vocabulary is None else SEQUENCE_LENGTH
    _check_sequence_length(sequence_length)
    return keras.layers.TextVectorization(
        standardize=register_keras_objects(), split="whitespace", output_mode="int",
        output_sequence_length=int(sequence_length), vocabulary=tokens[2:], name=name)


def split_words(text: str) -> list[str]:
    """The tokens of a text as ``TextVectorization`` sees them: ``standardize``, then split
    on whitespace (so each Han character is a token). Introduced in notebook 01."""
    return standardize(text).split()


def oov_rate(texts, vocabulary) -> float:
    """The share of the texts' tokens (``split_words``) that are not in ``vocabulary``;
    0.0 for no tokens. Introduced in notebook 09."""
    known = set(vocabulary)
    total = unknown = 0
    for text in texts:
        words = split_words(text)
        total += len(words)
        unknown += sum(word not in known for word in words)
    return unknown / total if total else 0.0


_VECTORIZERS: dict = {}


def vectorize(texts, root=None, vocabulary=None, sequence_length: int | None = None,
              warn: bool = True) -> np.ndarray:
    """Token ids int32 (N, sequence_length) of a list of texts; 0 is padding, 1 unknown.

    ``sequence_length`` defaults to ``root/vocab.json``'s (``SEQUENCE_LENGTH`` for a given
    ``vocabulary``). With ``warn``, an ``OOVWarning`` says when more than 20% of the tokens
    are unknown. Introduced in notebook 01."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it as [text]")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")
    tokens = tuple(vocabulary) if vocabulary is not None else tuple(load_vocabulary(root))
    if sequence_length is None:
        sequence_length = saved_sequence_length(root) if vocabulary is None else SEQUENCE_LENGTH
    _check_sequence_length(sequence_length)
    if not texts:
        return np.zeros((0, sequence_length), np.int32)
    key = (tokens, int(sequence_length))
    if key not in _VECTORIZERS:
        _VECTORIZERS.clear()
        _VECTORIZERS[key] = make_vectorizer(vocabulary=tokens, sequence_length=sequence_length)
    ids = np.asarray(_VECTORIZERS[key](texts), dtype=np.int32)
    used = ids[ids > 0]
    if warn and used.size and np.mean(used == 1) > OOV_WARNING:
        warnings.warn(f"{np.mean(used == 1):.0%} of the tokens are out of the vocabulary "
                      f"(more than {OOV_WARNING:.0%}): build a vocabulary from your captions "
                      f"with mmcourse.data.text.build_vocabulary", OOVWarning, stacklevel=2)
    return ids


def build_vocabulary(texts, max_tokens: int | None = None) -> list[str]:
    """A vocabulary for your own captions: "" and "[UNK]", then tokens (``split_words``:
    the same standardisation as ``vectorize``) by falling frequency (ties alphabetically),
    at most ``max_tokens`` in all. Pass it as ``vocabulary=`` to ``make_vectorizer``,
    ``vectorize`` or ``decode``; save it with ``save_vocabulary``. Introduced in notebook 01."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in split_words(text):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if max_tokens is not None:
        words = words[: max(0, max_tokens - 2)]
    return [PAD_TOKEN, OOV_TOKEN, *words]


def decode(token_ids, root=None, vocabulary=None) -> list[str]:
    """Token ids back to texts (padding dropped, unknown words shown as [UNK])."""
    tokens = list(vocabulary) if vocabulary is not None else load_vocabulary(root)
    ids = np.atleast_2d(np.asarray(token_ids))
    return [" ".join(tokens[i] for i in row if i != 0) for row in ids]
