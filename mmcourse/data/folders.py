"""Your own data: a folder of images plus ``captions.csv``, read robustly and checked
(introduced in notebook 01; the full check in notebook 09).

``check_folder(folder)`` reads every row and every image and returns *all* the problems
at once, each with the file, its line number, the column and what to do
(``python -m mmcourse check-data FOLDER`` prints them). ``load_folder`` runs the same
checks and raises one ``DataError`` that lists them all.

The CSV (``read_captions``):

* UTF-8 (with or without the BOM Excel writes); GBK/GB18030 and UTF-16 files, which Excel
  in Chinese produces, are read too, and a note says so;
* the delimiter is detected from the header (comma, semicolon, tab or ``|``);
* column names are case-insensitive: ``image``, ``text`` and optionally ``label`` or
  ``labels``, with labels 0/1, true/false, yes/no or 是/否, and ``group``
  (in Chinese: 图片, 描述, 标签, 分组): rows with the same
  group value have equivalent captions (no false pair is drawn between them);
* quoted captions may span lines; line numbers are those of the file, not record counts;
  a quote that swallows the following rows is reported where it opens.

Images (``decode_image``): the course's image contract, ``mmcourse.data.images``: any format
OpenCV reads, 8 or 16 bits, grey, colour or with transparency (composited over white), the
JPEG EXIF orientation applied; more than ``MAX_PIXELS`` pixels is refused before decoding,
and a JPEG whose decoder reports corrupt data is an error, not a grey picture. Images are
RGB uint8 in memory.
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmcourse.data import images
from mmcourse.data.images import MAX_PIXELS, image_dimensions  # noqa: F401  (this module's API)
from mmcourse.i18n import N_, _

CAPTIONS = "captions.csv"
#: Longer captions are refused: usually an unbalanced quote or a binary file.
MAX_TEXT_CHARS = 10_000
LABEL_COLUMNS = ("label", "labels")
#: An optional column that declares captions equivalent: rows with the same group value
#: describe the same thing (paraphrases, translations), so no false pair is drawn between
#: them (``mmcourse.apps.owndata``).
GROUP_COLUMNS = ("group",)
#: Accepted label spellings (case-insensitive) and their values.
LABEL_VALUES = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0,
                "是": 1.0, "否": 0.0}
#: Column names in Chinese, read as their English names.
CHINESE_COLUMNS = {"图片": "image", "图像": "image", "描述": "text", "文本": "text",
                   "标签": "label", "分组": "group"}
DELIMITERS = (",", ";", "\t", "|")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_DELIMITER_NAMES = {",": N_("comma"), ";": N_("semicolon"), "\t": N_("tab"),
                    "|": N_("vertical bar")}


def _save_utf8() -> str:
    return _('save it as UTF-8: in Excel, File > Save As > "CSV UTF-8 (comma delimited)"; '
             'in WPS or LibreOffice choose the UTF-8 encoding')


class DataError(ValueError):
    """A problem with data files (bring-your-own-data folder, records). Introduced in
    notebook 01."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a folder: where (file, line, column), what, and what to do."""

    file: str
    line: int | None
    column: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = self.file + (_(" line {line}").format(line=self.line)
                             if self.line is not None else "")
        where += _(", column {column}").format(column=self.column) if self.column else ""
        return f"{where}: {self.message}; {self.fix}"


@dataclass
class Row:
    """One captions.csv record: the file line it starts on, image name, text, label."""

    line: int
    image: str
    text: str
    label: float | None = None
    group: str | None = None


@dataclass
class Captions:
    """What ``read_captions`` found: the rows, whether there is a label column, the
    delimiter, the problems and notes (facts worth saying, not errors)."""

    rows: list = field(default_factory=list)
    has_label: bool = False
    has_group: bool = False
    delimiter: str = ","
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class FolderCheck:
    """What ``check_folder`` found: the rows, the decoded images by name (None where an
    image failed), the problems and notes. ``ok`` is True when there is no problem."""

    folder: Path
    captions: Captions
    images: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rows(self) -> list:
        return self.captions.rows

    def report(self) -> str:
        """All problems, one per line, then a summary line."""
        lines = [str(problem) for problem in self.problems]
        images = sum(image is not None for image in self.images.values())
        summary = _("{folder}: {rows} rows, {images} images read; {problems} problem(s)").format(
            folder=self.folder, rows=len(self.rows), images=images, problems=len(self.problems))
        return "\n".join([*lines, *self.captions.notes, summary])


