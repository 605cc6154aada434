"""The Chinese grammar of the course data (``data --language zh``, notebook 09): the words of
colours, shapes, sizes, numbers and relations, the qa answers index for index with the
English ones, the question templates of both languages and the Han characters used.
"""

from __future__ import annotations

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
QUESTION_TEMPLATES = {
    "en": {"attribute": "what {0} is the object", "shape": "what shape is the {0} object",
           "side": "is the {0} object on the left or right",
           "height": "is the {0} object at the top or bottom",
           "relational": "what {2} is the object {1} the {0} object",
           "count": "how many {0} are there"},
    "zh": {"attribute": "这个物体是什么{0}", "shape": "{0}物体是什么形状",
           "side": "{0}物体在左边还是右边", "height": "{0}物体在上面还是下面",
           "relational": "离{0}物体{1}的物体是什么{2}", "count": "有几个{0}"},
}
ATTRIBUTE_ZH = {"colour": "颜色", "shape": "形状", "size": "大小"}


def check_language(language: str) -> None:
    """A ``ValueError`` unless ``language`` is one of ``LANGUAGES``. Notebook 09."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
