"""A multimodal language model at toy scale: a GPT-style decoder, a LLaVA-style prefix of
visual tokens, Flamingo's gated cross-attention and fast decoding (notebook 08).

- ``build_decoder``: a causal transformer language model. Token and position embeddings
  (``DecoderEmbedding``), pre-norm blocks of causal self-attention and a feed-forward
  network (``DecoderBlock``, on ``keras.layers.MultiHeadAttention(use_causal_mask=True)``),
  a final LayerNorm and an untied projection to the vocabulary: position t predicts token
  t + 1 and sees only tokens 0..t.
- ``build_vlm(decoder, vision, arch)``: the frozen vision encoder of notebook 07's CLIP
  (``vision_tokens``: the ViT's 65 tokens before pooling) and an MLP projector
  (``build_projector``) feed the decoder's own layers, either as a prefix of "visual
  tokens" before the text (``arch="llava"``, Liu et al. 2023) or through a
  ``GatedCrossAttention`` before every block (``arch="flamingo"``, Alayrac et al. 2022),
  whose tanh gates start at 0 so that the new model starts as the text decoder, exactly.
- ``generate``: greedy decoding or top-k sampling with a seed, up to ``max_length`` tokens,
  stopping at "[END]" and never emitting padding, "[UNK]" or "[START]". With
  ``use_cache=True`` each layer's keys and values are kept (a KV cache) and each step runs
  only the new token through the model; ``use_cache=False`` recomputes the whole sequence.
- ``train_captioner``: CLIP, decoder pre-training and the two stages, scored after each;
  ``caption_backbone`` trains the first two once for both architectures, ``GateTrace``
  records Flamingo's gates during training.
- ``correct_statements``: parses generated captions back into statements of the course
  grammar (``mmcourse.data.statements``) and judges them against the scene, so a caption counts when
  it is true, whatever its wording.

The decoder's vocabulary (``decoder_vocabulary``) is ``text.load_vocabulary()`` (index 0
"" padding, 1 "[UNK]", then the course words) followed by ``SPECIAL_TOKENS``: "[START]"
(id V - 2) begins every text, "[END]" (id V - 1) ends it. Visual tokens carry the ViT's
positions; the decoder's position embedding numbers the text tokens only (from 0, with or
without a prefix), so a text decoder pre-trained alone keeps its positions in the VLM.

Like ``mmcourse.clip``, this module imports Keras at module level because it defines
layers registered for ``.keras`` saving; other modules import it inside functions.
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
from keras import ops

from mmcourse import stats
from mmcourse.blocks import _positive_int, coordinate_features
from mmcourse.clip import TokenAndPositionEmbedding
from mmcourse.data import draw, store, text
from mmcourse.data import scenes as data
from mmcourse.data import statements as grammar
from mmcourse.names import CAPTION_ARCHS

#: Appended to ``text.load_vocabulary()``: the decoder's vocabulary ends with these.
SPECIAL_TOKENS = ("[START]", "[END]")
#: The decoder of ``build_decoder`` unless told otherwise.
DECODER_DEFAULTS = {"width": 64, "depth": 2, "num_heads": 4, "key_dim": 16,
                    "hidden_units": 128}
#: Text positions of ``build_decoder``: "[START]", a question and its answer, "[END]".
DECODER_MAX_LENGTH = 24
METHODS = ("greedy", "top_k")
ARCHS = CAPTION_ARCHS


# --- vocabulary -----------------------------------------------------------------------------


def decoder_vocabulary(root=None, vocabulary=None) -> list[str]:
    """The decoder's tokens: ``vocabulary`` (default ``text.load_vocabulary(root)``, which
    starts with "" and "[UNK]") followed by "[START]" and "[END]". Introduced in notebook 08.
    """
    tokens = list(vocabulary) if vocabulary is not None else text.load_vocabulary(root)
    if tokens[:2] != [text.PAD_TOKEN, text.OOV_TOKEN]:
        raise ValueError(f"vocabulary must start with {text.PAD_TOKEN!r} and "
                         f"{text.OOV_TOKEN!r}, got {tokens[:2]}")
    if any(token in tokens for token in SPECIAL_TOKENS):
        raise ValueError(f"vocabulary already holds one of {SPECIAL_TOKENS}: pass the text "
                         f"vocabulary, not a decoder vocabulary")
    return [*tokens, *SPECIAL_TOKENS]


def _word_ids(words, vocabulary, what: str) -> list[int]:
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = [w for w in words if w not in index or index[w] < 2 or w in SPECIAL_TOKENS]
    if unknown:
        raise ValueError(f"{what} holds words outside the vocabulary: {unknown}")
    return [index[w] for w in words]


def encode_texts(texts, vocabulary, length: int) -> np.ndarray:
    """Token ids int32 (N, length): "[START]", the words of each text (``text.split_words``),
    "[END]", then padding 0. Unknown words or a text too long raise ValueError. The model's
    input is ``ids[:, :-1]`` and its target ``ids[:, 1:]``. Introduced in notebook 08."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one str: wrap it as [text]")
    length = _positive_int("length", length)
    start, end = len(vocabulary) - 2, len(vocabulary) - 1
    ids = np.zeros((len(texts), length), np.int32)
    for row, caption in enumerate(texts):
        words = _word_ids(text.split_words(caption), vocabulary, f"texts[{row}]")
        if len(words) + 2 > length:
            raise ValueError(f"texts[{row}] has {len(words)} words: with [START] and [END] "
                             f"it needs length >= {len(words) + 2}, got {length}")
        ids[row, :len(words) + 2] = [start, *words, end]
    return ids


def ids_to_texts(token_ids, vocabulary) -> list[str]:
    """Generated ids (N, T) back to texts: words up to the first "[END]", padding and
    "[START]" dropped. Introduced in notebook 08."""
    end = len(vocabulary) - 1
    texts = []
    for row in np.atleast_2d(np.asarray(token_ids)):
        words = []
        for token in row:
            if token == end:
                break
            if 0 < token < end - 1:
                words.append(vocabulary[token])
        texts.append(" ".join(words))
    return texts


# --- layers ---------------------------------------------------------------------------------


def _attend(attention, query, keys, values):
    """Attention by hand with a ``MultiHeadAttention``'s own weights: query (B, Tq, H, Dk)
    already projected, keys and values (B, Tk, H, Dk) -> (B, Tq, d), no mask."""
    query = query * ops.cast(1.0 / math.sqrt(attention._key_dim), query.dtype)
    scores = ops.einsum("bqhd,bkhd->bhqk", query, keys)
    weights = ops.softmax(scores, axis=-1)
    return attention._output_dense(ops.einsum("bhqk,bkhd->bqhd", weights, values))


