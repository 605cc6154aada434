"""Synthetic folders of image-caption pairs for notebook 09, written as a learner's own data
would be: images plus ``captions.csv``.

- SYNTHETIC grey "scans" (drawn with OpenCV, not medical data): a bright or dark spot, small
  or large, in one of four places, captioned in English or Chinese (``write_scan_folder``),
  their caption grammar both ways (``scan_caption``, ``parse_scan_caption``) and the typical
  problems ``check-data`` must find (``plant_problems``).
- a folder of the course's shapes with their captions (``write_shapes_folder``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcourse.data import folders

#: What the synthetic "scans" show: a bright or dark spot, small or large, in one of four
#: places of a grey oval, or nothing. SYNTHETIC: drawn with OpenCV, not medical data.
SCAN_KINDS = {"bright": ("bright", "亮斑", 230), "dark": ("dark", "暗斑", 35)}
SCAN_PLACES = {"left": ("on the left", "左侧", (-1, 0)), "right": ("on the right", "右侧", (1, 0)),
               "top": ("at the top", "上方", (0, -1)), "bottom": ("at the bottom", "下方", (0, 1))}
SCAN_SIZES = {"small": ("small", "小", 5), "large": ("large", "大", 10)}
NO_FINDING = ("no finding", "未见异常")
LANGUAGES = ("en", "zh", "both")


def scan_caption(finding: dict | None, language: str) -> str:
    """The caption of a scan's finding (``None``: no finding) in ``en`` or ``zh``:
    "a small bright spot on the left" / "左侧有一个小的亮斑". Introduced in notebook 09."""
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if finding is None:
        return NO_FINDING[language == "zh"]
    kind, place, size = (SCAN_KINDS[finding["kind"]], SCAN_PLACES[finding["place"]],
                         SCAN_SIZES[finding["size"]])
    if language == "en":
        return f"a {size[0]} {kind[0]} spot {place[0]}"
    return f"{place[1]}有一个{size[1]}的{kind[1]}"


def draw_scan(finding: dict | None, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A synthetic grey "scan" (uint8 (size, size)): a textured oval and the finding's spot.
    Introduced in notebook 09."""
    import cv2

    scale = size / 96
    image = np.zeros((size, size), np.float32)
    centre = (size // 2, size // 2)
    axes = (int((34 + rng.integers(-3, 4)) * scale), int((30 + rng.integers(-3, 4)) * scale))
    cv2.ellipse(image, centre, axes, 0, 0, 360, float(110 + rng.integers(-10, 11)), -1,
                cv2.LINE_AA)
    if finding is not None:
        dx, dy = SCAN_PLACES[finding["place"]][2]
        offset = (19 + rng.integers(-2, 3)) * scale
        x = int(centre[0] + dx * offset + rng.integers(-3, 4) * scale * (dx == 0))
        y = int(centre[1] + dy * offset + rng.integers(-3, 4) * scale * (dy == 0))
        radius = int(SCAN_SIZES[finding["size"]][2] * scale)
        cv2.circle(image, (x, y), radius, float(SCAN_KINDS[finding["kind"]][2]), -1, cv2.LINE_AA)
    image += rng.normal(0, 8, image.shape).astype(np.float32) * (image > 0)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def random_finding(rng: np.random.Generator) -> dict | None:
    """One of the 16 findings or, with probability 1/17, none. Introduced in notebook 09."""
    choice = int(rng.integers(17))
    if choice == 16:
        return None
    kind, place, size = np.unravel_index(choice, (2, 4, 2))
    return {"kind": tuple(SCAN_KINDS)[kind], "place": tuple(SCAN_PLACES)[place],
            "size": tuple(SCAN_SIZES)[size]}


def write_scan_folder(folder, count: int = 200, seed: int = 0, language: str = "zh",
                      labels: bool = False, size: int = 96) -> Path:
    """Write ``count`` SYNTHETIC scans (PNG, grey) and ``captions.csv`` into ``folder``:
    one caption per image, in ``language`` (``both``: Chinese and English alternating). With
    ``labels``, each image gets a true row and a false one (another finding's caption,
    label 0). Deterministic under ``seed``. Introduced in notebook 09."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    _check_count(count)
    rng = np.random.default_rng(seed)

    def scans():
        for index in range(count):
            finding = random_finding(rng)
            image = draw_scan(finding, rng, size)
            lang = language if language != "both" else ("zh", "en")[index % 2]
            name, caption = f"images/scan_{index:05d}.png", scan_caption(finding, lang)
            if not labels:
                yield name, image, [[name, caption]]
                continue
            other = finding
            while other == finding:
                other = random_finding(rng)
            yield name, image, [[name, caption, 1], [name, scan_caption(other, lang), 0]]

    return _write_folder(folder, scans(), ["image", "text", "label"] if labels
                         else ["image", "text"])


def write_shapes_folder(folder, count: int = 1000, seed: int = 0, language: str = "en") -> Path:
    """Write ``count`` course scenes (one shape each, ``data.random_scene``) as PNG files and
    ``captions.csv`` without labels ("a small red circle" / "一个小的红色圆形"): a generated
    folder of image-caption pairs, as an instructor's would be. Introduced in notebook 09."""
    import cv2

    from mmcourse.data import draw, statements
    from mmcourse.data import scenes as data
    from mmcourse.data.grammar_zh import check_language

    check_language(language)
    _check_count(count)
    rng = np.random.default_rng(seed)

    def shapes():
        for index in range(count):
            objects = data.random_scene(rng, "attributes")
            name = f"images/shape_{index:05d}.png"
            yield name, cv2.cvtColor(draw.render_scene(objects), cv2.COLOR_RGB2BGR), [[
                name, statements.statement_text({"kind": "attribute", **objects[0]}, language)]]

    return _write_folder(folder, shapes(), ["image", "text"])


def _check_count(count) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 3:
        raise ValueError(f"count must be an int >= 3, got {count!r}")


def _write_folder(folder, items, header) -> Path:
    """Write each (relative name, BGR image, CSV rows) of ``items``, then ``captions.csv``
    with ``header``: the folders of notebook 09."""
    import csv

    import cv2

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, image, item_rows in items:
        if not cv2.imwrite(str(folder / name), image):
            raise OSError(f"OpenCV could not write {folder / name}")
        rows += item_rows
    with open(folder / folders.CAPTIONS, "w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return folder


def _all_findings():
    return [None, *({"kind": k, "place": p, "size": s} for k in SCAN_KINDS for p in SCAN_PLACES
                    for s in SCAN_SIZES)]


def parse_scan_caption(caption: str) -> dict | None:
    """The finding a scan caption states (inverse of ``scan_caption``, either language);
    ``None`` for "no finding"; ``ValueError`` for a caption of another grammar.
    Introduced in notebook 09."""
    for finding in _all_findings():
        if caption in (scan_caption(finding, "en"), scan_caption(finding, "zh")):
            return finding
    raise ValueError(f"caption {caption!r} is not a scan caption")


def plant_problems(folder) -> dict:
    """Plant typical problems into a scan folder (appended rows and files): a missing image,
    an empty caption, an unbalanced quote, a corrupt JPEG and a 40000x40000 PNG. Returns
    ``{line: what}`` for the lines ``check-data`` must report. Introduced in notebook 09."""
    import struct
    import zlib

    import cv2

    folder = Path(folder)
    csv_path = folder / folders.CAPTIONS
    content = csv_path.read_text(encoding="utf-8")
    first = content.count("\n") + 1  # the line the first appended row gets
    ok, jpeg = cv2.imencode(".jpg", draw_scan(None, np.random.default_rng(0), 96))
    corrupt = bytearray(jpeg.tobytes())
    start = len(corrupt) // 2
    corrupt[start:start + 40] = bytes(np.random.default_rng(1).integers(0, 256, 40, np.uint8))
    (folder / "images" / "corrupt.jpg").write_bytes(bytes(corrupt))
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    (folder / "images" / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)))
    rows = ["images/scan_09999.png,左侧有一个小的亮斑",  # missing image
            "images/scan_00001.png,",  # empty caption
            'images/scan_00002.png,"a small bright spot on the left',  # quote opened ...
            "images/scan_00003.png,a large dark spot at the top",
            'images/scan_00004.png,no finding"',  # ... closed here
            "images/corrupt.jpg,未见异常",
            "images/huge.png,未见异常"]
    csv_path.write_text(content + "\n".join(rows) + "\n", encoding="utf-8")
    return {first: "missing image", first + 1: "empty caption", first + 2: "unbalanced quote",
            first + 5: "corrupt JPEG", first + 6: "image too large"}
