"""Your own folder of images + captions.csv (mmcourse.data.folders, ``check-data``): every case of
issue 11 gets the right result or a clear error with the file line and column."""

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from mmcourse.__main__ import main
from mmcourse.data import folders, pipeline
from mmcourse.data import scenes as data


def _folder(tmp_path, csv_text, encoding="utf-8", images=("red.png", "blue.png")):
    folder = tmp_path / "mine"
    folder.mkdir(exist_ok=True)
    for name in images:
        image = np.zeros((20, 30, 3), np.uint8)
        image[:] = (0, 0, 255) if name.startswith("red") else (255, 0, 0)  # BGR on disk
        cv2.imwrite(str(folder / name), image)
    raw = csv_text if isinstance(csv_text, bytes) else csv_text.encode(encoding)
    (folder / "captions.csv").write_bytes(raw)
    return folder


def _messages(folder):
    return [str(p) for p in folders.check_folder(folder).problems]


# --- the CSV -----------------------------------------------------------------------------------


def test_line_break_inside_a_quoted_caption_is_kept_and_lines_are_file_lines(tmp_path):
    folder = _folder(tmp_path, 'image,text\nred.png,"a red\nthing"\nblue.png,a blue thing\n'
                               'nope.png,x\n')
    check = folders.check_folder(folder)
    assert [row.text for row in check.rows] == ["a red\nthing", "a blue thing", "x"]
    assert [row.line for row in check.rows] == [2, 4, 5]  # file lines, not record numbers
    assert [str(p) for p in check.problems] == [
        f"captions.csv line 5, column image: image 'nope.png' not found at {folder / 'nope.png'}; "
        "put the image in the folder, or correct the name"]


def test_unbalanced_quote_is_reported_where_it_opens(tmp_path):
    folder = _folder(tmp_path, 'image,text\nred.png,"a red thing\nblue.png,b\nred.png,c\n'
                               'blue.png,d"\nred.png,e\n')
    messages = _messages(folder)
    assert len(messages) == 1
    assert messages[0].startswith("captions.csv line 2: a quote opened on this line closes "
                                  "only on line 5, so lines 2-5 were read as one row")
    assert "two quotes" in messages[0]
    assert [row.line for row in folders.check_folder(folder).rows] == [6]


def test_a_huge_field_is_a_clear_problem_not_a_csv_error(tmp_path):
    folder = _folder(tmp_path, "image,text\nred.png," + "a" * 131_072 + "\nblue.png,ok\n")
    assert _messages(folder) == [
        "captions.csv line 2, column text: the caption has 131,072 characters, more than "
        "10,000; shorten it, or check its quotes"]
    assert [(r.line, r.image) for r in folders.read_captions(folder / "captions.csv").rows] == [
        (3, "blue.png")]  # the row with the huge caption is not kept
    folder = _folder(tmp_path, 'image,text\nred.png,"' + "a" * 700_000 + '"\n')
    [message] = _messages(folder)
    assert message.startswith("captions.csv line 2: cannot be parsed: field larger than")
    import csv
    assert csv.field_size_limit() == 131_072  # the global limit is restored


@pytest.mark.parametrize("header", ["Image,Text,Label", "image,text,labels", " IMAGE , text ,LABELS"])
def test_label_column_is_case_insensitive_label_or_labels(tmp_path, header):
    folder = _folder(tmp_path, f"{header}\nred.png,a red thing,1\nblue.png,a red thing,0\n")
    check = folders.check_folder(folder)
    assert check.ok and check.captions.has_label
    assert [row.label for row in check.rows] == [1.0, 0.0]


def test_labels_accept_true_false_and_yes_no(tmp_path):
    rows = ["red.png,a,TRUE", "red.png,b,false", "blue.png,c,Yes", "blue.png,d,no",
            "red.png,e,2", "red.png,f,"]
    folder = _folder(tmp_path, "image,text,label\n" + "\n".join(rows) + "\n")
    check = folders.check_folder(folder)
    assert [row.label for row in check.rows] == [1.0, 0.0, 1.0, 0.0]
    assert [str(p).split(";")[0] for p in check.problems] == [
        "captions.csv line 6, column label: label must be 0 or 1 (or true/false, yes/no, 是/否), got '2'",
        "captions.csv line 7, column label: label must be 0 or 1 (or true/false, yes/no, 是/否), got ''"]


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_delimiter_is_detected_and_said(tmp_path, delimiter, name):
    folder = _folder(tmp_path, f"image{delimiter}text\nred.png{delimiter}a red, round thing\n")
    check = folders.check_folder(folder)
    assert check.ok and check.rows[0].text == "a red, round thing"
    assert check.captions.delimiter == delimiter
    assert any(name in note for note in check.captions.notes)


