"""Statements about a scene, their text and their truth (notebook 01; Chinese, notebook 09).

A statement is a dict (``kind`` attribute, spatial, distance or count); ``statement_text``
writes it in English or Chinese, ``parse_statement`` reads the English back and ``is_true``
judges it against a scene's objects. The generator's draws live here too: a true statement,
its false twin that changes exactly one part, the questions and the retrieval caption.
"""

from __future__ import annotations

import json
import re

import numpy as np

from mmcourse.data.draw import COLOURS, IMAGE_SIZE, SHAPES, SIZES
from mmcourse.data.grammar_zh import (
    ANSWERS_ZH,
    ATTRIBUTE_ZH,
    COLOURS_ZH,
    NUMBER_WORDS_ZH,
    QUESTION_TEMPLATES,
    RELATIONS_ZH,
    SHAPES_ZH,
    SIZES_ZH,
    check_language,
)

#: Relations level: the clear margins.
MARGIN = 8  # centres differ by at least this in x and in y
DISTANCE_MARGIN = 5  # nearest/furthest is stated only when the runner-up is this much further/closer
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}

#: Every word the grammar uses, in a fixed order: vocab.json lists them after "" and "[UNK]".
WORDS = (
    "a", "the", "is", "are", "there", "of", "to", "from", "on", "at", "or", "it",
    *COLOURS, *SHAPES, *PLURALS.values(), *SIZES,
    "left", "right", "above", "below", "top", "bottom", "nearest", "furthest",
    *NUMBER_WORDS, "object", "objects", "what", "colour", "shape", "size", "how", "many",
)
#: QA answers; the qa label is the index into this list.
ANSWERS = (*SHAPES, *COLOURS, *SIZES, "left", "right", "top", "bottom", *NUMBER_WORDS)


def answer_word(answer: str, language: str = "en") -> str:
    """A qa answer (English, as in ``ANSWERS``) in ``language``. Introduced in notebook 09."""
    check_language(language)
    return answer if language == "en" else ANSWERS_ZH[ANSWERS.index(answer)]


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
    check_language(language)
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


def centre_distance(a: dict, b: dict) -> float:
    """The distance between two objects' centres, in pixels. Notebook 01."""
    return float(np.hypot(a["x"] - b["x"], a["y"] - b["y"]))


def _ranked_others(objects, anchor):
    """Other objects sorted by distance from ``anchor``, with the distances."""
    others = [o for o in objects if o is not anchor]
    distances = [centre_distance(anchor, o) for o in others]
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


def match_pair(objects, rng, level: str) -> tuple[dict, dict, str]:
    """A true statement, its false twin and what the twin changed."""
    statement = _true_statement(objects, rng, level)
    return (statement, *_false_statement(statement, objects, rng))


def _other(values, current, rng):
    choices = [v for v in values if v != current]
    return choices[rng.integers(len(choices))]


def draw_questions(objects, rng, level: str, count: int,
                   language: str = "en") -> list[tuple[str, str, str]]:
    """Draw ``count`` (kind, question, answer) triples about the scene; the question in
    ``language``, the answer in English (``answer_word`` translates it)."""
    zh = language == "zh"
    templates = QUESTION_TEMPLATES[language]
    if level == "attributes":
        obj = objects[0]
        kinds = ("colour", "shape", "size")
        chosen = rng.choice(3, size=count, replace=False)
        return [(kinds[k], templates["attribute"].format(ATTRIBUTE_ZH[kinds[k]] if zh
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
                        words = ((RELATIONS_ZH[which], ATTRIBUTE_ZH[attribute]) if zh
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
    check_language(language)
    if language == "zh":
        if level == "attributes":
            return statement_text({"kind": "attribute", **objects[0]}, "zh")
        return "从左到右：" + "，".join(_name_zh(o) for o in sorted(objects, key=lambda o: o["x"]))
    if level == "attributes":
        obj = objects[0]
        return f"a {obj['size']} {obj['colour']} {obj['shape']}"
    names = [_name(o) for o in sorted(objects, key=lambda o: o["x"])]
    return "left to right: " + ", ".join(names)
