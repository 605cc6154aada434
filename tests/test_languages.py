"""Text in any language (issue 11): one standardisation for vocabularies and vectorising,
Han characters as tokens, the out-of-vocabulary warning, and flips that keep Chinese and
English captions true. The Chinese reader (issue 24): README.zh-CN.md in step with README.md,
a Chinese head and tail in every notebook, the glossary's terms defined in both languages."""

import json
import re
import warnings

import cv2
import numpy as np
import pytest

from mmcourse import NOTEBOOKS_DIR, REPO_ROOT
from mmcourse.data import augment, text


@pytest.mark.parametrize(("raw", "expected"), [
    ("红色圆形，在左边！", "红 色 圆 形 在 左 边"),  # CJK punctuation removed, one token per Han
    ("ＡＢＣ！ Ｄｅｆ", "abc def"),  # full-width letters and "！" (NFKC) then lower case
    ("「你好」。《书》、", "你 好 书"),
    ("Café CRÈME", "café crème"),  # accented capitals lowered, accents kept
    ("a red,blue circle.", "a red blue circle"),  # punctuation becomes a space, not glue
    ("🔴 red", "🔴 red"),  # an emoji is a token of its own
    ("红色circle", "红 色 circle"),
    ("  spaces\tand\nlines ", "spaces and lines"),
    ("", ""),
])
def test_standardize_by_hand(raw, expected):
    assert text.standardize(raw) == expected
    assert text.split_words(raw) == expected.split()


def test_vocabulary_and_vectorize_standardise_alike():
    # The issue: full-width punctuation, accented capitals and emoji became [UNK] even with
    # the captions' own vocabulary; Chinese became one token per sentence.
    captions = ["一个小的红色圆形！", "Café ＣＲÈＭＥ 🔴", "红色圆形在蓝色方形的左边。"]
    vocabulary = text.build_vocabulary(captions)
    assert "红" in vocabulary and "红色圆形" not in vocabulary
    assert {"café", "crème", "🔴"} <= set(vocabulary)
    ids = text.vectorize(captions, vocabulary=vocabulary, sequence_length=16)
    assert not (ids == 1).any()
    index = {token: i for i, token in enumerate(vocabulary)}
    assert ids[0, :8].tolist() == [index[c] for c in "一个小的红色圆形"]
    assert ids[0, 8:].tolist() == [0] * 8
    assert text.decode(ids[1:2], vocabulary=vocabulary) == ["café crème 🔴"]


def test_build_vocabulary_orders_han_characters_by_count_then_code_point():
    assert text.build_vocabulary(["红色圆形"]) == ["", "[UNK]", "圆", "形", "红", "色"]
    assert text.build_vocabulary(["红色 红色 蓝"]) == ["", "[UNK]", "红", "色", "蓝"]


def test_layer_inside_keras_runs_the_same_standardisation():
    vocabulary = ["", "[UNK]", "红", "色", "abc"]
    layer = text.make_vectorizer(vocabulary=vocabulary, sequence_length=5)
    ids = np.asarray(layer(["红色，ＡＢＣ！", "？"]))
    np.testing.assert_array_equal(ids, [[2, 3, 4, 0, 0], [0, 0, 0, 0, 0]])


def test_sequence_length_is_configurable_and_checked():
    vocabulary = ["", "[UNK]", "a"]
    assert text.vectorize(["a " * 40], vocabulary=vocabulary, sequence_length=30).shape == (1, 30)
    with pytest.raises(ValueError, match="sequence_length must be an int >= 1, got 0"):
        text.vectorize(["a"], vocabulary=vocabulary, sequence_length=0)