def test_semicolon_header_without_names_gets_a_hint(tmp_path):
    folder = _folder(tmp_path, "file;caption\nred.png;x\n")
    [message] = _messages(folder)
    assert "lacks column(s) ['image', 'text']" in message and "semicolon" in message


@pytest.mark.parametrize(("encoding", "expected"), [
    ("gbk", "is GBK/GB18030 text"), ("gb18030", "is GBK/GB18030 text"),
    ("utf-16", "is UTF-16 text")])
def test_excel_chinese_encodings_are_read_and_said(tmp_path, encoding, expected):
    """Issue 28: read, with a note, where they used to be refused."""
    folder = _folder(tmp_path, "image,text\nred.png,一个红色圆形\nblue.png,𠀀蓝色\n"
                     if encoding == "gb18030" else "image,text\nred.png,一个红色圆形\n",
                     encoding=encoding)
    check = folders.check_folder(folder)
    assert check.ok and check.rows[0].text == "一个红色圆形"
    if encoding == "gb18030":  # a character outside GBK, which only GB18030 encodes
        assert check.rows[1].text == "𠀀蓝色"
    [note] = check.captions.notes
    assert expected in note and "read as" in note


def test_bytes_of_no_known_encoding_are_still_a_problem(tmp_path):
    folder = _folder(tmp_path, b"image,text\nred.png,\x80\xff\n")
    [message] = _messages(folder)
    assert "is not UTF-8 text (byte 0x80" in message and '"CSV UTF-8' in message


def test_utf8_with_bom_and_chinese_text_reads(tmp_path):
    folder = _folder(tmp_path, "image,text\nred.png,一个红色圆形\n", encoding="utf-8-sig")
    check = folders.check_folder(folder)
    assert check.ok and check.rows[0].text == "一个红色圆形"


def test_wrong_field_counts_and_conflicting_duplicates(tmp_path):
    folder = _folder(tmp_path, "image,text,label\nred.png,a red, round thing,1\nred.png\n"
                               "blue.png,b,1\nblue.png,b,0\n../x.png,c,1\n")
    assert [str(p).split(";")[0] for p in folders.check_folder(folder).problems] == [
        "captions.csv line 2: has 4 fields, the header has 3",
        "captions.csv line 3: has 1 fields, the header has 3",
        "captions.csv line 5, column label: the same image and text are on line 4 with label 1, "
        "here with 0",
        "captions.csv line 6, column image: image '../x.png' is outside the folder"]


# --- images -------------------------------------------------------------------------------------


def _png_header(width, height):
    """A PNG signature and a valid IHDR chunk (8-bit RGB) claiming width x height."""
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body
            + struct.pack(">I", zlib.crc32(body)))


def test_huge_image_is_refused_before_decoding(tmp_path):
    folder = _folder(tmp_path, "image,text\nhuge.png,a huge thing\n")
    idat = zlib.compress(b"\x00" * 1000)
    chunk = b"IDAT" + idat
    (folder / "huge.png").write_bytes(_png_header(40000, 40000) + struct.pack(">I", len(idat))
                                      + chunk + struct.pack(">I", zlib.crc32(chunk)))
    [message] = _messages(folder)
    assert "huge.png is 40000x40000 = 1,600 megapixels, over the limit of 40 megapixels" in message
    assert folders.image_dimensions(_png_header(40000, 40000)) == (40000, 40000)


