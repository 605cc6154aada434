"""The course dataset: scenes of coloured shapes with captions and questions (notebook 01).

Scenes are drawn with OpenCV (anti-aliased) on a plain gray background, 64x64 RGB.

* ``attributes`` level: one object per scene, captioned "a large red circle".
* ``relations`` level: 2 to 4 objects, at most one of each colour (as in Sort-of-CLEVR,
  Santoro et al. 2017), with statements about left/right, above/below, nearest/furthest
  and counting. Every pair of centres differs by at least ``MARGIN`` pixels in x and in y,
  so every left/right and above/below statement is clear-cut.

Tasks: ``match`` (image + text -> 1 if the text is true of the image), ``qa`` (question ->
answer word) and ``retrieval`` (image <-> caption pairs). Each scene gets one true and one
false ``match`` statement; the false one changes exactly one attribute or relation of the
true one, chosen uniformly, so neither the image alone nor the text alone predicts the
label (see data/README.md). Files: PNG images, JSONL records, ``vocab.json`` and a
``manifest.json`` of hashes; ``python -m mmcourse data [--verify]`` builds or checks them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np

from mmcourse.data import folders
from mmcourse.data.folders import DataError
from mmcourse.data.text import SEQUENCE_LENGTH, STANDARDIZE, split_words
from mmcourse.names import DATA_TASKS, LEVELS
from mmcourse.paths import DATA_DIR

IMAGE_SIZE = 64
TASKS = DATA_TASKS
SPLITS = ("train", "val", "test")

#: Bumped whenever the generated files change; ``ensure_data`` regenerates older data.
DATA_VERSION = 2

#: RGB colours, chosen to stay distinct from each other and from the background.
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 220, 40),
    "magenta": (210, 60, 210),
    "cyan": (40, 210, 220),
}
SHAPES = ("circle", "square", "triangle")
#: Attributes level: radius range (pixels, inclusive) for each size word.
SIZES = {"small": (6, 9), "large": (15, 19)}
BACKGROUND = (120, 120, 120)
#: Relations level: radius range of every object, and the clear margins.
RELATION_RADIUS = (6, 8)
MARGIN = 8  # centres differ by at least this in x and in y
DISTANCE_MARGIN = 5  # nearest/furthest is stated only when the runner-up is this much further/closer
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}

#: Number of scenes per level and split. Each scene gives MATCH_PAIRS_PER_SCENE pairs of
#: match records (one true, one false), QA_PER_SCENE qa records and 1 retrieval record.
DEFAULT_SIZES = {
    "attributes": {"train": 2000, "val": 250, "test": 500},
    "relations": {"train": 4000, "val": 500, "test": 1000},
}
#: Questions cost no pixels: at the relations level every scene is asked 10 questions
#: (half relational) and 5 statement pairs (Sort-of-CLEVR asks 20 questions per image), so
#: notebook 06's models see 40,000 training questions from 4,000 images.
QA_PER_SCENE = {"attributes": 1, "relations": 10}
MATCH_PAIRS_PER_SCENE = {"attributes": 1, "relations": 5}
#: How many of a scene's questions come from its own random stream (all of them in data
#: version 1); the others come from a second stream, so the images stay those of version 1.
QA_FROM_SCENE_STREAM = {"attributes": 1, "relations": 2}

#: Every word the grammar uses, in a fixed order: vocab.json lists them after "" and "[UNK]".
WORDS = (
    "a", "the", "is", "are", "there", "of", "to", "from", "on", "at", "or", "it",
    *COLOURS, *SHAPES, *PLURALS.values(), *SIZES,
    "left", "right", "above", "below", "top", "bottom", "nearest", "furthest",
    *NUMBER_WORDS, "object", "objects", "what", "colour", "shape", "size", "how", "many",
)
#: QA answers; the qa label is the index into this list.
ANSWERS = (*SHAPES, *COLOURS, *SIZES, "left", "right", "top", "bottom", *NUMBER_WORDS)

_GENERATED = ("attributes", "relations", "vocab.json")  # plus manifest.json, written last
_KEEP = {"README.md", "samples", "manifest.json", ".lock", "zh", "audio", "video"}

# --- the Chinese grammar (``data --language zh``, notebook 09) -----------------------------

LANGUAGES = ("en", "zh")
COLOURS_ZH = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色",
              "magenta": "品红色", "cyan": "青色"}
SHAPES_ZH = {"circle": "圆形", "square": "方形", "triangle": "三角形"}
SIZES_ZH = {"small": "小的", "large": "大的"}
NUMBER_WORDS_ZH = ("零", "一", "两", "三", "四")
RELATIONS_ZH = {"left of": "左边", "right of": "右边", "above": "上面", "below": "下面",
                "nearest to": "最近", "furthest from": "最远"}
#: The qa answers in Chinese, index for index the same labels as ``ANSWERS``; the sides are
#: single characters so that flips swap them (左/右, 上/下).
ANSWERS_ZH = (*SHAPES_ZH.values(), *COLOURS_ZH.values(), "小", "大", "左", "右", "上", "下",
              *NUMBER_WORDS_ZH)
_ZH_PHRASES = ("一个", *SIZES_ZH.values(), *COLOURS_ZH.values(), *SHAPES_ZH.values(), "在",
               "的", *RELATIONS_ZH.values(), "是离", "物体", "有", *NUMBER_WORDS_ZH, "个",
               "这个物体是什么颜色形状大小", "还是", "几", "从左到右", *ANSWERS_ZH)
#: Every Han character the Chinese grammar uses (each one a token), in first-use order.
WORDS_ZH = tuple(dict.fromkeys(c for phrase in _ZH_PHRASES for c in phrase))
#: Tokens per text in the Chinese data, per level (one token per Han character).
SEQUENCE_LENGTHS_ZH = {"attributes": 10, "relations": 28}
_QUESTIONS = {
    "en": {"attribute": "what {0} is the object", "shape": "what shape is the {0} object",
           "side": "is the {0} object on the left or right",
           "height": "is the {0} object at the top or bottom",
           "relational": "what {2} is the object {1} the {0} object",
           "count": "how many {0} are there"},
    "zh": {"attribute": "这个物体是什么{0}", "shape": "{0}物体是什么形状",
           "side": "{0}物体在左边还是右边", "height": "{0}物体在上面还是下面",
           "relational": "离{0}物体{1}的物体是什么{2}", "count": "有几个{0}"},
}
_ATTRIBUTE_ZH = {"colour": "颜色", "shape": "形状", "size": "大小"}


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")


def answer_word(answer: str, language: str = "en") -> str:
    """A qa answer (English, as in ``ANSWERS``) in ``language``. Introduced in notebook 09."""
    _check_language(language)
    return answer if language == "en" else ANSWERS_ZH[ANSWERS.index(answer)]


# --- drawing ------------------------------------------------------------------------------


def _extent(obj: dict) -> float:
    """Half-width of the object's bounding box (triangles and squares reach a bit further)."""
    return {"circle": 1.0, "square": 0.89, "triangle": 1.2}[obj["shape"]] * obj["r"]