@keras.saving.register_keras_serializable(package="mmcourse")
class DecoderEmbedding(TokenAndPositionEmbedding):
    """Token ids (batch, L) -> (batch, L, width): notebook 07's token plus learned position
    embedding, L <= ``max_length``, without its padding mask: the causal mask already hides
    the padding at the end of a caption from every real token. ``step(ids, position)``
    embeds one token at a given position (KV-cache decoding). Introduced in notebook 08."""

    def compute_mask(self, token_ids, mask=None):
        return None

    def step(self, token_ids, position):
        """Token ids (batch, 1) at text position ``position`` -> (batch, 1, width)."""
        return self.tokens(token_ids) + self.positions(ops.reshape(position, (1,)))[None]


class _FeedForward:
    def _build_feed_forward(self, shape, hidden_units):
        self.ff_norm = keras.layers.LayerNormalization(name="ff_norm", dtype=self.dtype_policy)
        self.hidden = keras.layers.Dense(hidden_units, activation="gelu", name="hidden",
                                         dtype=self.dtype_policy)
        self.out = keras.layers.Dense(shape[-1], name="out", dtype=self.dtype_policy)
        self.ff_norm.build(shape)
        self.hidden.build(shape)
        self.out.build((*shape[:-1], hidden_units))

    def _feed_forward(self, x):
        return self.out(self.hidden(self.ff_norm(x)))


