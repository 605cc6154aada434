"""The tiny PaliGemma's tokenizer, trained on the course's captions (notebook 11).

``caption_corpus`` reads the course's captions, English and Chinese; ``train_sentencepiece``
trains a SentencePiece BPE model on them in memory (Chinese words marked by
``mark_chinese_words``, since Chinese has no spaces), and ``train_tokenizer`` wraps it as a
``PaliGemmaTokenizer`` with Gemma's special tokens (``hub.presets.SPECIAL_PIECES``). The
models and preset folders are ``mmcourse.hub.presets``.
"""

from __future__ import annotations

import io
import re

from mmcourse.data import grammar_zh, store
from mmcourse.data import scenes as data
from mmcourse.hub.presets import PROMPTS


def caption_corpus(level: str = "attributes", split: str = "train", root=None) -> list[str]:
    """The course's captions of ``level`` and ``split``: the English retrieval captions, then
    the same scenes' Chinese captions (``data.retrieval_caption(..., "zh")``). Notebook 11."""
    root = store.ensure_data(root)
    english = [r["text"] for r in data.load_records("retrieval", level, split, root=root)]
    chinese = [data.retrieval_caption(s["objects"], level, "zh")
               for s in data.load_records("scenes", level, split, root=root)]
    return english + chinese


#: Marks word boundaries in Chinese training text; pieces never cross it.
WORD_BOUNDARY = "|"
_ZH_WORDS = sorted({"一个", "从左到右", *grammar_zh.SIZES_ZH.values(), *grammar_zh.COLOURS_ZH.values(),
                    *grammar_zh.SHAPES_ZH.values()}, key=len, reverse=True)
_ZH_WORD = re.compile("|".join(map(re.escape, _ZH_WORDS)) + "|.")
HAN_CHARACTER = re.compile(r"[\u4e00-\u9fff]")


def mark_chinese_words(text: str) -> str:
    """``text`` with ``WORD_BOUNDARY`` between the words of the course's Chinese grammar
    ("一个|小的|红色|圆形"; other characters alone); English text unchanged. Chinese has no
    spaces, so without this BPE would merge whole frequent captions into one piece.
    Only the training text is marked: encoding needs no marks. Notebook 11."""
    if not HAN_CHARACTER.search(text):
        return text
    return WORD_BOUNDARY.join(_ZH_WORD.findall(text))


def train_sentencepiece(texts, vocabulary_size: int = 192, model_type: str = "bpe") -> bytes:
    """A SentencePiece model (``model_type`` "bpe" or "unigram") trained in memory on
    ``texts``, as the serialized proto. Every character of the texts is kept (Chinese
    included; its words marked by ``mark_chinese_words``), and the ids of ``SPECIAL_PIECES``
    are Gemma's. Deterministic. Notebook 11."""
    import sentencepiece  # noqa: PLC0415

    texts = [str(t) for t in texts]
    if not texts or not all(t.strip() for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    if model_type not in ("bpe", "unigram"):
        raise ValueError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
    if isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, int) \
            or vocabulary_size < 8:
        raise ValueError(f"vocabulary_size must be an int >= 8, got {vocabulary_size!r}")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(mark_chinese_words(t) for t in texts), model_writer=model,
        pretokenization_delimiter=WORD_BOUNDARY, vocab_size=vocabulary_size,
        model_type=model_type, character_coverage=1.0, num_threads=1,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", minloglevel=2)
    return model.getvalue()


def train_tokenizer(texts=None, vocabulary_size: int = 192, model_type: str = "bpe"):
    """A ``keras_hub.models.PaliGemmaTokenizer`` on ``train_sentencepiece(texts)``; by
    default on ``caption_corpus()`` of both levels' training captions and the ``PROMPTS``.
    Notebook 11."""
    import keras_hub  # noqa: PLC0415

    if texts is None:
        texts = caption_corpus("attributes") + caption_corpus("relations") + \
            list(PROMPTS.values())
    proto = train_sentencepiece(texts, vocabulary_size, model_type)
    return keras_hub.models.PaliGemmaTokenizer(proto=proto)
