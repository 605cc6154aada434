"""Judging captions by their meaning (notebook 08): ``caption_statements`` parses a caption
back into statements of the course grammar (``mmcourse.data.statements``), ``caption_is_true``
checks them against a scene, and ``correct_statements`` scores a list of generated captions,
so a caption counts when it is true, whatever its wording. No model here: the captioners of
``mmcourse.vlm`` and KerasHub's (``mmcourse.train.hub``) are scored with it.
"""

from __future__ import annotations

import numpy as np

from mmcourse.data import draw, text
from mmcourse.data import statements as grammar

_ORDERS = {"left to right": "left of", "right to left": "right of",
           "top to bottom": "above", "bottom to top": "below"}
_ARTICLES = (("there", "is", "a"), ("a",), ("the",), ())


def caption_statements(caption: str) -> list[dict]:
    """The statements (``mmcourse.data.statements``'s dicts) a caption makes; ValueError if it is not
    in the grammar. Accepted, after ``text.split_words`` (case and punctuation ignored):

    - a statement of the match grammar (``grammar.parse_statement``);
    - an object's size, colour and shape in any order, after "a", "the", "there is a" or
      nothing ("a red small circle"): an attribute statement;
    - "left to right: c1 s1, c2 s2, ..." (``grammar.retrieval_caption``), or right to left,
      top to bottom, bottom to top: the count of objects plus one spatial statement per
      neighbouring pair, so the listing must name exactly the scene's objects in order.

    Introduced in notebook 08."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    words = text.split_words(caption)
    sentence = " ".join(words)
    try:
        return [grammar.parse_statement(sentence)]
    except ValueError:
        pass
    for order, relation in _ORDERS.items():
        if sentence.startswith(order + " "):
            rest = words[len(order.split()):]
            pairs = [rest[i:i + 2] for i in range(0, len(rest), 2)]
            if len(rest) % 2 or len(pairs) > len(grammar.NUMBER_WORDS) - 1 or not all(
                    c in draw.COLOURS and s in draw.SHAPES for c, s in pairs):
                break
            names = [{"colour": c, "shape": s} for c, s in pairs]
            return [{"kind": "count", "number": len(names)}] + [
                {"kind": "spatial", "a": a, "relation": relation, "b": b}
                for a, b in zip(names, names[1:], strict=False)]
    for article in _ARTICLES:
        if tuple(words[:len(article)]) == article and len(words) == len(article) + 3:
            rest = words[len(article):]
            sizes = [w for w in rest if w in draw.SIZES]
            colours = [w for w in rest if w in draw.COLOURS]
            shapes = [w for w in rest if w in draw.SHAPES]
            if len(sizes) == len(colours) == len(shapes) == 1:
                return [{"kind": "attribute", "size": sizes[0], "colour": colours[0],
                         "shape": shapes[0]}]
    raise ValueError(f"caption {caption!r} is not a statement of the course grammar")


def caption_is_true(caption: str, objects) -> bool:
    """Whether a caption parses (``caption_statements``) and every statement it makes holds
    in the scene's ``objects`` (``grammar.is_true``). Introduced in notebook 08."""
    try:
        statements = caption_statements(caption)
    except ValueError:
        return False
    return all(grammar.is_true(statement, objects) for statement in statements)


def correct_statements(captions, scenes) -> float:
    """The fraction of ``captions`` that are true of their scene (``caption_is_true``):
    scenes are records of ``scenes.load_records("scenes", ...)`` (or lists of objects), one
    per caption. A caption outside the grammar counts as wrong. Introduced in notebook 08.
    """
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings, got one str: wrap it as [text]")
    captions, scenes = list(captions), list(scenes)
    if not captions or len(captions) != len(scenes):
        raise ValueError(f"captions and scenes must be non-empty and of the same length, got "
                         f"{len(captions)} and {len(scenes)}")
    objects = [scene["objects"] if isinstance(scene, dict) else scene for scene in scenes]
    return float(np.mean([caption_is_true(c, o) for c, o in zip(captions, objects,
                                                                  strict=True)]))