def test_oov_warning_above_twenty_percent_only():
    vocabulary = ["", "[UNK]", "a", "b", "c", "d"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text.vectorize(["a b c d zzz"], vocabulary=vocabulary)  # 1 of 5 = 20%: no warning
    with pytest.warns(text.OOVWarning, match="50% of the tokens"):
        text.vectorize(["a zzz"], vocabulary=vocabulary)
    assert text.oov_rate(["a zzz", "b c"], vocabulary) == 0.25


def test_save_vocabulary_writes_the_documented_format(tmp_path):
    tokens = ["", "[UNK]", "红", "red"]
    path = text.save_vocabulary(tokens, tmp_path, sequence_length=20)
    assert path == tmp_path / "vocab.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["tokens"] == tokens and saved["sequence_length"] == 20
    assert text.load_vocabulary(tmp_path) == tokens
    assert text.vectorize(["红 red"], root=tmp_path).shape == (1, 20)
    with pytest.raises(ValueError, match="must start with"):
        text.save_vocabulary(["red"], tmp_path)
    with pytest.raises(ValueError, match="duplicate tokens"):
        text.save_vocabulary(["", "[UNK]", "a", "a"], tmp_path)


# --- flips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("caption", "horizontal", "expected"), [
    ("红色圆形在蓝色方形的左边", True, "红色圆形在蓝色方形的右边"),
    ("红色圆形在蓝色方形的上面", False, "红色圆形在蓝色方形的下面"),
    ("a red circle left of a blue square", True, "a red circle right of a blue square"),
    ("the leftmost object", True, "the rightmost object"),
])
def test_swaps_exist_per_language(caption, horizontal, expected):
    assert augment.flip_safe(caption, horizontal)
    assert augment.swap_spatial_words(caption, horizontal) == expected


@pytest.mark.parametrize(("caption", "horizontal"), [
    ("马上就到", False),  # "at once": 上 is not spatial
    ("大小左右", True),  # 左右: "about"
    ("以上都是", False),
    ("the right answer", True),
    ("he left the room", True),
    ("the top student", False),
])
def test_unsafe_captions_are_never_flipped(caption, horizontal):
    assert not augment.flip_safe(caption, horizontal)
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="cannot be swapped safely"):
        augment.flip_pair(image, caption, horizontal)
    for seed in range(8):  # augment_pair leaves such a text and its image's axis alone
        _, out = augment.augment_pair(image, caption, np.random.default_rng(seed),
                                      photometric=False)
        assert out == caption


def _two_objects(rng):
    """A 32x32 image with a red and a blue disc side by side, and the true Chinese caption."""
    image = np.full((32, 32, 3), 128, np.uint8)
    xs = rng.permutation([8, 24])
    cv2.circle(image, (int(xs[0]), 16), 5, (255, 0, 0), -1)
    cv2.circle(image, (int(xs[1]), 16), 5, (0, 0, 255), -1)
    side = "左" if xs[0] < xs[1] else "右"
    return image, f"红色圆形在蓝色方形的{side}边"


def _red_is_left(image) -> bool:
    red = np.argwhere((image[..., 0] > 200) & (image[..., 2] < 50))[:, 1].mean()
    blue = np.argwhere((image[..., 2] > 200) & (image[..., 0] < 50))[:, 1].mean()
    return red < blue


def test_chinese_flips_keep_every_label_true():
    # The issue: 139 of 300 flipped Chinese 左/右 pairs contradicted their images.
    rng = np.random.default_rng(0)
    pairs = [_two_objects(rng) for _ in range(300)]
    images = np.stack([image for image, _ in pairs])
    captions = [caption for _, caption in pairs]
    vocabulary = text.build_vocabulary(captions)
    ids = text.vectorize(captions, vocabulary=vocabulary, sequence_length=16)
    out_images, out_ids, _ = augment.augment_batch(images, ids, np.ones(300, np.float32),
                                                   np.random.default_rng(1), vocabulary,
                                                   photometric=False)
    flipped = sum(not np.array_equal(a, b) for a, b in zip(out_images, images, strict=True))
    assert flipped > 100  # flips happened
    for image, caption in zip(out_images, text.decode(out_ids, vocabulary=vocabulary),
                              strict=True):
        assert ("左" in caption) == _red_is_left(image), caption