def _grace_hopper_bytes():
    return bytearray(open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb").read())


def test_jpeg_dimensions_come_from_its_header():
    raw = bytes(_grace_hopper_bytes())
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert folders.image_dimensions(raw) == (image.shape[1], image.shape[0]) == (512, 600)


@pytest.mark.parametrize("offset", [0, 1000])
def test_corrupt_jpeg_is_an_error_not_a_grey_picture(tmp_path, offset):
    raw = _grace_hopper_bytes()
    start = len(raw) // 3 + offset
    rng = np.random.default_rng(0)
    for _ in range(1 + offset // 1000):  # the bytes the experiment wrote
        garbage = bytes(rng.integers(0, 256, 40).astype(np.uint8))
    raw[start:start + 40] = garbage
    assert cv2.imdecode(np.frombuffer(bytes(raw), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(folders.DataError, match="has corrupt JPEG data"):
        folders.decode_image(bytes(raw), "scan.jpg")
    intact = folders.decode_image(bytes(_grace_hopper_bytes()), "scan.jpg")
    assert intact.shape == (600, 512, 3)


def test_transparency_is_composited_over_white(tmp_path):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[0, 0] = (0, 0, 255, 0)  # fully transparent red: white
    bgra[0, 1] = (0, 0, 255, 255)  # opaque red
    bgra[0, 2] = (0, 0, 255, 128)  # half red over white: (255, 127, 127) by hand
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    rgb = folders.read_image(tmp_path / "a.png")
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, :3].tolist() == [[255, 255, 255], [255, 0, 0], [255, 127, 127]]


def test_grey_and_16_bit_images_become_rgb_uint8(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((3, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), np.full((3, 3, 3), 65535, np.uint16))
    assert folders.read_image(tmp_path / "g.png")[0, 0].tolist() == [200, 200, 200]
    assert folders.read_image(tmp_path / "d.png")[0, 0].tolist() == [255, 255, 255]


def test_every_bad_image_is_reported_at_once(tmp_path):
    folder = _folder(tmp_path, "image,text\nred.png,ok\nbad1.png,x\nbad2.jpg,y\nbad1.png,z\n"
                               "Blue.png,w\n")
    (folder / "bad1.png").write_bytes(b"not an image")
    (folder / "bad2.jpg").write_bytes(b"")
    messages = _messages(folder)
    assert len(messages) == 3
    assert messages[0].startswith("captions.csv line 3, column image: cannot decode image file "
                                  "bad1.png") and "(also on line(s) 5)" in messages[0]
    assert messages[1].startswith("captions.csv line 4, column image: cannot decode image file "
                                  "bad2.jpg: it is empty")
    assert "did you mean 'blue.png'? file names are case-sensitive" in messages[2]


# --- load_folder, make_dataset, check-data --------------------------------------------------------


def test_load_folder_raises_one_error_listing_all_problems(tmp_path):
    folder = _folder(tmp_path, "image,text,label\nred.png,,1\nnope.png,x,1\nblue.png,y,7\n")
    with pytest.raises(folders.DataError) as caught:
        data.load_folder(folder)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert all(f"line {n}" in message for n in (2, 3, 4))


def test_a_folder_without_labels_is_not_trained_on_pair_ids(tmp_path):
    folder = _folder(tmp_path, "image,text\nred.png,a red thing\nblue.png,a blue thing\n")
    with pytest.raises(folders.DataError, match="has no label column.*--data-dir"):
        pipeline.make_dataset(folder=folder)


def test_check_data_command(tmp_path, capsys):
    folder = _folder(tmp_path, "image;text;Labels\nred.png;一个红色圆形;yes\nblue.png;x;no\n")
    assert main(["check-data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "semicolon" in out and "2 rows, 2 images read; 0 problem(s)" in out
    folder = _folder(tmp_path, "image,text\nred.png,\nnope.png,x\n")
    assert main(["check-data", str(folder)]) == 1
    captured = capsys.readouterr()  # the report goes to stdout: `> report.txt` keeps it
    assert "line 2, column text" in captured.out and "line 3, column image" in captured.out
    assert captured.err == ""
    assert main(["check-data", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and [p["line"] for p in report["problems"]] == [2, 3]
    assert main(["check-data", str(tmp_path / "none")]) == 2
    assert "argument FOLDER" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check-data", str(tmp_path / "empty")]) == 1
    assert "captions.csv not found" in capsys.readouterr().err


# --- every problem at once, each with its file, line, column, message and fix (issue 28, s. 7) --


def test_every_row_problem_is_located_and_explained_exactly(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("cat.png", "dog.png"):
        cv2.imwrite(str(tmp_path / "images" / name), np.full((8, 8, 3), 90, np.uint8))
    (tmp_path / "images" / "bad.png").write_bytes(b"")  # an upload that failed
    lines = ["image,text,label",                    # 1
             ",no image,1",                         # 2: no image name
             "../x.png,outside,1",                  # 3: outside the folder
             "images/cat.png,,1",                   # 4: no text
             "images/cat.png,a cat,maybe",          # 5: not a label
             "images/cat.png,a,b,1",                # 6: four fields
             "images/cat.png,a cat",                # 7: two fields
             "images/cat.png,a cat,1",              # 8: a row
             "images/cat.png,a cat,0",              # 9: the same pair, another label
             "images/cat.png,a cat,yes",            # 10: the same pair and label: a note
             "images/Cat.png,a big cat,1",          # 11: no such file (but cat.png)
             "images/bad.png,broken,1",             # 12: an empty file ...
             "images/bad.png,broken again,0",       # 13: ... named twice
             "",                                    # 14: a blank line
             "images/dog.png,a dog,否"]              # 15: a row, label 0
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    check = folders.check_folder(tmp_path, workers=2)
    csv_name = "captions.csv"
    assert check.problems == [
        folders.Problem(csv_name, 2, "image", "the image column is empty",
                        "give the image file name, relative to the folder"),
        folders.Problem(csv_name, 3, "image", "image '../x.png' is outside the folder",
                        "give a path relative to the folder, without '..'"),
        folders.Problem(csv_name, 4, "text", "the text column is empty",
                        "write the caption, or delete the row"),
        folders.Problem(csv_name, 5, "label", "label must be 0 or 1 (or true/false, yes/no, "
                        "是/否), got 'maybe'",
                        "write 1 when the text describes the image, 0 when not"),
        folders.Problem(csv_name, 6, None, "has 4 fields, the header has 3",
                        "quote a caption that contains the delimiter ',' (\"a red, round "
                        "thing\")"),
        folders.Problem(csv_name, 7, None, "has 2 fields, the header has 3",
                        "fill in every column"),
        folders.Problem(csv_name, 9, "label", "the same image and text are on line 8 with "
                        "label 1, here with 0", "keep one row with the right label"),
        folders.Problem(csv_name, 11, "image", f"image 'images/Cat.png' not found at "
                        f"{tmp_path / 'images' / 'Cat.png'}",
                        "did you mean 'images/cat.png'? file names are case-sensitive"),
        folders.Problem(csv_name, 12, "image", "cannot decode image file images/bad.png: it is "
                        "empty (also on line(s) 13)",
                        "replace or remove the file")]
    assert [(r.line, r.image, r.text, r.label) for r in check.rows] == [
        (8, "images/cat.png", "a cat", 1.0), (11, "images/Cat.png", "a big cat", 1.0),
        (12, "images/bad.png", "broken", 1.0), (13, "images/bad.png", "broken again", 0.0),
        (15, "images/dog.png", "a dog", 0.0)]
    assert check.captions.notes == ["note: captions.csv line 10 repeats line 8"]
    assert check.report().splitlines() == [
        *map(str, check.problems), "note: captions.csv line 10 repeats line 8",
        f"{tmp_path}: 5 rows, 2 images read; 9 problem(s)"]
    assert str(check.problems[0]) == ("captions.csv line 2, column image: the image column is "
                                      "empty; give the image file name, relative to the folder")
    assert str(check.problems[4]).startswith("captions.csv line 6: has 4 fields")


def test_problems_of_the_whole_file_name_no_line(tmp_path):
    (tmp_path / "captions.csv").write_bytes(b"\xff\xfe" + "image,text\n".encode("utf-16-le")
                                            + b"\x00\xd8")  # a lone surrogate: not UTF-16
    (problem,) = folders.read_captions(tmp_path / "captions.csv").problems
    assert (problem.file, problem.line, problem.column) == ("captions.csv", None, None)
    assert str(problem).startswith("captions.csv: is UTF-16 text (Excel's \"Unicode text\") "
                                   "that cannot be decoded")
    (tmp_path / "captions.csv").write_bytes(b"image,text\nred.png,\xff\xfe\xfd red\n")
    (problem,) = folders.read_captions(tmp_path / "captions.csv").problems
    assert (problem.file, problem.line, problem.column) == ("captions.csv", 2, None)
    assert str(problem).startswith("captions.csv line 2: is not UTF-8 text (byte 0xff at "
                                   "offset 19)")
    (tmp_path / "captions.csv").write_text("image,text\n\n", encoding="utf-8")
    assert [str(p) for p in folders.read_captions(tmp_path / "captions.csv").problems] == [
        "captions.csv: has a header but no rows; add one row per image and caption"]


def test_a_missing_captions_csv_names_the_csv_files_that_are_there(tmp_path):
    (tmp_path / "标注.csv").write_text("image,text\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a CSV")
    (tmp_path / "old.CSV").mkdir()  # a folder, not a file
    with pytest.raises(folders.DataError) as one:
        folders.read_captions(tmp_path / "captions.csv")
    assert str(one.value) == (f"{tmp_path / 'captions.csv'} not found: expected a captions.csv "
                              f"with columns image,text (optional: label); found 标注.csv: "
                              f"rename it to captions.csv")
    (tmp_path / "b.csv").write_text("image,text\n", encoding="utf-8")
    with pytest.raises(folders.DataError, match=r"; found b\.csv, 标注\.csv: rename the one "
                                                r"with the captions to captions\.csv$"):
        folders.read_captions(tmp_path / "captions.csv")
    with pytest.raises(folders.DataError, match=r"\(optional: label\)$"):
        folders.read_captions(tmp_path / "none" / "captions.csv")


def test_an_image_that_cannot_be_read_names_the_reason_and_the_line(tmp_path, monkeypatch):
    folder = _folder(tmp_path, "image,text\nred.png,a red one\nblue.png,a blue one\n")
    real = Path.read_bytes

    def read_bytes(self):  # what a file without read permission gives (root reads anything)
        if self.name == "red.png":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert folders.check_folder(folder, workers=1).problems == [folders.Problem(
        "captions.csv", 2, "image", "cannot read red.png: Permission denied",
        "check the file's permissions")]