# --- the CSV ---------------------------------------------------------------------------------


def _decode(raw: bytes, name: str, problems: list, notes: list) -> str | None:
    """The text of ``raw``: UTF-8, else UTF-16 with a BOM or GBK/GB18030 (what Excel in
    Chinese saves), said in ``notes``; None and a problem when none of them reads it."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            content = raw.decode("utf-16")
        except UnicodeDecodeError as error:
            problems.append(Problem(name, None, None, _(
                "is UTF-16 text (Excel's \"Unicode text\") that cannot be decoded ({reason})"
            ).format(reason=error.reason), _save_utf8()))
            return None
        notes.append(_("note: {name} is UTF-16 text (Excel's \"Unicode text\"); read as "
                       "UTF-16").format(name=name))
        return content
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        try:
            content = raw.decode("gb18030")
        except UnicodeDecodeError:
            problems.append(Problem(name, line, None, _(
                "is not UTF-8 text (byte 0x{byte:02x} at offset {offset})").format(
                    byte=raw[error.start], offset=error.start), _save_utf8()))
            return None
        notes.append(_("note: {name} is GBK/GB18030 text, what Excel in Chinese saves as "
                       "\"CSV (comma delimited)\"; read as GB18030 (to share it, {advice})"
                       ).format(name=name, advice=_save_utf8()))
        return content


def _header_columns(header_line: str, delimiter: str) -> list[str]:
    fields = next(csv.reader([header_line], delimiter=delimiter), [])
    columns = [f.strip().lstrip("\ufeff").lower() for f in fields]
    return [CHINESE_COLUMNS.get(column, column) for column in columns]


def _detect_delimiter(header_line: str) -> str | None:
    """The delimiter whose header has image and text columns, comma first; else None."""
    for delimiter in DELIMITERS:
        columns = _header_columns(header_line, delimiter)
        if "image" in columns and "text" in columns:
            return delimiter
    return None


def _looks_like_row(line: str, delimiter: str, columns: int) -> bool:
    first = line.split(delimiter, 1)[0].strip().strip('"').lower()
    return line.count(delimiter) >= columns - 1 and first.endswith(IMAGE_SUFFIXES)


def read_captions(path) -> Captions:
    """Read a captions CSV into ``Captions``; content problems are collected, not raised
    (``DataError`` only when ``path`` is not a file). Introduced in notebook 09."""
    path = Path(path)
    result = Captions()
    name = path.name
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*") if p.suffix.lower() == ".csv"
                        and p.is_file()) if path.parent.is_dir() else []
        hint = (_("; found {files}: rename it to {name}") if len(others) == 1 else
                _("; found {files}: rename the one with the captions to {name}") if others
                else "").format(files=", ".join(others), name=path.name)
        raise DataError(_("{path} not found: expected a {captions} with columns image,text "
                          "(optional: label)").format(path=path, captions=CAPTIONS) + hint)
    raw = path.read_bytes()
    if not raw.strip():
        result.problems.append(Problem(name, None, None,
                                       _("is empty: expected a header row image,text "
                                         "(optional: label) and one row per image"),
                                       _("write the header row, then one row per caption")))
        return result
    content = _decode(raw, name, result.problems, result.notes)
    if content is None:
        return result
    header_line = content.splitlines()[0]
    delimiter = _detect_delimiter(header_line)
    if delimiter is None:
        found = _header_columns(header_line, ",")
        missing = [c for c in ("image", "text") if c not in found]
        hint = ""
        for other in DELIMITERS[1:]:
            if other in header_line:
                hint = _(" (the header holds a {delimiter}: if that is the delimiter, the "
                         "columns image and text must still be named)").format(
                    delimiter=_(_DELIMITER_NAMES[other]))
        result.problems.append(Problem(
            name, 1, None,
            _("lacks column(s) {missing}: expected columns image,text (optional: label; in "
              "Chinese 图片,描述 and 标签), found {found}").format(missing=missing, found=found)
            + hint,
            _("name the columns image and text (and label, if there are labels) in line 1")))
        return result
    if delimiter != ",":
        result.notes.append(_("note: {name} uses the {delimiter} ({symbol}) as its delimiter; "
                              "detected and used").format(
            name=name, delimiter=_(_DELIMITER_NAMES[delimiter]), symbol=repr(delimiter)))
    result.delimiter = delimiter
    columns = _header_columns(header_line, delimiter)
    label_columns = [c for c in columns if c in LABEL_COLUMNS]
    group_columns = [c for c in columns if c in GROUP_COLUMNS]
    result.has_label = bool(label_columns)
    result.has_group = bool(group_columns)
    position = {c: columns.index(c) for c in ("image", "text", *label_columns[:1],
                                              *group_columns[:1])}
    label_index = position.get(label_columns[0]) if label_columns else None
    if group_columns:
        position["group"] = position[group_columns[0]]
    seen: dict = {}
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 64 * MAX_TEXT_CHARS))
    try:
        reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
        next(reader)  # the header
        end = reader.line_num
        while True:
            start = end + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                result.problems.append(Problem(
                    name, start, None, _("cannot be parsed: {error}").format(error=error),
                    _("check the quotes on this line")))
                break
            end = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # a blank line
            _check_record(result, name, start, end, fields, columns, position, label_index,
                          delimiter, seen)
    finally:
        csv.field_size_limit(limit)
    if not result.rows and not result.problems:
        result.problems.append(Problem(name, None, None, _("has a header but no rows"),
                                       _("add one row per image and caption")))
    return result


def _check_record(result: Captions, name: str, start: int, end: int, fields: list,
                  columns: list, position: dict, label_index, delimiter: str,
                  seen: dict) -> None:
    problems = result.problems
    swallowed = [line for f in fields for line in f.splitlines()[1:]
                 if _looks_like_row(line, delimiter, len(columns))]
    if swallowed:
        problems.append(Problem(
            name, start, None,
            _("a quote opened on this line closes only on line {end}, so lines {start}-{end} "
              "were read as one row (next: {next})").format(end=end, start=start,
                                                           next=repr(swallowed[0][:40])),
            _('close the quote; a quote inside a caption is written as two quotes ("")')))
        return
    if len(fields) != len(columns):
        problems.append(Problem(
            name, start, None,
            _("has {fields} fields, the header has {columns}").format(fields=len(fields),
                                                                      columns=len(columns)),
            _("quote a caption that contains the delimiter {delimiter} (\"a red, round "
              "thing\")").format(delimiter=repr(delimiter)) if len(fields) > len(columns)
            else _("fill in every column")))
        return
    image = fields[position["image"]].strip()
    text = fields[position["text"]].strip()
    ok = True
    if not image:
        problems.append(Problem(name, start, "image", _("the image column is empty"),
                                _("give the image file name, relative to the folder")))
        ok = False
    elif Path(image).is_absolute() or ".." in Path(image).parts:
        problems.append(Problem(name, start, "image",
                                _("image '{image}' is outside the folder").format(image=image),
                                _("give a path relative to the folder, without '..'")))
        ok = False
    if not text:
        problems.append(Problem(name, start, "text", _("the text column is empty"),
                                _("write the caption, or delete the row")))
        ok = False
    elif len(text) > MAX_TEXT_CHARS:
        problems.append(Problem(name, start, "text",
                                _("the caption has {count:,} characters, more than {limit:,}"
                                  ).format(count=len(text), limit=MAX_TEXT_CHARS),
                                _("shorten it, or check its quotes")))
        ok = False
    label = None
    if label_index is not None:
        value = fields[label_index].strip()
        label = LABEL_VALUES.get(value.lower())
        if label is None:
            problems.append(Problem(name, start, columns[label_index],
                                    _("label must be 0 or 1 (or true/false, yes/no, 是/否), got "
                                      "{value}").format(value=repr(value)),
                                    _("write 1 when the text describes the image, 0 when not")))
            ok = False
    if not ok:
        return
    group = fields[position["group"]].strip() or None if "group" in position else None
    key = (image, text)
    if key in seen:
        first = seen[key]
        if first.label != label:
            problems.append(Problem(name, start, columns[label_index],
                                    _("the same image and text are on line {first} with label "
                                      "{first_label:g}, here with {label:g}").format(
                                        first=first.line, first_label=first.label, label=label),
                                    _("keep one row with the right label")))
        else:
            result.notes.append(_("note: {name} line {line} repeats line {first}").format(
                name=name, line=start, first=first.line))
        return
    row = Row(start, image, text, label, group)
    seen[key] = row
    result.rows.append(row)


# --- images ----------------------------------------------------------------------------------


def decode_image(data: bytes, name: str = "image", size: int | None = None) -> np.ndarray:
    """Decode image bytes to RGB uint8 by the course's image contract
    (``images.decode_image``), resized to (size, size) when ``size`` is given. ``DataError``
    naming ``name`` when the file is empty, corrupt, not an image, over ``MAX_PIXELS`` or a
    JPEG with corrupt data. Introduced in notebook 09."""
    try:
        return images.decode_image(data, name, size)
    except images.ImageError as error:
        raise DataError(str(error)) from None


def read_image(path, size: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 (see ``decode_image``). Introduced in notebook 01."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    return decode_image(path.read_bytes(), str(path), size)


# --- the folder --------------------------------------------------------------------------------


def missing_image_fix(folder: Path, name: str) -> str:
    """How to fix a caption row whose image ``name`` is missing from ``folder``: the Windows
    backslash, or a file of that name in other letter case. Introduced in notebook 09."""
    if "\\" in name:
        slashed = name.replace("\\", "/")
        return _("use / between folders, not the Windows backslash \\: {path}").format(
            path=slashed) + (_(" (that file exists)") if (folder / slashed).is_file() else "")
    target = Path(name).name.lower()
    parent = (folder / name).parent
    if parent.is_dir():
        for candidate in parent.iterdir():
            if candidate.name.lower() == target:
                return _("did you mean '{name}'? file names are case-sensitive").format(
                    name=candidate.relative_to(folder).as_posix())
    return _("put the image in the folder, or correct the name")


def check_folder(folder, size: int | None = None, workers: int | None = None) -> FolderCheck:
    """Read ``folder/captions.csv`` and every image it names; collect every problem.

    ``size`` also resizes the decoded images (kept in ``.images``); ``workers`` threads
    decode them (default: the CPU count). Introduced in notebook 09."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(_("folder not found: {folder}").format(folder=folder))
    captions = read_captions(folder / CAPTIONS)
    check = FolderCheck(folder, captions, problems=list(captions.problems))
    lines: dict[str, list[int]] = {}
    for row in captions.rows:
        lines.setdefault(row.image, []).append(row.line)

    def load(name):
        path = folder / name
        if not path.is_file():
            return name, None, Problem(CAPTIONS, lines[name][0], "image",
                                       _("image '{name}' not found at {path}").format(
                                           name=name, path=path),
                                       missing_image_fix(folder, name))
        try:
            return name, decode_image(path.read_bytes(), name, size), None
        except DataError as error:
            also = lines[name][1:]
            where = _(" (also on line(s) {lines})").format(
                lines=", ".join(map(str, also[:5]))) if also else ""
            return name, None, Problem(CAPTIONS, lines[name][0], "image",
                                       f"{error}{where}", _("replace or remove the file"))
        except OSError as error:
            return name, None, Problem(CAPTIONS, lines[name][0], "image",
                                       _("cannot read {name}: {reason}").format(
                                           name=name, reason=error.strerror),
                                       _("check the file's permissions"))

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for name, image, problem in pool.map(load, list(lines)):
            check.images[name] = image
            if problem is not None:
                check.problems.append(problem)
    check.problems.sort(key=lambda p: (p.file != CAPTIONS, p.line or 0))
    return check


def load_folder(folder, size: int = 64):
    """Read a folder of images plus ``captions.csv`` (columns image,text and optional label).

    Returns (images uint8 (N, size, size, 3) RGB, texts, labels): labels float32 0/1 from
    the label column, or int32 pair ids 0..N-1 when there is none (every row a true pair,
    as in retrieval). Any problem raises one ``DataError`` that lists them all, with file
    line numbers. Introduced in notebook 01.
    """
    check = check_folder(folder, size=size)
    if not check.ok:
        count = len(check.problems)
        raise DataError(f"{Path(folder) / CAPTIONS}: {count} problem(s) "
                        f"(`python -m mmcourse check-data {folder}` lists them):\n"
                        + "\n".join(str(p) for p in check.problems))
    rows = check.rows
    images = np.stack([check.images[row.image] for row in rows])
    texts = [row.text for row in rows]
    labels = (np.array([row.label for row in rows], np.float32) if check.captions.has_label
              else np.arange(len(rows), dtype=np.int32))
    return images, texts, labels