def render_scene(objects, size: int = IMAGE_SIZE, background=BACKGROUND) -> np.ndarray:
    """Draw ``objects`` (dicts with shape, colour, x, y, r) on a plain background.

    Returns an RGB uint8 array (size, size, 3). Shapes are anti-aliased (``cv2.LINE_AA``);
    ``r`` is the circle radius, about half the square's side and 5/6 of the triangle's
    circumradius. Introduced in notebook 01.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    shift = 4  # sub-pixel vertices: coordinates are multiplied by 2**shift
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not {"shape", "colour", "x", "y", "r"} <= set(obj):
            raise ValueError(f"objects[{index}] must be a dict with shape, colour, x, y, r; "
                             f"got {obj!r}")
        if obj["shape"] not in SHAPES:
            raise ValueError(f"objects[{index}] has shape {obj['shape']!r}; expected one of {SHAPES}")
        if obj["colour"] not in COLOURS:
            raise ValueError(f"objects[{index}] has colour {obj['colour']!r}; expected one of "
                             f"{tuple(COLOURS)}")
        colour = COLOURS[obj["colour"]]
        x, y, r = float(obj["x"]), float(obj["y"]), float(obj["r"])
        if obj["shape"] == "circle":
            points = None
            cv2.circle(image, (round(x * 16), round(y * 16)), round(r * 16), colour, -1,
                       cv2.LINE_AA, shift)
            continue
        if obj["shape"] == "square":
            half = 0.89 * r
            points = [(x - half, y - half), (x + half, y - half), (x + half, y + half),
                      (x - half, y + half)]
        else:  # triangle pointing up, centred on its centroid
            radius = 1.2 * r
            dx = radius * np.sqrt(3) / 2
            points = [(x, y - radius), (x + dx, y + radius / 2), (x - dx, y + radius / 2)]
        polygon = np.round(np.array(points) * 2**shift).astype(np.int32)
        cv2.fillPoly(image, [polygon], colour, cv2.LINE_AA, shift)
    return image


# --- statements: text and truth -----------------------------------------------------------


def _name(ref: dict) -> str:
    return f"{ref['colour']} {ref['shape']}"


def _name_zh(ref: dict) -> str:
    return f"{COLOURS_ZH[ref['colour']]}{SHAPES_ZH[ref['shape']]}"


def _statement_text_zh(statement: dict) -> str:
    kind = statement["kind"]
    if kind == "attribute":
        return (f"一个{SIZES_ZH[statement['size']]}{COLOURS_ZH[statement['colour']]}"
                f"{SHAPES_ZH[statement['shape']]}")
    if kind == "spatial":
        return (f"{_name_zh(statement['a'])}在{_name_zh(statement['b'])}的"
                f"{RELATIONS_ZH[statement['relation']]}")
    if kind == "distance":
        return (f"{_name_zh(statement['a'])}是离{_name_zh(statement['b'])}"
                f"{RELATIONS_ZH[statement['relation']]}的物体")
    if kind == "count":
        return f"有{NUMBER_WORDS_ZH[statement['number']]}个物体"
    raise ValueError(f"unknown statement kind {kind!r}")


def statement_text(statement: dict, language: str = "en") -> str:
    """The text of a statement dict (see ``is_true``) in English, or with
    ``language="zh"`` in Chinese: "a small red circle" / "一个小的红色圆形", "a red circle left
    of a blue square" / "红色圆形在蓝色方形的左边". Introduced in notebook 01; Chinese in
    notebook 09."""
    _check_language(language)
    if language == "zh":
        return _statement_text_zh(statement)
    kind = statement["kind"]
    if kind == "attribute":
        return f"a {statement['size']} {statement['colour']} {statement['shape']}"
    if kind == "spatial":
        return f"a {_name(statement['a'])} {statement['relation']} a {_name(statement['b'])}"
    if kind == "distance":
        return f"the {_name(statement['a'])} is {statement['relation']} the {_name(statement['b'])}"
    if kind == "count":
        return f"there are {NUMBER_WORDS[statement['number']]} objects"
    raise ValueError(f"unknown statement kind {kind!r}")


_C, _S = "|".join(COLOURS), "|".join(SHAPES)
_PATTERNS = {
    "attribute": rf"a (?P<size>{'|'.join(SIZES)}) (?P<colour>{_C}) (?P<shape>{_S})",
    "spatial": rf"a (?P<ac>{_C}) (?P<as>{_S}) (?P<relation>left of|right of|above|below) "
               rf"a (?P<bc>{_C}) (?P<bs>{_S})",
    "distance": rf"the (?P<ac>{_C}) (?P<as>{_S}) is (?P<relation>nearest to|furthest from) "
                rf"the (?P<bc>{_C}) (?P<bs>{_S})",
    "count": rf"there are (?P<number>{'|'.join(NUMBER_WORDS)}) objects",
}


def parse_statement(text: str) -> dict:
    """The statement dict of a match text (inverse of ``statement_text``); ValueError if the
    text is not in the grammar. Introduced in notebook 01."""
    for kind, pattern in _PATTERNS.items():
        match = re.fullmatch(pattern, text.strip())
        if match is None:
            continue
        groups = match.groupdict()
        if kind == "attribute":
            return {"kind": kind, **groups}
        if kind == "count":
            return {"kind": kind, "number": NUMBER_WORDS.index(groups["number"])}
        return {"kind": kind, "a": {"colour": groups["ac"], "shape": groups["as"]},
                "relation": groups["relation"],
                "b": {"colour": groups["bc"], "shape": groups["bs"]}}
    raise ValueError(f"text {text!r} is not a statement of the course grammar")


def _find(objects, ref: dict):
    """The object with ref's colour and shape, or None (colours are unique in a scene)."""
    for obj in objects:
        if obj["colour"] == ref["colour"] and obj["shape"] == ref["shape"]:
            return obj
    return None