def test_augment_batch_refuses_unsafe_rows():
    vocabulary = ["", "[UNK]", "左", "右", "边", "上", "下", "马", "left"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 6, 3), dtype=np.uint8)
    rows = {"马上": [7, 5, 0], "左边 [UNK]": [2, 4, 1], "left (no right)": [8, 0, 0],
            "左边": [2, 4, 0]}
    for name, row in rows.items():
        ids = np.tile(np.array([row], np.int32), (40, 1))
        out, out_ids, _ = augment.augment_batch(images, ids, np.zeros(40, np.float32),
                                                np.random.default_rng(2), vocabulary,
                                                photometric=False)
        horizontal = [np.array_equal(o, i[:, ::-1]) and not np.array_equal(o, i)
                      for o, i in zip(out, images, strict=True)]
        vertical = [np.array_equal(o, i[::-1]) and not np.array_equal(o, i)
                    for o, i in zip(out, images, strict=True)]
        if name == "左边":
            assert any(horizontal) and any(vertical)
            assert {tuple(r) for r in out_ids.tolist()} == {(2, 4, 0), (3, 4, 0)}
        elif name == "马上":
            assert not any(vertical) and any(horizontal), name  # horizontal stays allowed
        else:
            assert not any(horizontal), name
            np.testing.assert_array_equal(out_ids, ids)


# --- the Chinese reader (issue 24): README.zh-CN.md in step, a Chinese head and tail ----------

README_EN = REPO_ROOT / "README.md"
README_ZH = REPO_ROOT / "README.zh-CN.md"
GLOSSARY = REPO_ROOT / "docs" / "GLOSSARY.md"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
#: Every lesson notebook on disk: a new one (12_...) needs its Chinese head and tail too.
LESSONS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _syllabus_links(readme):
    return re.findall(r"^\| \[[^]]+\]\((notebooks/\d\d_\w+\.ipynb)\)", readme.read_text(
        encoding="utf-8"), re.M)


def _commands(readme):
    """{subcommand: the --flags named on its lines} from the README's ``python -m mmcourse``
    block; a comment line below a command counts for that command."""
    text = readme.read_text(encoding="utf-8")
    commands, current = {}, None
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            start = re.match(r"python -m mmcourse ([\w-]+)", line)
            if start:
                current = start.group(1)
            elif not re.match(r"\s+#", line):
                current = None
            if current is not None:
                commands.setdefault(current, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    return commands


def _make_targets(readme):
    return set(re.findall(r"`make (\w+)", readme.read_text(encoding="utf-8")))


def test_both_readmes_list_every_notebook_in_the_same_order():
    on_disk = [f"notebooks/{path.name}" for path in LESSONS]
    assert _syllabus_links(README_EN) == on_disk
    assert _syllabus_links(README_ZH) == on_disk, "README.zh-CN.md's 课程大纲 lacks a row"


def test_the_chinese_readme_lists_every_command_and_flag_of_the_english_one():
    english, chinese = _commands(README_EN), _commands(README_ZH)
    assert len(english) >= 10
    assert set(chinese) == set(english)
    missing = {name: sorted(flags - chinese[name]) for name, flags in english.items()
               if flags - chinese[name]}
    assert not missing, f"README.zh-CN.md's 命令行 lacks these flags: {missing}"
    assert _make_targets(README_ZH) == _make_targets(README_EN)


def test_both_readmes_link_the_glossary_and_the_chinese_setup_guide():
    for readme in (README_EN, README_ZH):
        text = readme.read_text(encoding="utf-8")
        assert "(docs/GLOSSARY.md)" in text and "(docs/SETUP.zh-CN.md)" in text, readme.name


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell):
    return "".join(cell["source"])


