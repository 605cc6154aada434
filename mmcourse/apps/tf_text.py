"""The course's text standardisation (``text.standardize``) as TensorFlow string ops, so
that an exported SavedModel carries it without Python (notebook 10): ``tf_standardize``
and the Unicode tables it looks characters up in, ``nfkc_table`` (NFKC per character)
and ``composition_table`` (canonical composition of a base and its combining marks).
TensorFlow is imported inside the functions.
"""

import unicodedata
from functools import lru_cache

from mmcourse.data import text

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