def _distance(a: dict, b: dict) -> float:
    return float(np.hypot(a["x"] - b["x"], a["y"] - b["y"]))


def _ranked_others(objects, anchor):
    """Other objects sorted by distance from ``anchor``, with the distances."""
    others = [o for o in objects if o is not anchor]
    distances = [_distance(anchor, o) for o in others]
    order = np.argsort(distances, kind="stable")
    return [others[i] for i in order], [distances[i] for i in order]


def is_true(statement: dict, objects) -> bool:
    """Whether a statement holds in a scene. Relations compare object centres (image
    coordinates: y grows downwards). Introduced in notebook 01."""
    kind = statement["kind"]
    if kind == "attribute":
        return any(o["colour"] == statement["colour"] and o["shape"] == statement["shape"]
                   and o.get("size") == statement["size"] for o in objects)
    if kind == "count":
        return len(objects) == statement["number"]
    a, b = _find(objects, statement["a"]), _find(objects, statement["b"])
    if a is None or b is None or a is b:
        return False
    if kind == "spatial":
        relation = statement["relation"]
        if relation == "left of":
            return a["x"] + MARGIN <= b["x"]
        if relation == "right of":
            return a["x"] >= b["x"] + MARGIN
        if relation == "above":
            return a["y"] + MARGIN <= b["y"]
        if relation == "below":
            return a["y"] >= b["y"] + MARGIN
        raise ValueError(f"unknown spatial relation {relation!r}")
    if kind == "distance":
        ranked, _ = _ranked_others(objects, b)
        target = ranked[0] if statement["relation"] == "nearest to" else ranked[-1]
        return target is a
    raise ValueError(f"unknown statement kind {kind!r}")


