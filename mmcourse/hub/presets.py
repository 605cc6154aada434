"""Tiny KerasHub models of real families, made offline, and their preset folders (notebook 11).

- ``caption_corpus`` and ``train_tokenizer``: a SentencePiece BPE model trained in memory on
  the course's captions, English and Chinese, wrapped as a ``PaliGemmaTokenizer`` with
  Gemma's special tokens (``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3).
- ``tiny_paligemma``: a ``PaliGemmaCausalLM`` (SigLIP-style ViT, linear projector, Gemma
  decoder) built from config, with its preprocessor; ``tiny_clip``: a ``CLIPBackbone``.
- ``clip_tokenizer`` and ``tiny_clip_preprocessor``: a ``CLIPTokenizer`` whose vocabulary
  and merges are built in memory, and the ``CLIPPreprocessor`` around it (notebook 12).
- ``save_preset`` / ``load_preset``: a local preset folder (``config.json``, weights,
  tokenizer assets), written atomically. A folder named like a built-in preset is refused,
  because KerasHub resolves built-in names first, over the network; loading a built-in name
  offline fails fast with a ``ConnectionError`` that says what to do.

KerasHub is imported inside the functions, so ``import mmcourse`` stays light.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mmcourse.data import grammar_zh, statements, store
from mmcourse.data import scenes as data

#: The tokenizer's special tokens, as Gemma numbers them.
SPECIAL_PIECES = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
#: The tiny PaliGemma unless told otherwise: 16 image tokens (64 / 16) squared.
PALIGEMMA_DEFAULTS = dict(image_size=64, num_layers=2, num_query_heads=4,
                          num_key_value_heads=1, hidden_dim=64, intermediate_dim=256,
                          head_dim=16, vit_patch_size=16, vit_num_heads=2, vit_hidden_dim=64,
                          vit_num_layers=2, vit_intermediate_dim=128)
#: The tiny CLIP unless told otherwise.
CLIP_DEFAULTS = dict(image_size=64, patch_size=8, hidden_dim=64, num_layers=2, num_heads=4,
                     intermediate_dim=128, projection_dim=64, max_sequence_length=16,
                     image_channels=3)
#: Real presets a learner with a network can load instead (``load_preset``), with their
#: parameter counts from KerasHub's preset metadata; the download is about 4 bytes per
#: parameter in float32 (CLIP) and 2 in bfloat16 (PaliGemma).
REAL_PRESETS = {
    "clip_vit_base_patch32": {"class": "CLIPBackbone", "params": 151_277_363,
                              "download": "about 0.6 GB"},
    "pali_gemma_3b_mix_224": {"class": "PaliGemmaCausalLM", "params": 2_923_335_408,
                              "download": "about 5.9 GB"},
}


def caption_corpus(level: str = "attributes", split: str = "train", root=None) -> list[str]:
    """The course's captions of ``level`` and ``split``: the English retrieval captions, then
    the same scenes' Chinese captions (``statements.retrieval_caption(..., "zh")``). Notebook 11."""
    root = store.ensure_data(root)
    english = [r["text"] for r in data.load_records("retrieval", level, split, root=root)]
    chinese = [statements.retrieval_caption(s["objects"], level, "zh")
               for s in data.load_records("scenes", level, split, root=root)]
    return english + chinese


#: The task prompts of the tiny PaliGemma (PaliGemma's own style: a task word, a language).
PROMPTS = {"en": "caption en\n", "zh": "caption zh\n"}
#: Marks word boundaries in Chinese training text; pieces never cross it.
WORD_BOUNDARY = "|"
_ZH_WORDS = sorted({"一个", "从左到右", *grammar_zh.SIZES_ZH.values(),
                    *grammar_zh.COLOURS_ZH.values(), *grammar_zh.SHAPES_ZH.values()},
                   key=len, reverse=True)
_ZH_WORD = re.compile("|".join(map(re.escape, _ZH_WORDS)) + "|.")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def mark_chinese_words(text: str) -> str:
    """``text`` with ``WORD_BOUNDARY`` between the words of the course's Chinese grammar
    ("一个|小的|红色|圆形"; other characters alone); English text unchanged. Chinese has no
    spaces, so without this BPE would merge whole frequent captions into one piece.
    Only the training text is marked: encoding needs no marks. Notebook 11."""
    if not _HAN.search(text):
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


def _check_options(options: dict, defaults: dict, what: str) -> dict:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; expected some of "
                         f"{sorted(defaults)}")
    return {**defaults, **options}


