"""A Chinese instructor's machine (issue 28, section 5): Chinese column names and 是/否 labels,
hints for a Windows path and a CSV of another name, the report on stdout and no stray
decoder line."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmcourse import REPO_ROOT
from mmcourse.__main__ import main
from mmcourse.data import folders


def _folder(tmp_path, csv_text, encoding="utf-8", name="captions.csv"):
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for colour, bgr in (("red", (0, 0, 255)), ("blue", (255, 0, 0))):
        cv2.imwrite(str(folder / "images" / f"{colour}.png"), np.full((20, 30, 3), bgr, np.uint8))
    (folder / name).write_bytes(csv_text.encode(encoding))
    return folder


def test_chinese_column_names_and_yes_no_labels(tmp_path):
    folder = _folder(tmp_path, "图片,描述,标签,分组\nimages/red.png,一个红色的东西,是,红\n"
                               "images/blue.png,一个红色的东西,否,红\n", encoding="gbk")
    check = folders.check_folder(folder)
    assert check.ok, check.report()
    assert check.captions.has_label and check.captions.has_group
    assert [(r.image, r.text, r.label, r.group) for r in check.rows] == [
        ("images/red.png", "一个红色的东西", 1.0, "红"),
        ("images/blue.png", "一个红色的东西", 0.0, "红")]
    assert "GBK/GB18030" in check.captions.notes[0]


def test_a_bad_label_and_missing_columns_say_the_chinese_spellings(tmp_path):
    folder = _folder(tmp_path, "图片,描述,标签\nimages/red.png,红,也许\n")
    [problem] = folders.check_folder(folder).problems
    assert "label must be 0 or 1 (or true/false, yes/no, 是/否), got '也许'" in str(problem)
    folder = _folder(tmp_path, "文件,说明\nimages/red.png,红\n")
    [problem] = folders.check_folder(folder).problems
    assert "in Chinese 图片,描述 and 标签" in str(problem)


def test_a_windows_path_gets_use_slash_with_one_backslash(tmp_path, capsys):
    folder = _folder(tmp_path, "image,text\nimages\\red.png,红\nimages/blue.png,蓝\n")
    assert main(["check-data", str(folder)]) == 1
    out = capsys.readouterr().out
    assert ("line 2, column image: image 'images\\red.png' not found at "
            f"{folder / 'images' / 'red.png'}".replace("images/red.png", "images\\red.png")
            in out)
    assert "use / between folders, not the Windows backslash \\: images/red.png (that file " \
           "exists)" in out
    assert "\\\\" not in out  # never doubled


@pytest.mark.parametrize(("others", "hint"), [
    (["标注.csv"], "found 标注.csv: rename it to captions.csv"),
    (["a.csv", "b.csv"], "found a.csv, b.csv: rename the one with the captions to captions.csv")])
def test_a_csv_of_another_name_gets_rename_it(tmp_path, capsys, others, hint):
    folder = _folder(tmp_path, "image,text\nimages/red.png,红\n", name=others[0])
    for other in others[1:]:
        (folder / other).write_text("x")
    assert main(["check-data", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "captions.csv not found" in captured.err and hint in captured.err


def test_the_report_goes_to_stdout_without_a_stray_decoder_line(tmp_path):
    folder = _folder(tmp_path, "image,text\nimages/red.png,红\nimages/broken.png,坏\n")
    png = bytearray(cv2.imencode(".png", np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), np.uint8))[1].tobytes())
    png[100:110] = b"0123456789"  # a CRC error inside IDAT: libpng writes to fd 2
    (folder / "images" / "broken.png").write_bytes(bytes(png))
    completed = subprocess.run([sys.executable, "-m", "mmcourse", "check-data", str(folder)],
                               capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert completed.returncode == 1
    assert completed.stderr == ""  # no "libpng error: IDAT: CRC error" line of its own
    assert ("line 3, column image: cannot decode image file images/broken.png: it is empty, "
            "corrupt or not an image (the decoder says: libpng error: IDAT: CRC error)"
            in completed.stdout)