_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above",
             "nearest to": "furthest from", "furthest from": "nearest to"}


def _true_statement(objects, rng, level: str) -> dict:
    """Draw one true statement about the scene."""
    if level == "attributes":
        obj = objects[0]
        return {"kind": "attribute", "colour": obj["colour"], "shape": obj["shape"],
                "size": obj["size"]}
    if rng.random() < 0.2:  # fixed share, independent of the scene: keeps counts balanced
        return {"kind": "count", "number": len(objects)}
    options = []
    for anchor in objects:
        if len(objects) >= 3:
            ranked, distances = _ranked_others(objects, anchor)
            if distances[1] - distances[0] >= DISTANCE_MARGIN:
                options.append(("nearest to", ranked[0], anchor))
            if distances[-1] - distances[-2] >= DISTANCE_MARGIN:
                options.append(("furthest from", ranked[-1], anchor))
    ref = lambda o: {"colour": o["colour"], "shape": o["shape"]}  # noqa: E731
    if options and rng.random() < 0.375:  # about 30% of all statements
        relation, a, b = options[rng.integers(len(options))]
        return {"kind": "distance", "a": ref(a), "relation": relation, "b": ref(b)}
    i, j = rng.choice(len(objects), size=2, replace=False)
    a, b = objects[i], objects[j]
    if rng.random() < 0.5:
        relation = "left of" if a["x"] < b["x"] else "right of"
    else:
        relation = "above" if a["y"] < b["y"] else "below"
    return {"kind": "spatial", "a": ref(a), "relation": relation, "b": ref(b)}


def _false_statement(statement: dict, objects, rng) -> tuple[dict, str]:
    """Change exactly one attribute or relation of a true statement so that it is false.

    Returns the statement and what was changed. The part to change is uniform among the
    statement's parts, and the new value uniform among the other values, which keeps the
    share of true statements near 1/2 for every text (data/README.md explains why).
    """
    kind = statement["kind"]
    for _ in range(100):
        new = json.loads(json.dumps(statement))  # deep copy of a small dict
        if kind == "attribute":
            changed = ("colour", "shape", "size")[rng.integers(3)]
            values = {"colour": tuple(COLOURS), "shape": SHAPES, "size": tuple(SIZES)}[changed]
            new[changed] = _other(values, statement[changed], rng)
        elif kind == "count":
            changed = "number"
            new["number"] = _other((2, 3, 4), statement["number"], rng)
        elif rng.random() < 0.5:
            changed = "relation"
            new["relation"] = _OPPOSITE[statement["relation"]]
        else:
            side, attribute = ("a", "b")[rng.integers(2)], ("colour", "shape")[rng.integers(2)]
            changed = f"{side}.{attribute}"
            if attribute == "shape":
                new[side]["shape"] = _other(SHAPES, statement[side]["shape"], rng)
            else:
                other_side = statement["b" if side == "a" else "a"]["colour"]
                values = tuple(c for c in COLOURS if c != other_side)
                new[side]["colour"] = _other(values, statement[side]["colour"], rng)
        if not is_true(new, objects):
            return new, changed
    raise RuntimeError(f"could not make a false version of {statement}")  # pragma: no cover


def _match_pair(objects, rng, level: str) -> tuple[dict, dict, str]:
    """A true statement, its false twin and what the twin changed."""
    statement = _true_statement(objects, rng, level)
    return (statement, *_false_statement(statement, objects, rng))


def _other(values, current, rng):
    choices = [v for v in values if v != current]
    return choices[rng.integers(len(choices))]


