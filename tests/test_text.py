"""Fixed-vocabulary text vectorisation (mmcourse.data.text)."""

import json

import numpy as np
import pytest

from mmcourse.data import scenes as data
from mmcourse.data import statements, store, text


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    sizes = {level: {"train": 6, "val": 3, "test": 3} for level in data.LEVELS}
    return store.generate(tmp_path_factory.mktemp("text"), progress=False, sizes=sizes)


#: The ids every saved model and dataset relies on: id = index in this list. Pinned here, by
#: hand, so that reordering ``statements.WORDS`` (swapping "left" and "right", say) fails a test
#: instead of silently changing what every trained model's token ids mean.
PINNED_TOKENS = [
    "", "[UNK]", "a", "the", "is", "are", "there", "of", "to", "from", "on", "at", "or", "it",
    "red", "green", "blue", "yellow", "magenta", "cyan", "circle", "square", "triangle",
    "circles", "squares", "triangles", "small", "large", "left", "right", "above", "below",
    "top", "bottom", "nearest", "furthest", "zero", "one", "two", "three", "four", "object",
    "objects", "what", "colour", "shape", "size", "how", "many",
]
#: qa labels are indices into this list.
PINNED_ANSWERS = [
    "circle", "square", "triangle", "red", "green", "blue", "yellow", "magenta", "cyan", "small",
    "large", "left", "right", "top", "bottom", "zero", "one", "two", "three", "four",
]


def test_vocabulary_ids_are_pinned(root, course_data):
    for folder in (root, course_data):  # freshly generated, and the data on disk
        saved = json.loads((folder / "vocab.json").read_text())
        assert saved["tokens"] == PINNED_TOKENS, folder
        assert saved["answers"] == PINNED_ANSWERS, folder
        assert text.load_vocabulary(folder) == PINNED_TOKENS
    assert PINNED_TOKENS.index("left") == 28 and PINNED_TOKENS.index("right") == 29
    ids = text.vectorize(["a red circle left of a blue square"], vocabulary=PINNED_TOKENS)
    assert ids[0, :8].tolist() == [2, 14, 20, 28, 7, 2, 16, 21]


def test_vocabulary_is_fixed_and_saved_beside_the_data(root):
    tokens = text.load_vocabulary(root)
    assert tokens == ["", "[UNK]", *statements.WORDS]
    assert len(set(tokens)) == len(tokens)
    saved = json.loads((root / "vocab.json").read_text())
    assert saved["sequence_length"] == text.SEQUENCE_LENGTH
    assert text.answer_vocabulary(root) == list(statements.ANSWERS)


def test_vectorizer_uses_the_saved_vocabulary(root):
    vectorizer = text.make_vectorizer(root)
    assert vectorizer.get_vocabulary() == text.load_vocabulary(root)
    ids = np.asarray(vectorizer(["a red circle"]))
    assert ids.shape == (1, text.SEQUENCE_LENGTH)


def test_vectorize_pads_standardizes_and_marks_unknown_words(root):
    tokens = text.load_vocabulary(root)
    index = {t: i for i, t in enumerate(tokens)}
    ids = text.vectorize(["A Red CIRCLE!", "a pink circle", ""], root=root)
    assert ids.dtype == np.int32 and ids.shape == (3, text.SEQUENCE_LENGTH)
    expected = [index["a"], index["red"], index["circle"]] + [0] * (text.SEQUENCE_LENGTH - 3)
    assert ids[0].tolist() == expected  # lowercased, "!" stripped, padded with 0 at the end
    assert ids[1, 1] == 1  # "pink" is out of vocabulary -> [UNK]
    assert ids[2].tolist() == [0] * text.SEQUENCE_LENGTH
    long = " ".join(["red"] * 30)
    assert text.vectorize([long], root=root)[0].tolist() == [index["red"]] * text.SEQUENCE_LENGTH
    assert text.decode(ids[:2], root=root) == ["a red circle", "a [UNK] circle"]


def test_every_dataset_text_fits_without_unknown_words(root):
    for level in data.LEVELS:
        for task in data.TASKS:
            texts = [r["text"] for r in data.load_records(task, level, "train", root)]
            ids = text.vectorize(texts, root=root)
            assert not (ids == 1).any(), task
            lengths = (ids != 0).sum(axis=1)
            assert lengths.tolist() == [len(text.split_words(t)) for t in texts]
            assert text.decode(ids, root=root) == [" ".join(text.split_words(t)) for t in texts]


def test_ids_are_stable_across_vectorizers(root):
    texts = ["the red circle is nearest to the blue square", "there are two objects"]
    first = text.vectorize(texts, root=root)
    second = np.asarray(text.make_vectorizer(root)(texts))
    np.testing.assert_array_equal(first, second)


def test_custom_vocabulary():
    vocabulary = text.build_vocabulary(["a cat", "a dog", "A cat!"])
    assert vocabulary == ["", "[UNK]", "a", "cat", "dog"]
    # ties (count 1 each, first seen in the order zebra, dog, ant) go alphabetically
    assert text.build_vocabulary(["zebra dog", "ant", "the the"]) == [
        "", "[UNK]", "the", "ant", "dog", "zebra"]
    assert text.build_vocabulary(["b a", "c b a"], max_tokens=4) == ["", "[UNK]", "a", "b"]
    assert text.build_vocabulary([]) == ["", "[UNK]"]
    assert text.build_vocabulary(["a cat", "a dog"], max_tokens=3) == ["", "[UNK]", "a"]
    with pytest.warns(text.OOVWarning, match="33% of the tokens are out of the vocabulary"):
        ids = text.vectorize(["a cat sat"], vocabulary=vocabulary)  # 1 of 3 tokens unknown
    assert ids[0, :3].tolist() == [2, 3, 1]


def test_bad_input(root, tmp_path):
    with pytest.raises(TypeError, match="wrap it as"):
        text.vectorize("a red circle", root=root)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        text.vectorize(["a", 3], root=root)
    with pytest.raises(FileNotFoundError, match="vocab.json not found"):
        text.load_vocabulary(tmp_path)
    with pytest.raises(ValueError, match="must start with"):
        text.make_vectorizer(vocabulary=["a", "b"])
    (tmp_path / "vocab.json").write_text(json.dumps({"tokens": ["a", "b"], "answers": []}))
    with pytest.raises(ValueError, match="must start with"):
        text.load_vocabulary(tmp_path)
    assert text.vectorize([], root=root).shape == (0, text.SEQUENCE_LENGTH)