@keras.saving.register_keras_serializable(package="mmcourse")
class DecoderBlock(_FeedForward, keras.layers.Layer):
    """A pre-norm causal transformer block (GPT-2):

        x <- x + MHA(LN(x), LN(x), causal),   x <- x + W_2 gelu(W_1 LN(x) + b_1) + b_2

    Position t attends to positions 0..t only (``use_causal_mask=True``). For KV-cache
    decoding, ``keys_values(x)`` gives the keys and values (batch, T, heads, key_dim) of a
    whole input, and ``step(x_new, keys, values)`` runs one new position (batch, 1, d)
    against the cached ones, by hand with the attention layer's own weights, returning the
    output and the extended cache. Introduced in notebook 08.
    """

    def __init__(self, num_heads: int = 4, key_dim: int = 16, hidden_units: int = 128,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _positive_int("num_heads", num_heads)
        self.key_dim = _positive_int("key_dim", key_dim)
        self.hidden_units = _positive_int("hidden_units", hidden_units)
        self.attention_norm = keras.layers.LayerNormalization(name="attention_norm",
                                                              dtype=self.dtype_policy)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="attention",
                                                         dtype=self.dtype_policy)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"DecoderBlock needs tokens (batch, T, d) with known d, got "
                             f"{tuple(input_shape)}")
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self._build_feed_forward(input_shape, self.hidden_units)

    def call(self, x):
        normed = self.attention_norm(x)
        x = x + self.attention(normed, normed, use_causal_mask=True)
        return x + self._feed_forward(x)

    def keys_values(self, x):
        """The keys and values (batch, T, heads, key_dim) this block computes for input x."""
        normed = self.attention_norm(x)
        return self.attention._key_dense(normed), self.attention._value_dense(normed)

    def step(self, x, keys, values):
        """x (batch, 1, d), the new position; keys and values of the earlier positions ->
        (output (batch, 1, d), keys, values with the new position appended)."""
        normed = self.attention_norm(x)
        keys = ops.concatenate([keys, self.attention._key_dense(normed)], axis=1)
        values = ops.concatenate([values, self.attention._value_dense(normed)], axis=1)
        x = x + _attend(self.attention, self.attention._query_dense(normed), keys, values)
        return x + self._feed_forward(x), keys, values

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="mmcourse")
class GatedCrossAttention(_FeedForward, keras.layers.Layer):
    """Flamingo's gated cross-attention, ``layer(text_hidden, image_tokens)``:

        x = text_hidden + tanh(alpha) * MHA(LN(text_hidden), image_tokens)
        y = x + tanh(alpha_ff) * FFN(LN(x))

    ``alpha`` and ``alpha_ff`` are trainable scalars initialised to 0, so a new layer returns
    ``text_hidden`` exactly and a pre-trained decoder with these layers inserted starts as
    the decoder. text_hidden (batch, T, d), image_tokens (batch, N, d_image); the output is
    (batch, T, d). ``hidden_units`` of the feed-forward part defaults to 4 d.
    Introduced in notebook 08.
    """

    def __init__(self, num_heads: int, key_dim: int, hidden_units: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _positive_int("num_heads", num_heads)
        self.key_dim = _positive_int("key_dim", key_dim)
        self.hidden_units = None if hidden_units is None else _positive_int("hidden_units",
                                                                            hidden_units)
        self.query_norm = keras.layers.LayerNormalization(name="query_norm",
                                                          dtype=self.dtype_policy)
        self.attention = keras.layers.MultiHeadAttention(num_heads, key_dim, name="attention",
                                                         dtype=self.dtype_policy)

    def build(self, text_hidden_shape, image_tokens_shape):
        for name, shape in (("text_hidden", text_hidden_shape),
                            ("image_tokens", image_tokens_shape)):
            if len(shape) != 3 or shape[-1] is None:
                raise ValueError(f"GatedCrossAttention needs {name} (batch, T, d) with known "
                                 f"d, got {tuple(shape)}")
        self.query_norm.build(text_hidden_shape)
        self.attention.build(text_hidden_shape, image_tokens_shape)
        self._build_feed_forward(text_hidden_shape,
                                 self.hidden_units or 4 * text_hidden_shape[-1])
        self.alpha = self.add_weight(shape=(), initializer="zeros", name="alpha")
        self.alpha_ff = self.add_weight(shape=(), initializer="zeros", name="alpha_ff")

    def _gated(self, text_hidden, attended):
        x = text_hidden + ops.tanh(self.alpha) * attended
        return x + ops.tanh(self.alpha_ff) * self._feed_forward(x)

    def call(self, text_hidden, image_tokens):
        return self._gated(text_hidden,
                           self.attention(self.query_norm(text_hidden), image_tokens))

    def image_keys_values(self, image_tokens):
        """The keys and values (batch, N, heads, key_dim) of the image tokens, computed once
        per image for KV-cache decoding."""
        return self.attention._key_dense(image_tokens), self.attention._value_dense(image_tokens)

    def step(self, text_hidden, keys, values):
        """The layer on text_hidden with the image's keys and values already computed."""
        query = self.attention._query_dense(self.query_norm(text_hidden))
        return self._gated(text_hidden, _attend(self.attention, query, keys, values))

    def compute_output_shape(self, text_hidden_shape, image_tokens_shape):
        return tuple(text_hidden_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="mmcourse")
class GridCoordinates(keras.layers.Layer):
    """ViT tokens (batch, 1 + H W, d), a class token then a square grid of patches in
    row-major order -> (batch, 1 + H W, d + 2 + 4 f): each patch token followed by its
    centre's coordinates ``relations.coordinate_features(H, W, frequencies)`` (notebook
    06), the class token by zeros. A CLIP trained on left-to-right captions keeps little of
    where things are; these fixed features give it back. Introduced in notebook 08."""

    def __init__(self, frequencies: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.frequencies = int(frequencies)

    def _features(self, input_shape):
        side = math.isqrt((input_shape[1] or 0) - 1)
        if len(input_shape) != 3 or side < 1 or side * side + 1 != input_shape[1]:
            raise ValueError(f"GridCoordinates needs a class token and a square grid of "
                             f"patch tokens (batch, 1 + H W, d), got {tuple(input_shape)}")
        grid = coordinate_features(side, side, self.frequencies)
        return np.concatenate([np.zeros((1, grid.shape[1]), np.float32), grid])

    def build(self, input_shape):
        self.features = self._features(input_shape)

    def call(self, tokens):
        features = ops.cast(ops.convert_to_tensor(self.features), tokens.dtype)[None]
        return ops.concatenate([tokens, ops.broadcast_to(
            features, (ops.shape(tokens)[0], *self.features.shape))], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], input_shape[2] + self._features(input_shape).shape[1])

    def get_config(self):
        return {**super().get_config(), "frequencies": self.frequencies}


@keras.saving.register_keras_serializable(package="mmcourse")
class DropPrefix(keras.layers.Layer):
    """``layer(hidden, prefix)``: hidden (batch, P + L, d) -> its last L positions, the text
    after a prefix of P visual tokens. Introduced in notebook 08."""

    def call(self, hidden, prefix):
        return hidden[:, prefix.shape[1]:]

    def compute_output_shape(self, hidden_shape, prefix_shape):
        length = None if hidden_shape[1] is None else hidden_shape[1] - prefix_shape[1]
        return (hidden_shape[0], length, hidden_shape[2])


# --- models ---------------------------------------------------------------------------------


def _decoder_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(DECODER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(DECODER_DEFAULTS)}")
    options = {**DECODER_DEFAULTS, **options}
    for name, value in options.items():
        _positive_int(name, value)
    return options


def build_decoder(vocabulary_size: int, max_length: int = DECODER_MAX_LENGTH, **options):
    """A GPT-style language model: token ids (batch, L), L <= ``max_length`` -> logits
    (batch, L, vocabulary_size), position t predicting token t + 1. Layers: "embedding",
    "block1".."blockN", "final_norm", "logits". ``options`` override ``DECODER_DEFAULTS``
    (width, depth, num_heads, key_dim, hidden_units). Introduced in notebook 08."""
    vocabulary_size = _positive_int("vocabulary_size", vocabulary_size)
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
    input_width = _positive_int("input_width", input_width)
    width = _positive_int("width", width)
    hidden_units = _positive_int("hidden_units", hidden_units)
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
    _check_arch(arch)
    parts = _parts(decoder)
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
    parts = _parts(model)
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


def _parts(model) -> dict:
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


# --- decoding -------------------------------------------------------------------------------


class _Decoder:
    """The compiled forward passes of one model: the whole sequence, and the KV cache's
    prefill and one-token step."""

    def __init__(self, model):
        import tensorflow as tf  # noqa: PLC0415

        self.parts = _parts(model)
        self.full = tf.function(self._full, reduce_retracing=True)
        self.prefill = tf.function(self._prefill, reduce_retracing=True)
        self.step = tf.function(self._step, reduce_retracing=True)
        self.visual = tf.function(self._visual, reduce_retracing=True)

    def _visual(self, images):
        return self.parts["projector"](self.parts["vision"](images, training=False))

    def _run(self, visual, token_ids, caches=None):
        parts = self.parts
        hidden = parts["embedding"](token_ids)
        if parts["prefix"]:
            hidden = ops.concatenate([ops.cast(visual, hidden.dtype), hidden], axis=1)
        for block, cross in zip(parts["blocks"], parts["cross"], strict=True):
            if cross is not None:
                hidden = cross(hidden, visual)
            if caches is not None:
                caches.append(block.keys_values(hidden))
            hidden = block(hidden)
        return hidden

    def _full(self, visual, token_ids):
        hidden = self._run(visual, token_ids)[:, -1:]
        return self.parts["head"](self.parts["norm"](hidden))[:, 0]

    def _prefill(self, visual, token_ids):
        caches = []
        hidden = self._run(visual, token_ids, caches)[:, -1:]
        image_caches = [cross.image_keys_values(visual) if cross is not None else ()
                        for cross in self.parts["cross"]]
        return self.parts["head"](self.parts["norm"](hidden))[:, 0], caches, image_caches

    def _step(self, token_ids, position, caches, image_caches):
        hidden = self.parts["embedding"].step(token_ids, position)
        new_caches = []
        for block, cross, cache, image_cache in zip(self.parts["blocks"], self.parts["cross"],
                                                    caches, image_caches, strict=True):
            if cross is not None:
                hidden = cross.step(hidden, *image_cache)
            hidden, keys, values = block.step(hidden, *cache)
            new_caches.append((keys, values))
        return self.parts["head"](self.parts["norm"](hidden))[:, 0], new_caches


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _decoder_of(model) -> _Decoder:
    if model not in _DECODERS:
        _DECODERS[model] = _Decoder(model)
    return _DECODERS[model]


def _check_images(images, parts):
    images = np.asarray(images)
    shape = tuple(parts["vision"].inputs[0].shape[1:])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape \
            or len(images) == 0:
        raise ValueError(f"images must be uint8 (N, {', '.join(map(str, shape))}) with N >= "
                         f"1, got {images.dtype} {images.shape}")
    return images.astype(np.float32) / 255.0


def _choose(logits, method, k, temperature, rng):
    if method == "greedy":
        return np.argmax(logits, axis=1)
    chosen = np.empty(len(logits), np.int64)
    for row, scores in enumerate(logits):
        top = np.argsort(-scores, kind="stable")[:k]
        scaled = (scores[top] - scores[top[0]]) / temperature
        weights = np.exp(scaled)
        chosen[row] = top[rng.choice(k, p=weights / weights.sum())]
    return chosen


def decode_ids(model, images=None, prompt_ids=None, max_length: int = 16,
               method: str = "greedy", k: int = 5, seed: int = 0, temperature: float = 1.0,
               use_cache: bool = True, stop_at_end: bool = True, return_logits: bool = False):
    """Generated token ids (batch, max_length) after "[START]" and ``prompt_ids`` (batch,
    L0) (optional; ids of words); a row is padded with 0 after its "[END]".

    The vocabulary's last two ids are "[START]" and "[END]"; the logits of padding (0),
    "[UNK]" (1) and "[START]" are set to -inf before choosing, so they are never emitted
    ("[END]" too with ``stop_at_end=False``, which always generates ``max_length`` tokens).
    ``method="greedy"`` takes the argmax; ``"top_k"`` samples among the k largest logits
    (divided by ``temperature``) with ``numpy.random.default_rng(seed)``. With
    ``return_logits`` also returns the raw logits of every step (batch, steps, V).
    Introduced in notebook 08.
    """
    parts = _parts(model)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    max_length = _positive_int("max_length", max_length)
    vocabulary_size = parts["head"].units
    start, end = vocabulary_size - 2, vocabulary_size - 1
    banned = [0, 1, start] + ([] if stop_at_end else [end])
    if method == "top_k":
        k = _positive_int("k", k)
        if k > vocabulary_size - len(banned):
            raise ValueError(f"k must be at most {vocabulary_size - len(banned)} (the tokens "
                             f"that may be emitted), got {k}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if parts["vision"] is None:
        if images is not None:
            raise ValueError("images must be None for a text decoder without a vision encoder")
        visual = None
        batch = 1 if prompt_ids is None else len(np.asarray(prompt_ids))
    else:
        if images is None:
            raise ValueError("images must be given for a vision-language model")
        pixels = _check_images(images, parts)
        batch = len(pixels)
    prompt = np.zeros((batch, 0), np.int32) if prompt_ids is None \
        else np.asarray(prompt_ids).reshape(batch, -1) if np.size(prompt_ids) == 0 \
        else np.asarray(prompt_ids)
    if prompt.ndim != 2 or len(prompt) != batch or not np.issubdtype(prompt.dtype, np.integer) \
            or (prompt.size and (prompt.min() < 2 or prompt.max() >= start)):
        raise ValueError(f"prompt_ids must be word ids in [2, {start}) of shape (batch, L0) "
                         f"with batch = {batch}, got {prompt.dtype} {prompt.shape}")
    positions = parts["embedding"].max_length
    if prompt.shape[1] + max_length > positions:
        raise ValueError(f"max_length + prompt length must be at most {positions} (the "
                         f"decoder's positions, [START] included), got max_length="
                         f"{max_length} with a prompt of {prompt.shape[1]} words")
    decoder = _decoder_of(model)
    if parts["vision"] is not None:
        visual = decoder.visual(ops.convert_to_tensor(pixels))
    token_ids = np.concatenate([np.full((batch, 1), start, np.int32),
                                prompt.astype(np.int32)], axis=1)
    if use_cache:
        logits, caches, image_caches = decoder.prefill(visual, ops.convert_to_tensor(token_ids))
    else:
        logits = decoder.full(visual, ops.convert_to_tensor(token_ids))
    rng = np.random.default_rng(seed)
    generated = np.zeros((batch, max_length), np.int32)
    all_logits = []
    finished = np.zeros(batch, bool)
    for t in range(max_length):
        scores = np.array(ops.convert_to_numpy(logits), dtype=np.float64)
        all_logits.append(scores.copy())
        scores[:, banned] = -np.inf
        chosen = _choose(scores, method, k, temperature, rng)
        generated[:, t] = np.where(finished, 0, chosen)
        finished |= chosen == end
        if finished.all() or t == max_length - 1:
            break
        new = np.where(finished, end, chosen).astype(np.int32)[:, None]
        if use_cache:
            logits, caches = decoder.step(ops.convert_to_tensor(new),
                                          ops.convert_to_tensor(token_ids.shape[1], "int32"),
                                          caches, image_caches)
            token_ids = np.concatenate([token_ids, new], axis=1)
        else:
            token_ids = np.concatenate([token_ids, new], axis=1)
            logits = decoder.full(visual, ops.convert_to_tensor(token_ids))
    if return_logits:
        return generated, np.stack(all_logits, axis=1)
    return generated


def generate(model, images=None, prompt="", max_length: int = 16, method: str = "greedy",
             k: int = 5, seed: int = 0, temperature: float = 1.0, use_cache: bool = True,
             vocabulary=None, root=None) -> list[str]:
    """Texts written by ``model`` (``build_vlm``, or ``build_decoder`` with
    ``images=None``): one per image (uint8 (N, H, W, 3)), continuing "[START]" + ``prompt``
    (one str for all, or one per image) for at most ``max_length`` tokens, "[END]" included
    and not shown. ``vocabulary`` defaults to ``decoder_vocabulary(root)``. See
    ``decode_ids`` for the methods and limits. Introduced in notebook 08."""
    vocabulary = decoder_vocabulary(root) if vocabulary is None else list(vocabulary)
    vocabulary_size = _parts(model)["head"].units
    if len(vocabulary) != vocabulary_size:
        raise ValueError(f"vocabulary has {len(vocabulary)} tokens but the model predicts "
                         f"{vocabulary_size}: pass the decoder_vocabulary it was built for")
    count = 1 if images is None else len(np.asarray(images))
    prompts = [prompt] * count if isinstance(prompt, str) else list(prompt)
    if len(prompts) != count or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a str or {count} strs (one per image), got "
                         f"{prompt!r}")
    rows = [_word_ids(text.split_words(p), vocabulary, "prompt") for p in prompts]
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"prompt: every prompt must have the same number of words, got "
                         f"{sorted({len(row) for row in rows})}")
    prompt_ids = np.array(rows, np.int32).reshape(count, -1)
    generated = decode_ids(model, images, prompt_ids, max_length, method, k, seed,
                           temperature, use_cache)
    return ids_to_texts(generated, vocabulary)