def _questions(objects, rng, level: str, count: int,
               language: str = "en") -> list[tuple[str, str, str]]:
    """Draw ``count`` (kind, question, answer) triples about the scene; the question in
    ``language``, the answer in English (``answer_word`` translates it)."""
    zh = language == "zh"
    templates = _QUESTIONS[language]
    if level == "attributes":
        obj = objects[0]
        kinds = ("colour", "shape", "size")
        chosen = rng.choice(3, size=count, replace=False)
        return [(kinds[k], templates["attribute"].format(_ATTRIBUTE_ZH[kinds[k]] if zh
                                                         else kinds[k]), obj[kinds[k]])
                for k in chosen]
    non_relational, relational = [], []
    centre = (IMAGE_SIZE - 1) / 2
    for obj in objects:
        colour = COLOURS_ZH[obj["colour"]] if zh else obj["colour"]
        non_relational.append(("shape", templates["shape"].format(colour), obj["shape"]))
        if abs(obj["x"] - centre) >= MARGIN / 2:
            side = "left" if obj["x"] < centre else "right"
            non_relational.append(("side", templates["side"].format(colour), side))
        if abs(obj["y"] - centre) >= MARGIN / 2:
            side = "top" if obj["y"] < centre else "bottom"
            non_relational.append(("height", templates["height"].format(colour), side))
        if len(objects) >= 3:
            ranked, distances = _ranked_others(objects, obj)
            for which, target, gap in (("nearest to", ranked[0], distances[1] - distances[0]),
                                       ("furthest from", ranked[-1], distances[-1] - distances[-2])):
                if gap >= DISTANCE_MARGIN:
                    for attribute in ("shape", "colour"):
                        words = ((RELATIONS_ZH[which], _ATTRIBUTE_ZH[attribute]) if zh
                                 else (which, attribute))
                        relational.append((f"{which.split()[0]} {attribute}",
                                           templates["relational"].format(colour, *words),
                                           target[attribute]))
    for shape in SHAPES:
        number = sum(o["shape"] == shape for o in objects)
        relational.append(("count", templates["count"].format(SHAPES_ZH[shape] if zh
                                                              else PLURALS[shape]),
                           NUMBER_WORDS[number]))
    pools = [non_relational, relational]
    return [pools[i % 2][rng.integers(len(pools[i % 2]))] for i in range(count)]


def retrieval_caption(objects, level: str, language: str = "en") -> str:
    """The caption used for retrieval: the attribute caption, or the objects from left to
    right at the relations level ("从左到右：..." in Chinese). Introduced in notebook 01."""
    _check_language(language)
    if language == "zh":
        if level == "attributes":
            return statement_text({"kind": "attribute", **objects[0]}, "zh")
        return "从左到右：" + "，".join(_name_zh(o) for o in sorted(objects, key=lambda o: o["x"]))
    if level == "attributes":
        obj = objects[0]
        return f"a {obj['size']} {obj['colour']} {obj['shape']}"
    names = [_name(o) for o in sorted(objects, key=lambda o: o["x"])]
    return "left to right: " + ", ".join(names)


# --- scenes --------------------------------------------------------------------------------


def random_scene(rng: np.random.Generator, level: str) -> list[dict]:
    """Draw the objects of one scene (positions are integer pixel centres). Introduced in
    notebook 01."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if level == "attributes":
        size = tuple(SIZES)[rng.integers(len(SIZES))]
        obj = {"shape": SHAPES[rng.integers(3)], "colour": tuple(COLOURS)[rng.integers(6)],
               "size": size, "r": int(rng.integers(SIZES[size][0], SIZES[size][1] + 1))}
        reach = int(np.ceil(_extent(obj))) + 1
        obj["x"], obj["y"] = (int(v) for v in rng.integers(reach, IMAGE_SIZE - reach, size=2))
        return [{k: obj[k] for k in ("shape", "colour", "size", "x", "y", "r")}]
    if level != "relations":
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    count = int(rng.integers(2, 5))
    colours = rng.choice(len(COLOURS), size=count, replace=False)
    objects = [{"shape": SHAPES[rng.integers(3)], "colour": tuple(COLOURS)[c],
                "r": int(rng.integers(RELATION_RADIUS[0], RELATION_RADIUS[1] + 1))}
               for c in colours]
    reach = int(np.ceil(1.2 * RELATION_RADIUS[1])) + 1
    span = IMAGE_SIZE - 2 * reach - (count - 1) * MARGIN
    while True:
        # Sorted uniform draws plus i * MARGIN: every pair differs by >= MARGIN, uniformly.
        xs = np.sort(rng.integers(0, span, size=count)) + reach + MARGIN * np.arange(count)
        ys = np.sort(rng.integers(0, span, size=count)) + reach + MARGIN * np.arange(count)
        xs, ys = rng.permutation(xs), rng.permutation(ys)
        for obj, x, y in zip(objects, xs, ys, strict=True):
            obj["x"], obj["y"] = int(x), int(y)
        if all(_distance(a, b) >= _extent(a) + _extent(b) + 2
               for i, a in enumerate(objects) for b in objects[i + 1:]):
            return [{k: o[k] for k in ("shape", "colour", "x", "y", "r")} for o in objects]


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of the decoded pixels and their shape (what the manifest stores for an image).
    Introduced in notebook 01."""
    image = np.ascontiguousarray(image)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def _sizes(sizes) -> dict:
    result = {level: dict(DEFAULT_SIZES[level]) for level in LEVELS}
    for level, splits in (sizes or {}).items():
        if level not in LEVELS:
            raise ValueError(f"sizes has level {level!r}; expected levels {LEVELS}")
        for split, n in splits.items():
            if split not in SPLITS or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"sizes[{level!r}] must map splits {SPLITS} to ints >= 1, "
                                 f"got {split!r}: {n!r}")
            result[level][split] = n
    return result


