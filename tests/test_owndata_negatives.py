"""Own folders without labels whose captions repeat (issue 28, section 3): handwritten-like
digits drawn with OpenCV, each captioned by one of four Chinese phrasings of its digit, as an
instructor's class folder would be. ``check-data`` and ``train`` warn; a ``group`` column
declares phrasings equivalent and no false pair is then drawn inside a group; the false pairs
that may be true are counted; a test split too small to measure is said."""

import csv
import json

import cv2
import numpy as np
import pytest

from mmcourse.__main__ import main
from mmcourse.apps import owndata
from mmcourse.data import folders

NUMERALS = "零一二三四五六七八九"
PHRASINGS = ("这是一个{}", "数字{}", "手写的{}", "一个手写数字{}")
#: caption -> the digit it names (the independent truth the tests compare with)
DIGIT_OF = {phrase.format(NUMERALS[d]): d for d in range(10) for phrase in PHRASINGS}


def write_digit_folder(folder, count=200, seed=0, group=False):
    """``count`` digits 0-9 drawn with ``cv2.putText`` (random size, place and stroke), one
    caption each, a random phrasing of its digit; with ``group``, a column group = the digit."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    rows = []
    for index in range(count):
        digit = index % 10
        image = np.zeros((32, 32), np.uint8)
        cv2.putText(image, str(digit), (int(rng.integers(4, 10)), int(rng.integers(24, 30))),
                    cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.7, 1.0)), 255,
                    int(rng.integers(1, 4)))
        name = f"images/digit_{index:04d}.png"
        cv2.imwrite(str(folder / name), image)
        caption = PHRASINGS[int(rng.integers(len(PHRASINGS)))].format(NUMERALS[digit])
        rows.append([name, caption, str(digit)] if group else [name, caption])
    with open(folder / "captions.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["image", "text", "group"] if group else ["image", "text"],
                                      *rows])
    return folder


def _digit(name):
    return int(name.split("_")[1].split(".")[0]) % 10


def _false_pairs(own):
    for split in own.splits.values():
        for name, caption, label in zip(split["image_names"], split["texts"], split["labels"],
                                        strict=True):
            if label < 0.5:
                yield name, caption


def test_without_groups_some_false_pairs_describe_their_image_and_are_counted(tmp_path):
    folder = write_digit_folder(tmp_path / "digits")
    own = owndata.load_own_data(folder, seed=0)
    pairs = list(_false_pairs(own))
    same_digit = sum(DIGIT_OF[caption] == _digit(name) for name, caption in pairs)
    # the problem the issue measured: another phrasing of the same digit, about 10% * 3/4
    assert 0.04 < same_digit / len(pairs) < 0.12, same_digit / len(pairs)
    rows = folders.check_folder(folder).rows
    own_caption = {row.image: row.text for row in rows}
    assert all(caption != own_caption[name] for name, caption in pairs)
    # a false pair whose caption other images have too may be true: counted and said
    images_of = {}
    for row in rows:
        images_of.setdefault(row.text, set()).add(row.image)
    shared = sum(len(images_of[caption]) > 1 for _, caption in pairs)
    assert 0.9 * len(pairs) < shared < len(pairs)  # a few captions are on one image only
    assert sum(n["may_be_true"] for n in own.negatives.values()) == shared
    assert (f"false pairs that may be true: {shared:,} of {len(pairs):,} "
            f"({shared / len(pairs):.1%})") in " ".join(own.notes)
    unique = sum(len(names) == 1 for names in images_of.values())
    assert any(w.startswith(f"warning: captions repeat: {len(images_of)} different captions for 200 images, "
                            f"{(200 - unique) / 200:.0%} of the images share")
               for w in own.warnings)


def test_a_group_column_keeps_false_pairs_out_of_the_images_group(tmp_path):
    folder = write_digit_folder(tmp_path / "digits", group=True)
    own = owndata.load_own_data(folder, seed=0)
    pairs = list(_false_pairs(own))
    assert len(pairs) > 1000
    assert all(DIGIT_OF[caption] != _digit(name) for name, caption in pairs)
    assert {split: (n["may_be_true"], n["in_own_group"]) for split, n in own.negatives.items()} \
        == {split: (0, 0) for split in ("train", "val", "test")}
    assert not any("captions repeat" in w for w in own.warnings)  # declared: nothing to warn
    assert "(0.0%)" in " ".join(own.notes) and "never one of its group" in own.notes[0]


def test_shuffled_pairs_honour_groups_rows_without_one_and_fail_clearly():
    names, texts = ["a", "b", "c", "d"], ["seven", "7", "three", "three"]
    for seed in range(20):
        _, out, _ = owndata.shuffled_pairs(names, texts, np.random.default_rng(seed),
                                           groups=["7", "7", None, None])
        assert out[1] == out[3] == "three"  # a and b: never the other phrasing of 7
        assert out[5] in ("seven", "7") and out[7] in ("seven", "7")  # c: no group
    with pytest.raises(folders.DataError, match="one of its own \\(or of its group\\)"):
        owndata.shuffled_pairs(["a", "b"], ["seven", "7"], np.random.default_rng(0),
                               groups=["7", "7"])


def test_caption_sharing_by_hand():
    sharing = owndata.caption_sharing(["a", "b", "c", "c", "d"], ["x", "x", "y", "x", "z"])
    assert sharing == {"images": 4, "captions": 3, "shared_images": 3, "share": 0.75,
                       "shared": {"x": 3}, "most": ("x", 3)}
    assert owndata.caption_sharing(["a", "b"], ["x", "y"])["most"] is None


def test_check_data_warns_about_shared_captions_and_a_small_test_split(tmp_path, capsys):
    folder = write_digit_folder(tmp_path / "digits", count=21)
    assert main(["check-data", str(folder)]) == 0  # warnings are not problems
    out = capsys.readouterr().out
    assert "warning: captions repeat" in out and "add a column group" in out.lower()
    assert ("warning: the test split is too small to measure: 2 image(s), about 4 pair(s), so "
            "the test accuracy moves in steps of 25% and its 95% interval is about +-0.49; use "
            "at least 100 test pairs (about 500 images)") in out
    assert "no problems, 2 warning(s)" in out and "all good" not in out
    assert main(["check-data", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and len(report["warnings"]) == 2 and not report["has_group"]


@pytest.mark.parametrize(("images", "warned"), [(480, True), (500, False)])
def test_the_small_test_split_warning_starts_below_100_test_pairs(images, warned):
    rows = [folders.Row(i + 2, f"{i}.png", f"caption {i}") for i in range(images)]
    warnings = owndata.folder_warnings(rows, has_label=False)
    assert any("too small to measure" in w for w in warnings) == warned


@pytest.mark.parametrize(("images", "warned"), [(330, True), (340, False)])
def test_with_labels_every_row_is_a_test_pair(images, warned):
    """Three labelled rows per image: 33 test images give 99 pairs, 34 give 102."""
    rows = [folders.Row(i + 2, f"{i // 3}.png", f"c{i}", float(i % 2)) for i in range(3 * images)]
    warnings = owndata.folder_warnings(rows, has_label=True)
    assert any("too small to measure" in w for w in warnings) == warned
    assert not any("captions repeat" in w for w in warnings)  # labels: no shuffled pairs


def test_train_data_dir_warns_and_reports_the_counts(tmp_path, capsys):
    folder = write_digit_folder(tmp_path / "digits", count=30)
    assert main(["train", "--data-dir", str(folder), "--epochs", "1", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "warning: captions repeat" in captured.err
    assert "warning: the test split is too small" in captured.err
    assert result["warnings"] == [line for line in captured.err.splitlines()
                                  if line.startswith("warning: ")]
    assert len(result["warnings"]) == 2
    test = result["negatives"]["test"]  # one false pair per test image, none in its group
    assert test["false_pairs"] == result["split_sizes"]["test"]["images"] == 3
    assert test["in_own_group"] == 0 and test["may_be_true"] <= 3