def tiny_paligemma(tokenizer, sequence_length: int = 24, seed: int = 0, **options):
    """A ``keras_hub.models.PaliGemmaCausalLM`` built from config (``PALIGEMMA_DEFAULTS``,
    overridden by ``options``) with a preprocessor that scales uint8 images to [-1, 1] and
    packs ``"<bos>" + prompt`` and ``response + "<eos>"`` into ``sequence_length`` tokens.
    Its vocabulary is the tokenizer's. Notebook 11."""
    import keras  # noqa: PLC0415
    import keras_hub  # noqa: PLC0415

    config = _check_options(options, PALIGEMMA_DEFAULTS, "tiny_paligemma")
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.PaliGemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), **config)
    size = config["image_size"]
    converter = keras_hub.layers.PaliGemmaImageConverter(
        image_size=(size, size), scale=1 / 127.5, offset=-1.0)
    preprocessor = keras_hub.models.PaliGemmaCausalLMPreprocessor(
        tokenizer=tokenizer, image_converter=converter, sequence_length=sequence_length)
    return keras_hub.models.PaliGemmaCausalLM(backbone=backbone, preprocessor=preprocessor)


def fix_clip_position_ids(backbone) -> None:
    """Number the vision positions 0, 1, ... KerasHub's ``CLIPVisionEmbedding`` keeps them
    in a weight that starts at zeros (a checkpoint fills it), so a CLIP built from config
    would give every patch position 0 and could not tell where a patch is. Notebook 11."""
    position_ids = backbone.vision_encoder.embedding.position_ids
    position_ids.assign(np.arange(position_ids.shape[1])[None].astype(position_ids.dtype))


def tiny_clip(vocabulary_size: int, seed: int = 0, **options):
    """A ``keras_hub.models.CLIPBackbone`` built from config (``CLIP_DEFAULTS``, overridden
    by ``options``; ``image_channels`` other than 3 takes feature maps, e.g. a conv stem's),
    its vision positions numbered (``fix_clip_position_ids``). Notebook 11.
    """
    import keras  # noqa: PLC0415
    import keras_hub  # noqa: PLC0415

    config = _check_options(options, CLIP_DEFAULTS, "tiny_clip")
    keras.utils.set_random_seed(seed)
    size = config["image_size"]
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=config["patch_size"], hidden_dim=config["hidden_dim"],
        num_layers=config["num_layers"], num_heads=config["num_heads"],
        intermediate_dim=config["intermediate_dim"],
        image_shape=(size, size, config["image_channels"]))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=vocabulary_size, embedding_dim=config["hidden_dim"],
        hidden_dim=config["hidden_dim"], num_layers=config["num_layers"],
        num_heads=config["num_heads"], intermediate_dim=config["intermediate_dim"],
        max_sequence_length=config["max_sequence_length"])
    backbone = keras_hub.models.CLIPBackbone(vision, text,
                                             projection_dim=config["projection_dim"])
    fix_clip_position_ids(backbone)
    return backbone