def _write_jsonl(path: Path, records) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def _build(folder: Path, seed: int, sizes: dict, progress: bool, language: str = "en") -> dict:
    """Write every level and split under ``folder``; return the manifest's file entries.
    ``language`` changes only the texts (and answer words): scenes, images, labels and the
    random draws are those of the English data."""
    from tqdm.auto import tqdm

    files = {}
    words = WORDS if language == "en" else WORDS_ZH
    vocabulary = {"", "[UNK]", *words}
    total = sum(sum(s.values()) for s in sizes.values())
    bar = tqdm(total=total, desc="drawing scenes", unit="scene", file=sys.stderr,
               mininterval=1.0, disable=not progress)
    for level_index, level in enumerate(LEVELS):
        seen = set()  # pixel hashes: no image (hence no image+text pair) in two splits
        for split_index, split in enumerate(SPLITS):
            rng = np.random.default_rng([seed, level_index, split_index])
            extra_rng = np.random.default_rng([seed, level_index, split_index, 1])
            split_dir = folder / level / split
            (split_dir / "images").mkdir(parents=True)
            records = {"scenes": [], "match": [], "qa": [], "retrieval": []}
            for scene_id in range(sizes[level][split]):
                while True:
                    objects = random_scene(rng, level)
                    image = render_scene(objects)
                    digest = pixel_hash(image)
                    if digest not in seen:
                        seen.add(digest)
                        break
                name = f"images/{scene_id:05d}.png"
                if not cv2.imwrite(str(split_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 1]):  # False, not an exception
                    raise OSError(errno.EIO, "OpenCV could not write the image (disk full?)",
                                  str(split_dir / name))
                files[f"{level}/{split}/{name}"] = {"sha256": digest, "shape": list(image.shape)}
                base = {"image": name, "scene": scene_id}
                records["scenes"].append({**base, "objects": objects})
                # The scene's first match pair and first questions come from its stream,
                # the others from a second one: more records per scene change no image.
                pairs = [_match_pair(objects, stream, level) for stream in
                         (rng, *[extra_rng] * (MATCH_PAIRS_PER_SCENE[level] - 1))]
                for statement, false_statement, changed in pairs:
                    records["match"].append({**base, "text": statement_text(statement, language),
                                             "label": 1, "kind": statement["kind"],
                                             "changed": None})
                    records["match"].append({**base,
                                             "text": statement_text(false_statement, language),
                                             "label": 0, "kind": statement["kind"],
                                             "changed": changed})
                first = QA_FROM_SCENE_STREAM[level]
                questions = (_questions(objects, rng, level, first, language)
                             + _questions(objects, extra_rng, level, QA_PER_SCENE[level] - first,
                                          language))
                for kind, question, answer in questions:
                    records["qa"].append({**base, "text": question,
                                          "answer": answer_word(answer, language),
                                          "label": ANSWERS.index(answer), "kind": kind})
                records["retrieval"].append({**base,
                                             "text": retrieval_caption(objects, level, language),
                                             "label": scene_id})
                bar.update()
            for task in ("match", "qa"):  # true and false statements interleaved at random
                order = rng.permutation(len(records[task]))
                records[task] = [records[task][i] for i in order]
            for task, task_records in records.items():
                for record in task_records if task != "scenes" else ():
                    tokens = split_words(record["text"])
                    assert set(tokens) <= vocabulary and len(tokens) <= (
                        SEQUENCE_LENGTH if language == "en" else SEQUENCE_LENGTHS_ZH[level]), record
                path = split_dir / f"{task}.jsonl"
                _write_jsonl(path, task_records)
                files[f"{level}/{split}/{task}.jsonl"] = _file_entry(path, len(task_records))
    bar.close()
    vocab_path = folder / "vocab.json"
    if language == "en":  # as in data version 2, byte for byte
        vocab = {"tokens": ["", "[UNK]", *WORDS], "answers": list(ANSWERS),
                 "standardize": "lower_and_strip_punctuation", "split": "whitespace",
                 "sequence_length": SEQUENCE_LENGTH}
        content = json.dumps(vocab, indent=1)
    else:
        vocab = {"tokens": ["", "[UNK]", *WORDS_ZH], "answers": list(ANSWERS_ZH),
                 "standardize": STANDARDIZE, "split": "whitespace", "language": language,
                 "sequence_length": max(SEQUENCE_LENGTHS_ZH.values()),
                 "sequence_lengths": SEQUENCE_LENGTHS_ZH}
        content = json.dumps(vocab, indent=1, ensure_ascii=False)
    vocab_path.write_text(content + "\n", encoding="utf-8")
    files["vocab.json"] = _file_entry(vocab_path)
    return files