def _chinese_cell_after(cells, heading, chinese_heading):
    """The markdown cell right after the one holding ``heading``; it must start with
    ``chinese_heading``, be written in Chinese and link the glossary."""
    found = [i for i, cell in enumerate(cells) if cell["cell_type"] == "markdown"
             and re.search(rf"^{re.escape(heading)}$", _source(cell), re.M)]
    assert len(found) == 1, f"{heading!r} is in {len(found)} cells"
    following = cells[found[0] + 1]
    text = _source(following)
    assert following["cell_type"] == "markdown" and text.startswith(chinese_heading), \
        f"no {chinese_heading!r} cell right after {heading!r}"
    assert len(CJK.findall(text)) >= 100, f"the {chinese_heading!r} cell is hardly Chinese"
    assert "(../docs/GLOSSARY.md)" in text, f"the {chinese_heading!r} cell must link the glossary"
    return text


@pytest.mark.parametrize("path", LESSONS, ids=lambda path: path.name[:2])
def test_every_notebook_has_a_chinese_head_and_tail(path):
    cells = _cells(path)
    head = _chinese_cell_after(cells, "## What you will learn", "## 学习目标")
    assert "(../docs/SETUP.zh-CN.md" in head
    _chinese_cell_after(cells, "## Summary", "## 小结")


def test_the_index_has_a_chinese_head_and_tail():
    cells = _cells(NOTEBOOKS_DIR / "index.ipynb")
    head = _chinese_cell_after(cells, "# Course index", "## 中文导读")
    for link in ("(../README.zh-CN.md)", "(../docs/SETUP.zh-CN.md)", "pypi.tuna"):
        assert link in head
    tail = _source(cells[-1])
    assert len(CJK.findall(tail)) >= 50 and "(../docs/GLOSSARY.md)" in tail


def test_no_lesson_text_mentions_an_issue():
    # A learner has no issue tracker: a target says where it comes from (a paper, a baseline,
    # a budget). Code cells and their outputs are not checked here.
    found = [f"{path.name} cell {i}" for path in [*LESSONS, NOTEBOOKS_DIR / "index.ipynb"]
             for i, cell in enumerate(_cells(path))
             if cell["cell_type"] == "markdown" and re.search(r"(?i)\bissues?\b", _source(cell))]
    assert not found


# Terms the issue found missing (07-10), those of 11-13, and the jargon it asked to define.
GLOSSARY_TERMS = [
    "temperature", "InfoNCE", "recall@k", "prompt ensembling", "class token", "causal mask",
    "greedy decoding", "top-k sampling", "SavedModel", "signature", "quantisation", "LoRA",
    "RoPE", "SentencePiece", "RMSNorm", "grouped-query attention", "GeGLU", "prefix-LM mask",
    "preset", "STFT", "mel spectrogram", "tubelet", "nat", "XNOR", "BLAS", "all-reduce",
    "pre-norm", "Perceiver resampler"]


def _glossary_rows():
    """(header, row) for every table row of the glossary, as lists of cells."""
    rows, header = [], None
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-: "):
            rows.append((header, cells))
    return rows


def _names(term, entries):
    """Whether one of the glossary's English entries names ``term`` as a whole word."""
    return any(re.search(rf"(^|\W){re.escape(term)}($|\W)", entry) for entry in entries)


def test_the_glossary_defines_each_term_in_both_languages():
    rows = _glossary_rows()
    english = [cells[0] for _, cells in rows]
    missing = [term for term in GLOSSARY_TERMS if not _names(term, english)]
    assert not missing, f"docs/GLOSSARY.md lacks {missing}"
    for header, cells in rows:
        assert len(cells) == len(header), cells
        assert header[:3] == ["English", "中文", "notebook"]
        assert re.fullmatch(r"\d\d(, \d\d)*", cells[2]), cells
        if len(header) == 5:  # the later sections: a definition in each language
            assert not CJK.search(cells[3]) and len(cells[3].split()) >= 5, cells
            assert len(CJK.findall(cells[4])) >= 5, cells
    defined = [cells[0] for header, cells in rows if len(header) == 5]
    assert all(_names(term, defined) for term in GLOSSARY_TERMS), "a term without definitions"
