"""The course data in Chinese (``data --language zh``): the same scenes, labels and balance as
the English data, a Chinese grammar, no leakage, every character in the vocabulary."""

import collections
import json

import numpy as np
import pytest

from mmcourse.__main__ import main
from mmcourse.data import augment, grammar_zh, statements, store, text
from mmcourse.data import scenes as data
from tests.test_data import _assert_near_half, assert_balanced_per_token

TINY = {level: {"train": 12, "val": 4, "test": 4} for level in data.LEVELS}
FRESH_SEEDS = (0, 1, 2)
FRESH = {level: {"train": 120, "val": 30, "test": 30} for level in data.LEVELS}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The English and the Chinese data of the same seed and sizes."""
    folder = tmp_path_factory.mktemp("languages")
    return (store.generate(folder / "en", seed=0, progress=False, sizes=TINY),
            store.generate(folder / "zh", seed=0, progress=False, sizes=TINY, language="zh"))


@pytest.fixture(scope="module")
def fresh_zh(tmp_path_factory):
    return [store.generate(tmp_path_factory.mktemp(f"zh{seed}"), seed=seed, progress=False,
                           sizes=FRESH, language="zh") for seed in FRESH_SEEDS]


@pytest.mark.parametrize(("statement", "expected"), [
    ({"kind": "attribute", "size": "small", "colour": "red", "shape": "circle"}, "一个小的红色圆形"),
    ({"kind": "spatial", "a": {"colour": "red", "shape": "circle"}, "relation": "left of",
      "b": {"colour": "blue", "shape": "square"}}, "红色圆形在蓝色方形的左边"),
    ({"kind": "spatial", "a": {"colour": "magenta", "shape": "triangle"}, "relation": "below",
      "b": {"colour": "cyan", "shape": "circle"}}, "品红色三角形在青色圆形的下面"),
    ({"kind": "distance", "a": {"colour": "green", "shape": "square"}, "relation": "nearest to",
      "b": {"colour": "yellow", "shape": "circle"}}, "绿色方形是离黄色圆形最近的物体"),
    ({"kind": "count", "number": 2}, "有两个物体"),
])
def test_chinese_grammar_by_hand(statement, expected):
    assert statements.statement_text(statement, "zh") == expected


def test_same_scenes_images_and_labels_as_english(pair):
    english, chinese = pair
    en_files, zh_files = (store.read_manifest(r)["files"] for r in pair)
    images = [name for name in en_files if name.endswith(".png")]
    assert images and all(en_files[n] == zh_files[n] for n in images)
    assert store.read_manifest(chinese)["language"] == "zh"
    assert "language" not in store.read_manifest(english)
    for level in data.LEVELS:
        for split in data.SPLITS:
            for task in data.TASKS:
                en = data.load_records(task, level, split, english)
                zh = data.load_records(task, level, split, chinese)
                assert [(r["scene"], r["label"], r.get("kind")) for r in en] == \
                    [(r["scene"], r["label"], r.get("kind")) for r in zh]
                for a, b in zip(en, zh, strict=True):
                    if task == "match":  # the same statement, in Chinese
                        said = statements.parse_statement(a["text"])
                        assert statements.statement_text(said, "zh") == b["text"]
                    if task == "qa":
                        assert b["answer"] == grammar_zh.ANSWERS_ZH[b["label"]]
                        assert b["answer"] == statements.answer_word(a["answer"], "zh")


def test_every_chinese_text_fits_the_vocabulary_and_its_level_length(pair):
    chinese = pair[1]
    vocab = json.loads((chinese / "vocab.json").read_text(encoding="utf-8"))
    tokens = text.load_vocabulary(chinese)
    assert len(set(tokens)) == len(tokens) and all(text.is_han(t) for t in tokens[2:])
    for level in data.LEVELS:
        length = text.saved_sequence_length(chinese, level)
        assert length == vocab["sequence_lengths"][level] == grammar_zh.SEQUENCE_LENGTHS_ZH[level]
        for task in data.TASKS:
            texts = [r["text"] for r in data.load_records(task, level, "train", chinese)]
            ids = text.vectorize(texts, root=chinese, sequence_length=length)
            assert not (ids == 1).any(), task
            assert ((ids != 0).sum(axis=1) == [len(text.split_words(t)) for t in texts]).all()
    assert text.saved_sequence_length(pair[0], "relations") == text.SEQUENCE_LENGTH == 12


def test_chinese_texts_are_flip_safe_and_flips_swap_their_answers(pair):
    chinese = pair[1]
    for task in data.TASKS:
        for record in data.load_records(task, "relations", "train", chinese):
            assert augment.flip_safe(record["text"], True), record["text"]
            assert augment.flip_safe(record["text"], False), record["text"]
    table = augment.swap_table(text.answer_vocabulary(chinese), horizontal=True)
    answers = list(grammar_zh.ANSWERS_ZH)
    assert answers[table[answers.index("左")]] == "右"
    vertical = augment.swap_table(answers, horizontal=False)
    assert answers[vertical[answers.index("上")]] == "下"


def _pairs(level, split, root):
    manifest = store.read_manifest(root)["files"]
    return {(manifest[f"{level}/{split}/{r['image']}"]["sha256"], r["text"])
            for task in data.TASKS for r in data.load_records(task, level, split, root)}


def test_fresh_chinese_data_never_shares_an_image_or_pair_between_splits(fresh_zh):
    for root in fresh_zh:
        for level in data.LEVELS:
            pairs = {split: _pairs(level, split, root) for split in data.SPLITS}
            images = {split: {p[0] for p in pairs[split]} for split in data.SPLITS}
            for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
                assert not pairs[a] & pairs[b] and not images[a] & images[b], (level, a, b)


def test_fresh_chinese_data_is_balanced_per_token(fresh_zh):
    """Each Han character in each position is true about half the time."""
    assert_balanced_per_token(fresh_zh, text.split_words, "zh")


def test_text_only_lookup_is_at_chance_in_chinese(fresh_zh):
    for level in data.LEVELS:
        by_text = collections.defaultdict(list)
        test = []
        for root in fresh_zh:
            for record in data.load_records("match", level, "train", root):
                by_text[record["text"]].append(record["label"])
            test += data.load_records("match", level, "test", root)
        correct = [(np.mean(by_text.get(r["text"], [0.5])) > 0.5) == r["label"] for r in test]
        _assert_near_half(correct, f"zh {level} text-only accuracy")


def test_data_command_in_chinese_builds_and_verifies(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DEFAULT_SIZES", TINY)
    assert main(["data", "--language", "zh", "--root", str(tmp_path)]) == 0
    assert main(["data", "--verify", "--root", str(tmp_path)]) == 0
    capsys.readouterr()
    assert store.read_manifest(tmp_path)["language"] == "zh"
    assert store.ensure_data(tmp_path) == tmp_path
    (tmp_path / "manifest.json").unlink()  # regenerated in its own language
    store.ensure_data(tmp_path)
    assert store.read_manifest(tmp_path)["language"] == "zh"
    with pytest.raises(SystemExit):
        main(["data", "--language", "fr"])
    assert "invalid choice: 'fr'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="language must be one of"):
        store.generate(tmp_path, language="fr")