# --- judging captions by their meaning ------------------------------------------------------

_ORDERS = {"left to right": "left of", "right to left": "right of",
           "top to bottom": "above", "bottom to top": "below"}
_ARTICLES = (("there", "is", "a"), ("a",), ("the",), ())


def caption_statements(caption: str) -> list[dict]:
    """The statements (``mmcourse.data.statements``' dicts) a caption makes; ValueError if it is
    not in the grammar. Accepted, after ``text.split_words`` (case and punctuation ignored):

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
    scenes are records of ``data.load_records("scenes", ...)`` (or lists of objects), one
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


# --- benchmark ------------------------------------------------------------------------------


def benchmark():
    """``python -m mmcourse bench decode``: tokens per second of greedy decoding with the
    KV cache against recomputing the whole sequence at every step, for a LLaVA-style model
    (random weights: speed does not depend on them) with CLIP's 65 visual tokens, at batch
    1 and 64 and 16 and 32 generated tokens. Introduced in notebook 08."""
    from mmcourse import bench, clip  # noqa: PLC0415
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    rng = seed_everything(0)
    vocabulary = decoder_vocabulary(store.ensure_data())
    decoder = build_decoder(len(vocabulary), max_length=40)
    model = build_vlm(decoder, vision_tokens(clip.build_image_encoder()), "llava")
    images = rng.integers(0, 256, size=(64, 64, 64, 3), dtype=np.uint8)
    timings, ratios = [], []
    for batch in (1, 64):
        for length in (16, 32):
            def run(use_cache, batch=batch, length=length):
                return decode_ids(model, images[:batch], max_length=length,
                                  use_cache=use_cache, stop_at_end=False)

            same = np.array_equal(run(True), run(False))
            names = {True: f"cache b{batch} L{length}", False: f"recompute b{batch} L{length}"}
            measured = bench.time_candidates({names[c]: (lambda c=c: run(c)) for c in names},
                                             repeats=5, warmup=1, items=batch * length)
            timings += measured
            ratios.append(bench.Ratio(
                f"cache b{batch} L{length}" + ("" if same else " (tokens differ!)"),
                bench.speedup(measured, names[False], names[True]),
                target=3.0 if length == 32 else None))
    return bench.BenchResult(
        "decode", "greedy decoding with a KV cache vs recomputing (tokens/s, LLaVA-style, "
                  "65 visual tokens)",
        timings=timings, ratios=ratios,
        facts={"params": int(model.count_params()), "visual_tokens": 65,
               "decoder": {**DECODER_DEFAULTS}})


# --- training a captioner and a VQA model -------------------------------------------------

#: Token ids per caption ("[START]", the words, "[END]") at each level.
CAPTION_LENGTHS = {"attributes": 8, "relations": 14}
#: Epochs of each step of ``train_captioner``.
CAPTION_EPOCHS = {"clip": 25, "pretrain": 10, "stage1": 5, "stage2": 10}
#: Adam's learning rate in each step of ``train_captioner`` (``LEARNING_RATES``) and
#: ``train_vqa`` (``VQA_LEARNING_RATES``).
LEARNING_RATES = {"pretrain": 3e-3, "stage1": 3e-3, "stage2": 1e-3}
VQA_LEARNING_RATES = {**LEARNING_RATES, "stage2": 3e-3}
#: Token ids per VQA text: "[START]", a question (at most 10 words), its one-word answer,
#: "[END]".
VQA_LENGTH = 13
#: Epochs of each step of ``train_vqa``.
VQA_EPOCHS = {"clip": 25, "pretrain": 3, "stage1": 2, "stage2": 10}


def encode_answers(questions, answers, vocabulary, length: int = VQA_LENGTH):
    """A VQA training text per question, "[START] question answer [END]", and its loss
    weights: (token ids int32 (N, length), weights float32 (N, length - 1) of the targets
    ``ids[:, 1:]``), 1 on the answer's words and "[END]", 0 on the question and the padding,
    so that the model learns to answer, not to ask. Introduced in notebook 08."""
    if isinstance(questions, str) or isinstance(answers, str):
        raise TypeError("questions and answers must be lists of strings, got a str: wrap it "
                        "as [text]")
    questions, answers = list(questions), list(answers)
    if len(questions) != len(answers):
        raise ValueError(f"questions and answers must have the same length, got "
                         f"{len(questions)} and {len(answers)}")
    ids = encode_texts([f"{q} {a}" for q, a in zip(questions, answers, strict=True)],
                       vocabulary, length)
    asked = np.array([len(text.split_words(q)) for q in questions]).reshape(-1, 1)
    weights = (np.arange(length - 1) >= asked) & (ids[:, 1:] != 0)
    return ids, weights.astype(np.float32)


class GateTrace(keras.callbacks.Callback):
    """Records tanh(alpha) and tanh(alpha_ff) of every ``GatedCrossAttention`` of the model
    being fitted, before training and after every batch: ``gates`` maps a layer's name to a
    list of (tanh(alpha), tanh(alpha_ff)) pairs. One instance may follow several ``fit``
    calls (the stages of ``train_captioner``); ``stage_starts`` holds the index in each list
    at which each call began. Introduced in notebook 08."""

    def __init__(self):
        super().__init__()
        self.gates: dict[str, list[tuple[float, float]]] = {}
        self.stage_starts: list[int] = []

    def _layers(self):
        return [layer for layer in self.model.layers if isinstance(layer, GatedCrossAttention)]

    def _record(self):
        for layer in self._layers():
            self.gates.setdefault(layer.name, []).append(
                (float(np.tanh(ops.convert_to_numpy(layer.alpha))),
                 float(np.tanh(ops.convert_to_numpy(layer.alpha_ff)))))

    def on_train_begin(self, logs=None):
        if not self._layers():
            raise ValueError(f"GateTrace needs a model with GatedCrossAttention layers "
                             f"(build_vlm(..., arch='flamingo')), got {self.model.name!r}")
        if not self.gates:
            self._record()
        self.stage_starts.append(len(next(iter(self.gates.values()))) - 1)

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def _fit_stage(model, trainable, inputs, targets, weights, epochs, learning_rate, batch_size,
               seed, tokens=None, callbacks=None):
    """Fit ``model`` with only the layers named in ``trainable`` trainable, on ``inputs``
    (token ids (N, L), or with ``tokens`` (rows (N,), token ids): each example's vision
    tokens ``tokens[rows]``, gathered per batch) and per-target loss ``weights``; (seconds,
    trainable parameter count, final loss)."""
    import time  # noqa: PLC0415

    import tensorflow as tf  # noqa: PLC0415

    for layer in model.layers:
        layer.trainable = layer.name in trainable
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras.utils.set_random_seed(seed)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weights)).shuffle(
        len(targets), seed=seed).batch(batch_size)
    if tokens is not None:
        table = tf.constant(tokens)
        dataset = dataset.map(lambda x, y, w: ((tf.gather(table, x[0]), x[1]), y, w))
    start = time.perf_counter()
    history = model.fit(dataset.prefetch(2), epochs=epochs, verbose=0, shuffle=False,
                        callbacks=callbacks)
    trainable_params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return time.perf_counter() - start, trainable_params, float(history.history["loss"][-1])


def _check_arch(arch) -> None:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def _check_run(level, epochs, defaults) -> dict:
    """Checks the level; returns ``defaults`` updated with ``epochs``, each a positive
    int."""
    if level not in CAPTION_LENGTHS:
        raise ValueError(f"level must be one of {tuple(CAPTION_LENGTHS)}, got {level!r}")
    epochs = {**defaults, **(epochs or {})}
    for step, value in epochs.items():
        if step not in defaults:
            raise ValueError(f"epochs: unknown step {step!r}; steps: {tuple(defaults)}")
        _positive_int(f"epochs[{step!r}]", value)
    return epochs


def _backbone(task, level, seed, root, *, vocabulary, epochs, batch_size, train_size, log,
              clip_model, pretrain_ids, max_length, coordinates=False, learning_rates=None):
    """The steps before the stages, which do not depend on the architecture: a CLIP (or
    ``clip_model``) whose frozen ViT gives ``"vision"`` (``vision_tokens``), and the
    ``"decoder"`` pre-trained as a language model on ``pretrain_ids``."""
    from mmcourse import clip  # noqa: PLC0415

    log = log or (lambda message: None)
    rates = learning_rates or LEARNING_RATES
    seconds = {}
    if clip_model is None:
        log(f"[{task}/{level}] CLIP for the visual tokens, {epochs['clip']} epochs")
        clip_run = clip.train_clip(level, epochs["clip"], seed, root, heldout=(),
                                   train_size=train_size, keep_model=True)
        clip_model, seconds["clip"] = clip_run["model"], clip_run["train_seconds"]
    decoder = build_decoder(len(vocabulary), max_length=max_length)
    seconds["pretrain"], _, loss = _fit_stage(
        decoder, {layer.name for layer in decoder.layers}, pretrain_ids[:, :-1],
        pretrain_ids[:, 1:], (pretrain_ids[:, 1:] != 0).astype("float32"),
        epochs["pretrain"], rates["pretrain"], batch_size, seed)
    log(f"[{task}/{level}] decoder pre-trained, loss {loss:.3f}")
    return {"level": level, "seed": seed, "train_size": len(pretrain_ids),
            "epochs": {k: epochs[k] for k in ("clip", "pretrain")},
            "vision": vision_tokens(clip_model, coordinates=coordinates), "decoder": decoder,
            "seconds": seconds}


def _train_stages(task, backbone, arch, seed, *, epochs, batch_size, log, images, rows, ids,
                  weights, evaluate, learning_rates=None, callbacks=None):
    """Stage 1 and stage 2 of a ``build_vlm`` model on a copy of ``backbone``'s decoder, on
    ``ids`` (row i's image is ``images[rows[i]]``) with loss ``weights``; ``evaluate(model)``
    (a dict of metrics) after each. Returns (model, seconds per step, stages)."""
    log = log or (lambda message: None)
    rates = learning_rates or LEARNING_RATES
    tag = f"[{task}/{backbone['level']}/{arch}]"
    seconds = dict(backbone["seconds"])
    decoder = keras.models.clone_model(backbone["decoder"])  # the backbone stays as it was
    decoder.set_weights(backbone["decoder"].get_weights())
    vision = backbone["vision"]
    model = build_vlm(decoder, vision, arch)
    new = {"projector"} | {layer.name for layer in model.layers
                           if layer.name.startswith("gated_cross")}
    decoder_layers = {layer.name for layer in decoder.layers} - {"token_ids"}
    stage2 = new | decoder_layers if arch == "llava" else new
    tokens = np.asarray(vision.predict(np.asarray(images) / 255.0, batch_size=256, verbose=0))
    on_tokens = on_vision_tokens(model)
    stages = {}
    for stage, trainable in (("stage1", new), ("stage2", stage2)):
        seconds[stage], trainable_params, loss = _fit_stage(
            on_tokens, trainable, (np.asarray(rows, np.int32), ids[:, :-1]), ids[:, 1:],
            weights, epochs[stage], rates[stage], batch_size,
            seed + int(stage[-1]), tokens, callbacks)
        stages[stage] = {**evaluate(model), "train_loss": loss,
                         "trainable_params": trainable_params, "seconds": seconds[stage]}
        log(f"{tag} after {stage}: " + ", ".join(
            f"{key} {value:.3f}" for key, value in stages[stage].items()
            if isinstance(value, float) and key != "seconds"))
    return model, seconds, stages


def caption_metrics(model, images, captions, scenes, vocabulary, length: int) -> dict:
    """How well ``model`` captions ``images``: ``exact_match`` (greedy caption == reference),
    ``correct_statements`` (the caption is true of the scene, whatever its wording) and
    ``token_accuracy`` (next-token accuracy with the reference as input, padding excluded).
    Introduced in notebook 08."""
    generated = generate(model, images, max_length=length, vocabulary=vocabulary)
    ids = encode_texts(captions, vocabulary, length)
    logits = model.predict([np.asarray(images) / 255.0, ids[:, :-1]], batch_size=256,
                           verbose=0)
    real = ids[:, 1:] != 0
    return {"exact_match": float(np.mean([g == " ".join(text.split_words(c))
                                          for g, c in zip(generated, captions, strict=True)])),
            "correct_statements": correct_statements(generated, scenes),
            "token_accuracy": float((logits.argmax(-1) == ids[:, 1:])[real].mean()),
            "generated": generated}


def _caption_data(level, root, train_size):
    """``level``'s training images, their caption ids and the decoder vocabulary."""
    vocabulary = decoder_vocabulary(root)
    images, captions, _ = data.load_arrays("retrieval", level, "train", root=root)
    if train_size is not None:
        train_size = _positive_int("train_size", train_size)
        images, captions = images[:train_size], captions[:train_size]
    return images, encode_texts(captions, vocabulary, CAPTION_LENGTHS[level]), vocabulary


def caption_backbone(level: str = "attributes", seed: int = 0, root=None, *,
                     epochs: dict | None = None, batch_size: int = 64,
                     train_size: int | None = None, log=None) -> dict:
    """Steps 1 and 2 of ``train_captioner``, which do not depend on the architecture: a CLIP
    trained on ``level``'s retrieval pairs (``mmcourse.clip.train_clip``, every colour-shape
    combination), whose ViT gives the frozen ``"vision"`` (``vision_tokens``), and the text
    ``"decoder"`` pre-trained as a language model on the training captions. Pass the dict to
    ``train_captioner(..., backbone=...)`` to train several architectures on the same frozen
    parts (it copies the decoder, so the dict stays unchanged). ``"seconds"`` holds the
    fitting time of each step. Introduced in notebook 08."""
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    epochs = _check_run(level, epochs, CAPTION_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    images, ids, vocabulary = _caption_data(level, root, train_size)
    return _backbone("caption", level, seed, root, vocabulary=vocabulary, epochs=epochs,
                     batch_size=batch_size, train_size=train_size, log=log, clip_model=None,
                     pretrain_ids=ids, max_length=CAPTION_LENGTHS[level])


def train_captioner(level: str = "attributes", arch: str = "llava", seed: int = 0, root=None,
                    *, epochs: dict | None = None, batch_size: int = 64,
                    train_size: int | None = None, log=None, keep_model: bool = False,
                    clip_model=None, backbone: dict | None = None,
                    callbacks: list | None = None) -> dict:
    """Train an image captioner on ``level``'s retrieval captions and score it on the test
    split (``python -m mmcourse train --task caption``):

    1. a CLIP (``mmcourse.clip.train_clip``, every colour-shape combination) whose ViT,
       frozen, supplies the visual tokens (or the given trained ``clip_model``);
    2. the decoder pre-trained as a language model on the training captions;
    3. stage 1: ``arch="llava"`` trains the projector alone, ``"flamingo"`` the projector
       and the gated cross-attention layers, the decoder frozen in both;
    4. stage 2: ``"llava"`` fine-tunes the projector and the decoder together;
       ``"flamingo"`` keeps the decoder frozen and trains its new layers on.

    ``backbone`` (``caption_backbone``, same level, seed and train size) supplies steps 1
    and 2 instead of training them; ``callbacks`` (e.g. ``GateTrace``) follow stages 1 and 2,
    which train on the vision tokens computed once per image (``on_vision_tokens``).
    ``epochs`` overrides ``CAPTION_EPOCHS``. The metrics (``caption_metrics``) are reported
    after each stage; the top level holds those after stage 2, ``train_seconds`` the whole
    pipeline's fitting time (a shared backbone's counted in full). Introduced in notebook 08.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    _check_arch(arch)
    epochs = _check_run(level, epochs, CAPTION_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    images, ids, vocabulary = _caption_data(level, root, train_size)
    if backbone is not None and clip_model is not None:
        raise ValueError("pass clip_model or backbone, not both: a backbone holds its CLIP")
    if backbone is None:
        backbone = _backbone("caption", level, seed, root, vocabulary=vocabulary,
                             epochs=epochs, batch_size=batch_size, train_size=train_size,
                             log=log, clip_model=clip_model, pretrain_ids=ids,
                             max_length=CAPTION_LENGTHS[level])
    elif (backbone.get("level"), backbone.get("seed"), backbone.get("train_size")) != (
            level, seed, len(images)):
        raise ValueError(f"backbone was trained for level {backbone.get('level')!r}, seed "
                         f"{backbone.get('seed')}, {backbone.get('train_size')} examples; "
                         f"this run needs {level!r}, seed {seed}, {len(images)} examples")
    length = CAPTION_LENGTHS[level]
    test_images, test_captions, _ = data.load_arrays("retrieval", level, "test", root=root)
    test_scenes = data.load_records("scenes", level, "test", root=root)
    last = {}

    def evaluate(model):
        last.update(caption_metrics(model, test_images, test_captions, test_scenes,
                                    vocabulary, length))
        return {k: last[k] for k in ("exact_match", "correct_statements", "token_accuracy")}

    model, seconds, stages = _train_stages(
        "caption", backbone, arch, seed, epochs=epochs, batch_size=batch_size, log=log,
        images=images, rows=np.arange(len(ids)), ids=ids,
        weights=(ids[:, 1:] != 0).astype(np.float32), evaluate=evaluate, callbacks=callbacks)
    result = {"task": "caption", "level": level, "arch": arch,
              **{k: stages["stage2"][k] for k in ("exact_match", "correct_statements",
                                                  "token_accuracy")},
              **_run_summary(model, seconds, stages, {**epochs, **backbone["epochs"]}, seed),
              "train_examples": len(images), "test_examples": len(test_images),
              "samples": [{"reference": c, "generated": g} for c, g in
                          list(zip(test_captions, last["generated"], strict=True))[:5]]}
    if keep_model:
        result["model"] = model
    return result


def _run_summary(model, seconds, stages, epochs, seed) -> dict:
    """The keys the captioner's and VQA's results share."""
    return {"params": int(model.count_params()),
            "trainable_params": stages["stage2"]["trainable_params"],
            "train_seconds": float(sum(seconds.values())), "seconds": seconds,
            "stages": stages, "epochs": epochs, "seed": seed}


def question_only_accuracy(train_records, test_records) -> dict:
    """The baseline that never looks at the image: each test question (a qa record of
    ``mmcourse.data.scenes``, with "text", "answer" and "kind") gets the commonest answer to the same
    question text in ``train_records`` (ties: the answer seen first), and no answer when the
    text is new. Returns ``stats.accuracy_by_type`` by question kind. Introduced in notebook
    08."""
    from collections import Counter  # noqa: PLC0415

    answers_to: dict[str, Counter] = {}
    for record in train_records:
        answers_to.setdefault(record["text"], Counter())[record["answer"]] += 1
    commonest = {text: counts.most_common(1)[0][0] for text, counts in answers_to.items()}
    correct = np.array([commonest.get(r["text"]) == r["answer"] for r in test_records],
                       np.float32)
    return stats.accuracy_by_type(correct, np.ones_like(correct),
                                  [r["kind"] for r in test_records])


def vqa_metrics(model, images, questions, answers, kinds, vocabulary,
                length: int = VQA_LENGTH, batch_size: int = 1000) -> dict:
    """How well ``model`` answers: each question (row i about ``images[i]``) is the prompt
    of greedy decoding (``generate``, the room left in ``length`` tokens), and the generated
    text counts when it equals the reference answer after ``text.standardize``. Returns
    ``accuracy``, ``accuracy_by_type`` (``mmcourse.stats.accuracy_by_type`` by question
    ``kinds``: relational, non_relational and each kind) and ``generated``.
    Introduced in notebook 08."""
    if isinstance(questions, str) or isinstance(answers, str):
        raise TypeError("questions and answers must be lists of strings, got a str: wrap it "
                        "as [text]")
    questions, answers, kinds = list(questions), list(answers), list(kinds)
    images = np.asarray(images)
    if not questions or not len(images) == len(questions) == len(answers) == len(kinds):
        raise ValueError(f"images, questions, answers and kinds must be non-empty and of the "
                         f"same length, got {len(images)}, {len(questions)}, {len(answers)} "
                         f"and {len(kinds)}")
    asked = np.array([len(text.split_words(q)) for q in questions])
    generated = [""] * len(questions)
    for words in np.unique(asked):  # generate() needs prompts of one length
        rows = np.flatnonzero(asked == words)
        for chunk in range(0, len(rows), batch_size):
            part = rows[chunk:chunk + batch_size]
            texts = generate(model, images[part], [questions[i] for i in part],
                             max_length=length - 1 - int(words), vocabulary=vocabulary)
            for row, answer in zip(part, texts, strict=True):
                generated[row] = answer
    correct = np.array([text.standardize(g) == text.standardize(a)
                        for g, a in zip(generated, answers, strict=True)], np.float32)
    return {"accuracy": float(correct.mean()),
            "accuracy_by_type": stats.accuracy_by_type(correct, np.ones_like(correct), kinds),
            "generated": generated}


def train_vqa(level: str = "relations", arch: str = "llava", seed: int = 0, root=None, *,
              epochs: dict | None = None, batch_size: int = 64,
              train_size: int | None = None, test_size: int | None = None, log=None,
              keep_model: bool = False, clip_model=None, coordinates: bool = True) -> dict:
    """Visual question answering by generation (``python -m mmcourse train --task vqa``):
    the model reads the image (LLaVA's prefix or Flamingo's cross-attention) and the
    question as its prompt, and writes the answer.

    The steps are ``train_captioner``'s (a CLIP, or ``clip_model``; the decoder pre-trained;
    stage 1; stage 2), with ``VQA_EPOCHS``, except that the decoder is pre-trained on the
    training captions and the question-answer texts, and the stages train on
    "[START] question answer [END]" (``encode_answers``) with the loss on the answer and
    "[END]" only. With ``coordinates`` the vision tokens carry their patch's position
    (``GridCoordinates``): the CLIP of the relations level is trained on left-to-right
    captions and keeps little of where things are, which questions of height and distance
    need. Scores on the test split (the first ``test_size`` questions): ``accuracy``
    and ``accuracy_by_type`` (``vqa_metrics``) after each stage and at the top level after
    stage 2, plus ``samples``, one question of each kind. ``train_size`` keeps the first N
    training questions and the first N scenes for the CLIP. Introduced in notebook 08.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    _check_arch(arch)
    epochs = _check_run(level, epochs, VQA_EPOCHS)
    root = store.ensure_data(root)
    seed_everything(seed)
    vocabulary = decoder_vocabulary(root)

    def split(name, size):
        images, _, scene_ids = data.load_arrays("retrieval", level, name, root=root)
        records = data.load_records("qa", level, name, root=root)
        if size is not None:
            records = records[:_positive_int(f"{name}_size", size)]
        assert np.array_equal(scene_ids, np.arange(len(images)))  # scene i is image i
        return images, records, [[r[key] for r in records] for key in (
            "scene", "text", "answer", "kind")]

    images, _, (rows, questions, answers, _) = split("train", train_size)
    test_images, _, (test_rows, test_questions, test_answers, test_kinds) = split(
        "test", test_size)
    ids, weights = encode_answers(questions, answers, vocabulary)
    captions = data.load_arrays("retrieval", level, "train", root=root)[1][:train_size]
    pretrain_ids = encode_texts(captions + [f"{q} {a}" for q, a in zip(
        questions, answers, strict=True)], vocabulary, max(CAPTION_LENGTHS[level], VQA_LENGTH))
    last = {}

    def evaluate(model):
        last.update(vqa_metrics(model, test_images[test_rows], test_questions, test_answers,
                                test_kinds, vocabulary))
        return {"accuracy": last["accuracy"], "accuracy_by_type": last["accuracy_by_type"]}

    backbone = _backbone("vqa", level, seed, root, vocabulary=vocabulary, epochs=epochs,
                         batch_size=batch_size, train_size=train_size, log=log,
                         clip_model=clip_model, pretrain_ids=pretrain_ids,
                         max_length=max(pretrain_ids.shape[1], ids.shape[1]),
                         coordinates=coordinates, learning_rates=VQA_LEARNING_RATES)
    model, seconds, stages = _train_stages(
        "vqa", backbone, arch, seed, epochs=epochs, batch_size=batch_size, log=log,
        images=images[:max(rows) + 1], rows=rows, ids=ids, weights=weights,
        evaluate=evaluate, learning_rates=VQA_LEARNING_RATES)
    first = {kind: test_kinds.index(kind) for kind in sorted(set(test_kinds))}
    result = {"task": "vqa", "level": level, "arch": arch,
              "accuracy": last["accuracy"], "accuracy_by_type": last["accuracy_by_type"],
              **_run_summary(model, seconds, stages, epochs, seed),
              "learning_rates": VQA_LEARNING_RATES, "batch_size": batch_size,
              "coordinates": coordinates, "train_examples": len(ids),
              "test_examples": len(test_questions),
              "samples": [{"kind": kind, "question": test_questions[i],
                           "answer": test_answers[i], "generated": last["generated"][i]}
                          for kind, i in first.items()]}
    if keep_model:
        result["model"] = model
    return result