def _file_entry(path: Path, records: int | None = None) -> dict:
    entry = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if records is not None:
        entry["records"] = records
    return entry


# --- atomic generation, verification -------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path):
    """Hold an exclusive lock on root/.lock (one generation at a time per folder)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; generation stays atomic per process
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refuse_own_data(root: Path) -> None:
    """Never write the course data into a folder of the user's own data (issue 11)."""
    if (root / folders.CAPTIONS).is_file():
        raise DataError(f"{root} holds a {folders.CAPTIONS}: it is your own data, so the course "
                        f"dataset is not generated there. Train on it with `python -m mmcourse "
                        f"train --data-dir {root}`, or give the course data another folder")


def _remove_stale(root: Path) -> None:
    """Delete temporary folders that an interrupted generation left behind."""
    for stale in root.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(".previous-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _root(root) -> Path:
    return Path(root) if root is not None else DATA_DIR


def generate(root=None, seed: int = 0, progress: bool = True, sizes: dict | None = None,
             language: str = "en") -> Path:
    """Write both levels, all tasks and splits under ``root`` (default ``mmcourse.DATA_DIR``).

    Atomic: everything is built in ``root/.partial-*`` and then moved in, with
    ``manifest.json`` renamed in last; an interrupted run leaves the previous complete
    dataset, or no manifest (and ``ensure_data`` regenerates). ``sizes`` overrides the
    number of scenes, e.g. ``{"attributes": {"train": 20}}``. ``language="zh"`` writes the
    same scenes with Chinese texts (``manifest.json`` then says ``"language": "zh"``).
    Returns ``root``. Introduced in notebook 01.
    """
    _check_language(language)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    sizes = _sizes(sizes)  # before anything is created on disk
    root = _root(root)
    _refuse_own_data(root)
    with _locked(root):
        _generate_locked(root, int(seed), progress, sizes, language)
    return root


def _generate_locked(root: Path, seed: int, progress: bool, sizes: dict,
                     language: str = "en") -> None:
    _remove_stale(root)
    partial = root / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        files = _build(partial, seed, sizes, progress, language)
        manifest = {"version": DATA_VERSION, "seed": seed, "image_size": IMAGE_SIZE,
                    "sizes": sizes, "files": dict(sorted(files.items()))}
        if language != "en":  # the English manifest stays byte for byte as it was
            manifest = {"version": DATA_VERSION, "language": language, **manifest}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n",
                                               encoding="utf-8")
        _commit(root, partial)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        for stale in root.glob(".previous-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _commit(root: Path, partial: Path) -> None:
    """Move the finished tree from ``partial`` into ``root``.

    First the old manifest is retired (from then on the folder holds "no dataset"), then
    the old folders move aside and the new ones in, and last the new manifest is renamed
    in: the single step that publishes the data. If interrupted, the old files go back.
    """
    previous = root / f".previous-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    previous.mkdir()
    retired, placed = [], []
    try:
        for name in ("manifest.json", *_GENERATED):
            if (root / name).exists():
                os.replace(root / name, previous / name)
                retired.append(name)
        for name in _GENERATED:
            os.replace(partial / name, root / name)
            placed.append(name)
        os.replace(partial / "manifest.json", root / "manifest.json")
    except BaseException:  # Ctrl-C included: roll back, old manifest last
        for name in placed:
            os.replace(root / name, partial / name)
        for name in sorted(retired, key=lambda n: n == "manifest.json"):
            os.replace(previous / name, root / name)
        raise


def read_manifest(root=None) -> dict:
    """The parsed manifest.json of a dataset folder. Introduced in notebook 01."""
    path = _root(root) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8"))


def ensure_data(root=None) -> Path:
    """Generate the default datasets under ``root`` unless a current manifest is there.

    Notebooks and tests call this first. Returns ``root``. Introduced in notebook 01.
    """
    root = _root(root)
    if _is_current(root):  # no lock needed to read: works on a read-only data folder too
        return root
    _refuse_own_data(root)
    language = "zh" if root == DATA_DIR / "zh" else "en"
    with contextlib.suppress(OSError, ValueError, AttributeError):  # an older dataset's
        vocab = json.loads((root / "vocab.json").read_text(encoding="utf-8"))
        language = vocab.get("language", "en")
    with _locked(root):
        if not _is_current(root):  # another process may have generated it meanwhile
            _generate_locked(root, 0, True, _sizes(None), language)
    return root


def _is_current(root: Path) -> bool:
    try:
        return read_manifest(root).get("version") == DATA_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def read_image(path, size: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 (OpenCV reads BGR: converted here, once).

    With ``size``, resize to (size, size) (``cv2.INTER_AREA``). Raises ``DataError``
    naming the file when it is missing, cannot be decoded, is over the pixel limit or a
    corrupt JPEG; transparency is composited over white (``folders.decode_image``).
    Introduced in notebook 01.
    """
    return folders.read_image(path, size)


def verify(root=None) -> list[str]:
    """Re-hash every file against manifest.json; return the problems ([] when intact).

    Each problem names one file: ``missing: PATH``, ``extra: PATH``, ``altered: PATH``.
    Introduced in notebook 01.
    """
    root = _root(root)
    try:
        manifest = read_manifest(root)
        expected = manifest["files"]
    except FileNotFoundError:
        return [f"missing: manifest.json in {root} (run `python -m mmcourse data`)"]
    except (ValueError, KeyError, TypeError):
        return ["altered: manifest.json (not a valid manifest)"]
    problems = []
    for name, entry in expected.items():
        path = root / name
        if not path.is_file():
            problems.append(f"missing: {name}")
            continue
        if "shape" in entry:
            try:
                digest = pixel_hash(read_image(path))
            except DataError:
                digest = None
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.get("sha256"):
            problems.append(f"altered: {name}")
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        top = name.split("/")[0]
        if top in _KEEP or top.startswith(".") or path.is_dir() or name in expected:
            continue
        problems.append(f"extra: {name}")
    return problems


# --- loading ------------------------------------------------------------------------------


def _check_names(task: str, level: str, split: str) -> None:
    if task not in (*TASKS, "scenes"):
        raise ValueError(f"task must be one of {TASKS} (or 'scenes'), got {task!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_records(task: str, level: str, split: str, root=None) -> list[dict]:
    """The JSONL records of one task, level and split. ``image`` is relative to the JSONL
    file's folder. Introduced in notebook 01."""
    _check_names(task, level, split)
    path = _root(root) / level / split / f"{task}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mmcourse data` or "
                                f"mmcourse.data.scenes.ensure_data()")
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def load_arrays(task: str, level: str, split: str, root=None):
    """(images uint8 (N, 64, 64, 3) RGB, texts, labels) of one task, level and split.

    Labels: match float32 0/1; qa int32 index into ``ANSWERS`` (``text.answer_vocabulary``);
    retrieval int32 pair ids. Introduced in notebook 01.
    """
    records = load_records(task, level, split, root)
    folder = _root(root) / level / split
    cache = {}
    images = np.empty((len(records), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for index, record in enumerate(records):
        name = record["image"]
        if name not in cache:
            cache[name] = read_image(folder / name, IMAGE_SIZE)
        images[index] = cache[name]
    texts = [record["text"] for record in records]
    dtype = np.float32 if task == "match" else np.int32
    labels = np.array([record["label"] for record in records], dtype=dtype)
    return images, texts, labels


# --- bring your own data ------------------------------------------------------------------

FOLDER_COLUMNS = ("image", "text")


def load_folder(folder, size: int = IMAGE_SIZE):
    """Read a folder of images plus ``captions.csv`` (columns image,text and optional label).

    Returns (images uint8 (N, size, size, 3) RGB, texts, labels): labels float32 0/1 from
    the ``label`` (or ``labels``) column, or int32 pair ids 0..N-1 when there is none (every
    row a true pair, as in retrieval). All problems are found first and raised as one
    ``DataError`` naming the file, line and column of each (``mmcourse.data.folders``).
    Introduced in notebook 01.
    """
    return folders.load_folder(folder, size)
