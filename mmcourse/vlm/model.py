"""Building the toy multimodal language model (notebook 08): ``build_decoder`` (a GPT-style
causal language model), ``build_projector`` (LLaVA's MLP), ``vision_tokens`` (the frozen
tokens of notebook 07's CLIP image encoder) and ``build_vlm``, which joins them as LLaVA
(a prefix of visual tokens) or Flamingo (gated cross-attention before every block);
``on_vision_tokens`` gives the same model on vision tokens computed once per image.
"""

from __future__ import annotations

import keras

from mmcourse.configs import positive_int
from mmcourse.names import CAPTION_ARCHS
from mmcourse.vlm.layers import (
    DecoderBlock,
    DecoderEmbedding,
    DropPrefix,
    GatedCrossAttention,
    GridCoordinates,
)

#: The decoder of ``build_decoder`` unless told otherwise.
DECODER_DEFAULTS = {"width": 64, "depth": 2, "num_heads": 4, "key_dim": 16,
                    "hidden_units": 128}
#: Text positions of ``build_decoder``: "[START]", a question and its answer, "[END]".
DECODER_MAX_LENGTH = 24
ARCHS = CAPTION_ARCHS


def check_arch(arch) -> None:
    """A ``ValueError`` unless ``arch`` is one of ``ARCHS``. Notebook 08."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def _decoder_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(DECODER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(DECODER_DEFAULTS)}")
    options = {**DECODER_DEFAULTS, **options}
    for name, value in options.items():
        positive_int(name, value)
    return options


def build_decoder(vocabulary_size: int, max_length: int = DECODER_MAX_LENGTH, **options):
    """A GPT-style language model: token ids (batch, L), L <= ``max_length`` -> logits
    (batch, L, vocabulary_size), position t predicting token t + 1. Layers: "embedding",
    "block1".."blockN", "final_norm", "logits". ``options`` override ``DECODER_DEFAULTS``
    (width, depth, num_heads, key_dim, hidden_units). Introduced in notebook 08."""
    vocabulary_size = positive_int("vocabulary_size", vocabulary_size)
    if vocabulary_size < 5:
        raise ValueError(f"vocabulary_size must be >= 5 (padding, [UNK], a word, [START], "
                         f"[END]), got {vocabulary_size}")
    options = _decoder_options(options)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    hidden = DecoderEmbedding(vocabulary_size, max_length, options["width"],
                              name="embedding")(token_ids)
    for index in range(options["depth"]):
        hidden = DecoderBlock(options["num_heads"], options["key_dim"],
                              options["hidden_units"], name=f"block{index + 1}")(hidden)
    hidden = keras.layers.LayerNormalization(name="final_norm")(hidden)
    logits = keras.layers.Dense(vocabulary_size, name="logits")(hidden)
    return keras.Model(token_ids, logits, name="decoder")


def build_projector(input_width: int = 64, width: int = 64, hidden_units: int = 128,
                    name: str = "projector"):
    """LLaVA-1.5's projector: an MLP applied to every vision token, (batch, N, input_width)
    -> (batch, N, width): Dense(hidden_units, gelu), Dense(width). Introduced in notebook 08.
    """
    input_width = positive_int("input_width", input_width)
    width = positive_int("width", width)
    hidden_units = positive_int("hidden_units", hidden_units)
    tokens = keras.Input((None, input_width), name="vision_tokens")
    hidden = keras.layers.Dense(hidden_units, activation="gelu", name="hidden")(tokens)
    return keras.Model(tokens, keras.layers.Dense(width, name="out")(hidden), name=name)


def vision_tokens(model, layer: str = "vit_norm", coordinates: bool = False):
    """The frozen token sequence of a CLIP image encoder (``mmcourse.clip``), before
    pooling: images (batch, 64, 64, 3) in [0, 1] -> (batch, 65, 64), the output of its
    layer ``layer``; with ``coordinates`` each token also carries where its patch is
    (``GridCoordinates``). ``model`` is a CLIP model or its "image_encoder". The returned
    model, named "vision", has ``trainable=False``. Introduced in notebook 08."""
    names = {sub.name for sub in getattr(model, "layers", [])}
    encoder = model.get_layer("image_encoder") if "image_encoder" in names else model
    if layer not in {sub.name for sub in getattr(encoder, "layers", [])}:
        raise ValueError(f"model must be a CLIP model or image encoder with a layer "
                         f"{layer!r}, got {getattr(model, 'name', type(model).__name__)!r}")
    tokens = encoder.get_layer(layer).output
    if coordinates:
        tokens = GridCoordinates(name="coordinates")(tokens)
    vision = keras.Model(encoder.input, tokens, name="vision")
    vision.trainable = False
    return vision


def build_vlm(decoder, vision, arch: str = "llava", projector=None):
    """A vision-language model on ``decoder``'s own layers (shared, not copied):
    ``[images, token_ids]`` -> logits (batch, L, vocabulary_size) of the text positions.

    ``vision`` (``vision_tokens``) maps images (batch, H, W, 3) in [0, 1] to tokens, and
    ``projector`` (default ``build_projector``) maps those to the decoder's width. With
    ``arch="llava"`` the projected tokens are a prefix before the text; with
    ``arch="flamingo"`` a ``GatedCrossAttention`` ("gated_cross1".."gated_crossN") before
    every decoder block lets the text attend to them. Introduced in notebook 08.
    """
    check_arch(arch)
    parts = model_parts(decoder)
    if parts["vision"] is not None:
        raise ValueError("decoder must be a text decoder (build_decoder), got a model with "
                         "a vision encoder")
    if len(vision.outputs[0].shape) != 3:
        raise ValueError(f"vision must output tokens (batch, N, d), got "
                         f"{vision.outputs[0].shape}")
    width = parts["embedding"].width
    if projector is None:
        projector = build_projector(vision.outputs[0].shape[-1], width)
    images = keras.Input(vision.inputs[0].shape[1:], name="images")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    llava = arch == "llava"
    cross = [None if llava else GatedCrossAttention(block.num_heads, block.key_dim,
                                                    name=f"gated_cross{index + 1}")
             for index, block in enumerate(parts["blocks"])]
    logits = _connect(parts, projector(vision(images)), token_ids, cross,
                      keras.layers.Concatenate(axis=1, name="prefix") if llava else None,
                      DropPrefix(name="drop_prefix") if llava else None)
    return keras.Model([images, token_ids], logits, name=arch)


def _connect(parts, visual, token_ids, cross, prefix, drop_prefix):
    """The text side of a VLM on symbolic tensors: logits of the text positions."""
    hidden = parts["embedding"](token_ids)
    if prefix is not None:
        hidden = prefix([visual, hidden])
    for block, gate in zip(parts["blocks"], cross, strict=True):
        if gate is not None:
            hidden = gate(hidden, visual)
        hidden = block(hidden)
    if drop_prefix is not None:
        hidden = drop_prefix(hidden, visual)
    return parts["head"](parts["norm"](hidden))


def on_vision_tokens(model):
    """The layers of a ``build_vlm`` model after its frozen vision encoder, shared, not
    copied: ``[vision_tokens (batch, N, d), token_ids]`` -> the same logits. Training it
    on vision tokens computed once per image trains ``model`` without running the frozen
    encoder at every step. Introduced in notebook 08."""
    parts = model_parts(model)
    if parts["vision"] is None:
        raise ValueError("model must be a vision-language model (build_vlm), got a text "
                         "decoder")
    tokens = keras.Input(parts["vision"].outputs[0].shape[1:], name="vision_tokens")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    llava = parts["prefix"]
    logits = _connect(parts, parts["projector"](tokens), token_ids, parts["cross"],
                      model.get_layer("prefix") if llava else None,
                      model.get_layer("drop_prefix") if llava else None)
    return keras.Model([tokens, token_ids], logits, name=f"{model.name}_on_tokens")


def _layer(model, name):
    names = {layer.name for layer in model.layers}
    return model.get_layer(name) if name in names else None


def model_parts(model) -> dict:
    """The named layers of a ``build_decoder`` or ``build_vlm`` model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    parts = {"embedding": _layer(model, "embedding"), "norm": _layer(model, "final_norm"),
             "head": _layer(model, "logits"), "vision": _layer(model, "vision"),
             "projector": _layer(model, "projector"),
             "prefix": _layer(model, "prefix") is not None, "blocks": [], "cross": []}
    while (block := _layer(model, f"block{len(parts['blocks']) + 1}")) is not None:
        parts["blocks"].append(block)
        parts["cross"].append(_layer(model, f"gated_cross{len(parts['blocks'])}"))
    if None in (parts["embedding"], parts["norm"], parts["head"]) or not parts["blocks"]:
        raise ValueError(f"model must be built by build_decoder or build_vlm (layers "
                         f"'embedding', 'block1', 'final_norm', 'logits'), got {model.name!r}")
    return parts

