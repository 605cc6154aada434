"""Text to token ids with a fixed vocabulary (introduced in notebook 01).

The vocabulary is saved beside the data as ``vocab.json`` and loaded into Keras'
``TextVectorization``, so a word gets the same id on every run and machine (a vocabulary
learnt with ``adapt`` would depend on the data seen). Index 0 is padding (``""``), index 1
is ``[UNK]`` for out-of-vocabulary words. Texts are lowercased and stripped of
punctuation, split on whitespace, then padded with 0 or truncated to ``SEQUENCE_LENGTH``.
TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmcourse import paths

SEQUENCE_LENGTH = 12
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
STANDARDIZE = "lower_and_strip_punctuation"


def _read_vocab_file(root=None) -> dict:
    path = (Path(root) if root is not None else paths.DATA_DIR) / "vocab.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mmcourse data` or "
                                f"mmcourse.data.ensure_data()")
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


def make_vectorizer(root=None, vocabulary=None, sequence_length: int = SEQUENCE_LENGTH):
    """A ``keras.layers.TextVectorization`` with the saved (or given) fixed vocabulary.

    Int output padded/truncated to ``sequence_length``; ``vocabulary`` (a token list that
    starts with "" and "[UNK]") overrides ``root/vocab.json``. Introduced in notebook 01.
    """
    import keras

    tokens = list(vocabulary) if vocabulary is not None else load_vocabulary(root)
    if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
        raise ValueError(f"vocabulary must start with {PAD_TOKEN!r} (padding) and "
                         f"{OOV_TOKEN!r} (unknown words); got {tokens[:2]}")
    return keras.layers.TextVectorization(
        standardize=STANDARDIZE, split="whitespace", output_mode="int",
        output_sequence_length=sequence_length, vocabulary=tokens[2:])


def split_words(text: str) -> list[str]:
    """The words of a text as ``TextVectorization`` sees them: lowercased, punctuation
    stripped, split on whitespace. Introduced in notebook 01."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


_VECTORIZERS: dict = {}


def vectorize(texts, root=None, vocabulary=None) -> np.ndarray:
    """Token ids int32 (N, SEQUENCE_LENGTH) of a list of texts; 0 is padding, 1 unknown.
    Introduced in notebook 01."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it as [text]")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")
    tokens = tuple(vocabulary) if vocabulary is not None else tuple(load_vocabulary(root))
    if not texts:
        return np.zeros((0, SEQUENCE_LENGTH), np.int32)
    if tokens not in _VECTORIZERS:
        _VECTORIZERS.clear()
        _VECTORIZERS[tokens] = make_vectorizer(vocabulary=tokens)
    ids = _VECTORIZERS[tokens](texts)
    return np.asarray(ids, dtype=np.int32)


def build_vocabulary(texts, max_tokens: int | None = None) -> list[str]:
    """A vocabulary for your own captions: "" and "[UNK]", then words by falling frequency
    (ties alphabetically), at most ``max_tokens`` in all. Pass it as ``vocabulary=`` to
    ``make_vectorizer``, ``vectorize`` or ``decode``. Introduced in notebook 01."""
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