#: CLIP's special tokens; the end token has the largest id (CLIP's text pooler reads the
#: output at the largest id of a sequence).
CLIP_SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def clip_tokenizer(words):
    """A ``keras_hub.models.CLIPTokenizer`` made in memory, in the layout of OpenAI's CLIP
    vocabulary: the 256 byte symbols of byte-level BPE, then each of them ending a word
    (``</w>``), so that any text can be tokenized; then the merges that HuggingFace
    ``tokenizers``' ``BpeTrainer`` learns on ``words`` until each of them is one token; the
    start and end tokens last. Deterministic. Notebook 12."""
    import keras_hub  # noqa: PLC0415
    import tokenizers  # noqa: PLC0415
    from tokenizers import models, pre_tokenizers, trainers  # noqa: PLC0415

    words = sorted({str(w).lower() for w in words})
    if not words or not all(re.fullmatch(r"[^\W\d_]+", w) for w in words):
        raise ValueError("words must be a non-empty list of words made of letters only, got "
                         f"{words[:5]}")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    bpe = tokenizers.Tokenizer(models.BPE(end_of_word_suffix="</w>",
                                          continuing_subword_prefix=""))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                          use_regex=False)])
    bpe.train_from_iterator(words, trainers.BpeTrainer(
        vocab_size=1_000_000, min_frequency=1, show_progress=False, initial_alphabet=alphabet,
        end_of_word_suffix="</w>", continuing_subword_prefix=""))
    merges = [m if isinstance(m, str) else " ".join(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    merged = list(dict.fromkeys(m.replace(" ", "") for m in merges))
    tokens = alphabet + [a + "</w>" for a in alphabet] + merged + list(CLIP_SPECIAL_TOKENS)
    tokenizer = keras_hub.models.CLIPTokenizer(
        vocabulary={token: index for index, token in enumerate(tokens)}, merges=merges)
    split = [w for w in words if len(np.asarray(tokenizer.tokenize(w))) != 1]
    if split:  # BPE applies the learned merges in order, so this cannot happen
        raise AssertionError(f"words not kept whole: {split}")
    return tokenizer


def tiny_clip_preprocessor(tokenizer, image_size: int = CLIP_DEFAULTS["image_size"],
                           sequence_length: int = CLIP_DEFAULTS["max_sequence_length"]):
    """A ``keras_hub.models.CLIPPreprocessor`` for a tiny CLIP: ``tokenizer``, a
    ``CLIPImageConverter`` that resizes to ``image_size`` and scales uint8 pixels to
    [-1, 1], and prompts packed as start, tokens, end into ``sequence_length`` ids (the text
    encoder's ``max_sequence_length``). Notebook 12."""
    import keras_hub  # noqa: PLC0415

    converter = keras_hub.layers.CLIPImageConverter(image_size=(image_size, image_size),
                                                    scale=1 / 127.5, offset=-1.0)
    return keras_hub.models.CLIPPreprocessor(tokenizer, converter,
                                             sequence_length=sequence_length)


def builtin_preset_names() -> set[str]:
    """Every preset name KerasHub resolves itself (and downloads): ``keras_hub.presets``."""
    import keras_hub  # noqa: PLC0415

    names = set()
    for cls in (keras_hub.models.Backbone, keras_hub.models.Task, keras_hub.tokenizers.Tokenizer):
        for sub in _subclasses(cls):
            names.update(getattr(sub, "presets", {}) or {})
    return names


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def save_preset(model, folder, preprocessor=None) -> Path:
    """Save ``model`` (a KerasHub backbone or task) as a preset folder, atomically: into a
    temporary folder beside it, renamed into place only when complete, so an interrupted
    save leaves the old folder or none. ``preprocessor`` is saved with a backbone that has
    no task (CLIP). A folder named like a built-in preset is refused (``from_preset``
    would download the built-in instead). Returns the folder. Notebook 11.
    """
    folder = Path(folder)
    if folder.name in builtin_preset_names():
        raise ValueError(f"folder {str(folder)!r} is named like KerasHub's built-in preset "
                         f"{folder.name!r}, which from_preset resolves first (over the "
                         "network); choose another name, e.g. 'tiny_" + folder.name + "'")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_to_preset(str(partial))
        if preprocessor is not None:
            preprocessor.save_to_preset(str(partial))
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o777 & ~umask)  # mkdtemp made it private; a preset is shared
        os.replace(partial, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def load_preset(cls, preset):
    """``cls.from_preset(preset)`` for a local preset folder or a built-in name, with clear
    errors: a missing folder is a ``FileNotFoundError``, a built-in name without a network a
    ``ConnectionError`` that names the download and the mirrors. ``cls`` is a KerasHub class
    such as ``keras_hub.models.PaliGemmaCausalLM``. Notebook 11."""
    preset = str(preset)
    path = Path(preset)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"preset folder {preset!r} has no config.json: is it a "
                                    "folder written by save_preset?")
        return cls.from_preset(str(path))
    if "://" not in preset and preset not in builtin_preset_names():
        raise FileNotFoundError(f"preset {preset!r} is neither a local preset folder nor a "
                                "KerasHub built-in name (see keras_hub.models."
                                f"{cls.__name__}.presets)")
    try:
        return cls.from_preset(preset)
    except (OSError, ImportError) as error:  # requests' ConnectionError is an OSError
        size = REAL_PRESETS.get(preset, {}).get("download", "a download")
        raise ConnectionError(
            f"preset {preset!r} must be downloaded ({size}) and that failed: "
            f"{type(error).__name__}. Connect to the network (and accept the model's licence "
            "on Kaggle for Gemma-family presets), or from mainland China use a mirror: "
            f"'modelscope://' presets (pip install modelscope) or 'hf://' presets with "
            "HF_ENDPOINT=https://hf-mirror.com. This course's own tiny presets need no "
            "network.") from None
