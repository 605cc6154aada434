"""The decoder's vocabulary and texts as token ids (notebook 08).

``decoder_vocabulary`` is ``text.load_vocabulary()`` (index 0 "" padding, 1 "[UNK]", then the
course words) followed by ``SPECIAL_TOKENS``: "[START]" (id V - 2) begins every text, "[END]"
(id V - 1) ends it. ``encode_texts`` and ``ids_to_texts`` go from texts to ids and back.
"""

from __future__ import annotations

import numpy as np

from mmcourse.configs import positive_int
from mmcourse.data import text

#: Appended to ``text.load_vocabulary()``: the decoder's vocabulary ends with these.
SPECIAL_TOKENS = ("[START]", "[END]")


def decoder_vocabulary(root=None, vocabulary=None) -> list[str]:
    """The decoder's tokens: ``vocabulary`` (default ``text.load_vocabulary(root)``, which
    starts with "" and "[UNK]") followed by "[START]" and "[END]". Introduced in notebook 08.
    """
    tokens = list(vocabulary) if vocabulary is not None else text.load_vocabulary(root)
    if tokens[:2] != [text.PAD_TOKEN, text.OOV_TOKEN]:
        raise ValueError(f"vocabulary must start with {text.PAD_TOKEN!r} and "
                         f"{text.OOV_TOKEN!r}, got {tokens[:2]}")
    if any(token in tokens for token in SPECIAL_TOKENS):
        raise ValueError(f"vocabulary already holds one of {SPECIAL_TOKENS}: pass the text "
                         f"vocabulary, not a decoder vocabulary")
    return [*tokens, *SPECIAL_TOKENS]


def word_ids(words, vocabulary, what: str) -> list[int]:
    """The ids of ``words`` in ``vocabulary``; a ``ValueError`` naming ``what`` for a
    word outside it (or a special token). Notebook 08."""
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = [w for w in words if w not in index or index[w] < 2 or w in SPECIAL_TOKENS]
    if unknown:
        raise ValueError(f"{what} holds words outside the vocabulary: {unknown}")
    return [index[w] for w in words]


def encode_texts(texts, vocabulary, length: int) -> np.ndarray:
    """Token ids int32 (N, length): "[START]", the words of each text (``text.split_words``),
    "[END]", then padding 0. Unknown words or a text too long raise ValueError. The model's
    input is ``ids[:, :-1]`` and its target ``ids[:, 1:]``. Introduced in notebook 08."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it as [text]")
    length = positive_int("length", length)
    start, end = len(vocabulary) - 2, len(vocabulary) - 1
    ids = np.zeros((len(texts), length), np.int32)
    for row, caption in enumerate(texts):
        words = word_ids(text.split_words(caption), vocabulary, f"texts[{row}]")
        if len(words) + 2 > length:
            raise ValueError(f"texts[{row}] has {len(words)} words: with [START] and [END] "
                             f"it needs length >= {len(words) + 2}, got {length}")
        ids[row, :len(words) + 2] = [start, *words, end]
    return ids


def ids_to_texts(token_ids, vocabulary) -> list[str]:
    """Generated ids (N, T) back to texts: words up to the first "[END]", padding and
    "[START]" dropped. Introduced in notebook 08."""
    end = len(vocabulary) - 1
    texts = []
    for row in np.atleast_2d(np.asarray(token_ids)):
        words = []
        for token in row:
            if token == end:
                break
            if 0 < token < end - 1:
                words.append(vocabulary[token])
        texts.append(" ".join(words))
    return texts
