"""Contrastive language-image pre-training (CLIP, Radford et al. 2021) at toy scale (notebook 07).

Two encoders map an image and a caption into one shared space, where a matching pair
points the same way:

- the image encoder is a small vision transformer (ViT, Dosovitskiy et al. 2021): the
  image is cut into p x p patches (``mmcourse.scratch.patchify``), each patch is projected
  to a token (``PatchEmbedding``, the same as a ``Conv2D(kernel_size=p, strides=p)``), a
  learned class token and learned position embeddings are added
  (``ClassTokenAndPositions``), pre-norm transformer blocks (``TransformerBlock`` of
  notebook 06) mix the tokens, and the class token's output is the image's summary;
- the text encoder embeds tokens and positions (``TokenAndPositionEmbedding``, padding
  masked), runs the same blocks, and averages the outputs over the real tokens
  (``MaskedMean``). Every token has attended to every other one, so the mean carries word
  order; CLIP takes the end token's output instead because its text transformer is causal,
  and only the last token has seen the whole caption;
- each encoder ends in a linear projection to the shared space; ``ContrastiveLogits``
  L2-normalises both embeddings and scales their dot products by a learned 1 / temperature.

Training pulls the N matching pairs of a batch together and pushes the N^2 - N others
apart (``contrastive_loss``). Afterwards, retrieval ranks captions for an image (or images
for a caption) by cosine similarity, and zero-shot classification asks which of a set of
prompts, one per class, is closest to the image.

Like ``mmcourse.blocks``, this module imports Keras at module level because it defines
layers registered for ``.keras`` saving; ``mmcourse.train.tasks`` imports it inside a function.
"""

from __future__ import annotations

import math
import time
from itertools import product

import keras
import numpy as np
from keras import ops

from mmcourse.blocks import TransformerBlock, _positive_int
from mmcourse.data import draw, store, text
from mmcourse.data import scenes as data

#: CLIP initialises the temperature at 0.07 and clips the logit scale 1 / temperature at 100.
INITIAL_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0

#: Colour-shape combinations kept out of training at the attributes level (each colour and
#: each shape is still seen, with other partners), to test compositional zero-shot.
HELDOUT_COMBINATIONS = (("red", "triangle"), ("green", "circle"), ("blue", "square"))

#: Caption templates for zero-shot prompts; the class embedding is their mean (prompt
#: ensembling, as in the CLIP paper). Only words of the course vocabulary.
PROMPT_TEMPLATES = ("a {size} {colour} {shape}", "the {size} {colour} {shape}",
                    "there is a {size} {colour} {shape}")

#: The model of ``build_clip`` and ``train_clip`` unless told otherwise.
CLIP_DEFAULTS = {"stem_filters": (16, 32, 32), "patch_size": 1, "width": 64, "image_depth": 2,
                 "text_depth": 1, "num_heads": 4, "key_dim": 16, "hidden_units": 128, "embedding_dim": 64}
CLIP_EPOCHS = {"attributes": 25, "relations": 25}
CLIP_LEARNING_RATE = 2e-3


# --- layers ---------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="mmcourse")
class PatchEmbedding(keras.layers.Layer):
    """Images (batch, H, W, C) -> patch tokens (batch, (H / p) (W / p), width).

    Each patch, flattened as ``mmcourse.scratch.patchify`` flattens it, goes through one
    linear map: token = patch @ kernel + bias, kernel (p p C, width). This is exactly a
    ``Conv2D(width, kernel_size=p, strides=p)`` whose kernel is this one reshaped to
    (p, p, C, width) (``as_conv2d``). Introduced in notebook 07.
    """

    def __init__(self, patch_size: int = 8, width: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = _positive_int("patch_size", patch_size)
        self.width = _positive_int("width", width)

    def _grid(self, input_shape):
        if len(input_shape) != 4 or None in input_shape[1:]:
            raise ValueError(f"PatchEmbedding needs images (batch, H, W, C) with known H, W "
                             f"and C, got {tuple(input_shape)}")
        height, width, channels = input_shape[1:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image height and width must be multiples of patch_size "
                             f"{self.patch_size}, got H={height}, W={width}")
        return height // self.patch_size, width // self.patch_size, channels

    def build(self, input_shape):
        channels = self._grid(input_shape)[2]
        self.kernel = self.add_weight(shape=(self.patch_size ** 2 * channels, self.width),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.width,), initializer="zeros", name="bias")

    def call(self, images):
        rows, columns, channels = self._grid(images.shape)
        p = self.patch_size
        grid = ops.reshape(images, (-1, rows, p, columns, p, channels))
        patches = ops.reshape(ops.transpose(grid, (0, 1, 3, 2, 4, 5)),
                              (-1, rows * columns, p * p * channels))
        return ops.matmul(patches, self.kernel) + self.bias

    def as_conv2d(self):
        """A ``Conv2D(width, kernel_size=p, strides=p)`` with this layer's weights: its output,
        reshaped to (batch, -1, width), equals this layer's."""
        channels = self.kernel.shape[0] // self.patch_size ** 2
        conv = keras.layers.Conv2D(self.width, self.patch_size, strides=self.patch_size)
        conv.build((None, None, None, channels))
        conv.set_weights([np.reshape(ops.convert_to_numpy(self.kernel),
                                     (self.patch_size, self.patch_size, channels, self.width)),
                          ops.convert_to_numpy(self.bias)])
        return conv

    def compute_output_shape(self, input_shape):
        rows, columns, _ = self._grid(input_shape)
        return (input_shape[0], rows * columns, self.width)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "width": self.width}


@keras.saving.register_keras_serializable(package="mmcourse")
class ClassTokenAndPositions(keras.layers.Layer):
    """Tokens (batch, T, d) -> (batch, 1 + T, d): a learned class token in front, then a
    learned position embedding added to every token (ViT). After the transformer blocks the
    class token's output summarises the image. Introduced in notebook 07."""

    def build(self, input_shape):
        if len(input_shape) != 3 or None in input_shape[1:]:
            raise ValueError(f"ClassTokenAndPositions needs tokens (batch, T, d) with known T "
                             f"and d, got {tuple(input_shape)}")
        tokens, width = input_shape[1:]
        initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.class_token = self.add_weight(shape=(1, 1, width), initializer=initializer,
                                           name="class_token")
        self.positions = self.add_weight(shape=(1, tokens + 1, width),
                                         initializer=initializer, name="positions")

    def call(self, tokens):
        class_tokens = ops.broadcast_to(ops.cast(self.class_token, tokens.dtype),
                                        (ops.shape(tokens)[0], 1, tokens.shape[-1]))
        return ops.concatenate([class_tokens, tokens], axis=1) + self.positions

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + 1, input_shape[2])


@keras.saving.register_keras_serializable(package="mmcourse")
class ClassOutput(keras.layers.Layer):
    """Tokens (batch, 1 + T, d) -> the class token's output (batch, d). Introduced in
    notebook 07."""

    def call(self, tokens):
        return tokens[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="mmcourse")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token ids (batch, L) -> (batch, L, width): a token embedding plus a learned position
    embedding, for any L <= ``max_length``. Id 0 is padding: the layer's mask (True on real
    tokens) lets the attention after it ignore padded keys. Introduced in notebook 07."""

    def __init__(self, vocabulary_size: int, max_length: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = _positive_int("vocabulary_size", vocabulary_size)
        self.max_length = _positive_int("max_length", max_length)
        self.width = _positive_int("width", width)
        self.tokens = keras.layers.Embedding(vocabulary_size, width, name="tokens",
                                             dtype=self.dtype_policy)
        self.positions = keras.layers.Embedding(max_length, width, name="positions",
                                                dtype=self.dtype_policy)

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((None,))

    def call(self, token_ids):
        length = ops.shape(token_ids)[-1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(f"token_ids has {length} positions but this embedding knows "
                             f"max_length={self.max_length}: vectorise to at most "
                             f"{self.max_length} tokens")
        return self.tokens(token_ids) + self.positions(ops.arange(length))[None]

    def compute_mask(self, token_ids, mask=None):
        return ops.not_equal(token_ids, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.width)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "max_length": self.max_length, "width": self.width}


@keras.saving.register_keras_serializable(package="mmcourse")
class MaskedMean(keras.layers.Layer):
    """``[hidden (batch, L, d), token_ids (batch, L)]`` -> (batch, d): the mean of the hidden
    states over the real tokens (id != 0), so padding changes nothing. Introduced in
    notebook 07."""

    def call(self, inputs):
        hidden, token_ids = inputs
        weights = ops.cast(ops.not_equal(token_ids, 0), hidden.dtype)[..., None]
        return ops.sum(hidden * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])


def _normalise(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="mmcourse")
class ContrastiveLogits(keras.layers.Layer):
    """``[image_embeddings (N, d), text_embeddings (M, d)]`` -> logits (N, M): the cosine
    similarities divided by the temperature.

    The temperature is learned as CLIP learns it: a log scale log(1 / tau) initialised at
    tau = ``temperature`` (0.07), with 1 / tau clipped at ``MAX_LOGIT_SCALE`` (100). With
    ``learn_temperature=False`` it stays fixed. Introduced in notebook 07.
    """

    def __init__(self, temperature: float = INITIAL_TEMPERATURE, learn_temperature: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
                or not 1 / MAX_LOGIT_SCALE <= temperature:
            raise ValueError(f"temperature must be a number >= {1 / MAX_LOGIT_SCALE} (1 / the "
                             f"largest logit scale), got {temperature!r}")
        self.initial_temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            shape=(), name="log_scale", trainable=self.learn_temperature,
            initializer=keras.initializers.Constant(-math.log(self.initial_temperature)))

    @property
    def temperature(self) -> float:
        """The current temperature tau (after the clip)."""
        return 1.0 / float(min(math.exp(float(ops.convert_to_numpy(self.log_scale))),
                               MAX_LOGIT_SCALE))

    def call(self, inputs):
        image_embeddings, text_embeddings = inputs
        scale = ops.minimum(ops.exp(self.log_scale), MAX_LOGIT_SCALE)
        return scale * ops.matmul(_normalise(image_embeddings),
                                  ops.transpose(_normalise(text_embeddings)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {**super().get_config(), "temperature": self.initial_temperature,
                "learn_temperature": self.learn_temperature}


# --- the loss -------------------------------------------------------------------------------


def _targets(logits, caption_ids):
    """Row targets: the diagonal, or, with caption ids, every column whose caption equals the
    row's, in equal shares (a batch can hold the same caption twice)."""
    if caption_ids is None:
        return ops.eye(ops.shape(logits)[0], dtype=logits.dtype)
    ids = ops.reshape(caption_ids, (-1,))
    same = ops.cast(ops.equal(ids[:, None], ids[None, :]), logits.dtype)
    return same / ops.sum(same, axis=1, keepdims=True)


def contrastive_loss_per_pair(logits, caption_ids=None):
    """The symmetric cross-entropy of a square logits matrix, per pair (N,):
    (CE(row i, targets) + CE(column i, targets)) / 2, row i scoring image i against every
    text and column i text i against every image. Introduced in notebook 07."""
    targets = _targets(logits, caption_ids)
    image_to_text = -ops.sum(targets * ops.log_softmax(logits, axis=1), axis=1)
    text_to_image = -ops.sum(targets * ops.log_softmax(logits, axis=0), axis=0)
    return (image_to_text + text_to_image) / 2


def contrastive_loss(image_embeddings, text_embeddings, temperature, caption_ids=None):
    """CLIP's loss for N image-text pairs, (N, d) each, pair i matching:

        logits = normalise(I) normalise(T)^T / temperature                  (N, N)
        loss = (CE(rows, diagonal) + CE(columns, diagonal)) / 2

    mean over the N pairs; rows score each image against every text, columns each text
    against every image. ``caption_ids`` (N,), optional, spreads a row's target over every
    text with the same caption (duplicates are not negatives). Returns a scalar tensor
    (``float(...)`` works). Introduced in notebook 07.
    """
    image_embeddings = ops.convert_to_tensor(image_embeddings, dtype="float32")
    text_embeddings = ops.convert_to_tensor(text_embeddings, dtype="float32")
    if len(image_embeddings.shape) != 2 or tuple(image_embeddings.shape) != \
            tuple(text_embeddings.shape):
        raise ValueError(f"image_embeddings and text_embeddings must both be (N, d) with the "
                         f"same N and d, got {tuple(image_embeddings.shape)} and "
                         f"{tuple(text_embeddings.shape)}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    logits = ops.matmul(_normalise(image_embeddings),
                        ops.transpose(_normalise(text_embeddings))) / temperature
    return ops.mean(contrastive_loss_per_pair(logits, caption_ids))


@keras.saving.register_keras_serializable(package="mmcourse")
class ContrastiveLoss(keras.losses.Loss):
    """``contrastive_loss`` for ``fit``: y_true is the batch's caption ids (N,), y_pred the
    logits (N, N) of ``ContrastiveLogits``. Introduced in notebook 07."""

    def __init__(self, name: str = "contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return contrastive_loss_per_pair(y_pred, y_true)


# --- the two encoders and the model ---------------------------------------------------------


def _options(options: dict) -> dict:
    unknown = sorted(set(options) - set(CLIP_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; valid: {sorted(CLIP_DEFAULTS)}")
    return {**CLIP_DEFAULTS, **options}


def _blocks(x, depth, options, prefix):
    for index in range(depth):
        x = TransformerBlock(options["num_heads"], options["key_dim"], options["hidden_units"],
                             name=f"{prefix}_block{index + 1}")(x)
    return keras.layers.LayerNormalization(name=f"{prefix}_norm")(x)


def build_image_encoder(image_shape=(64, 64, 3), **options):
    """A small ViT: images (batch, H, W, 3) in [0, 1] -> embeddings (batch, embedding_dim),
    the class token's output projected to the shared space.

    The pixels are first centred to [-1, 1]. With the default ``stem_filters`` (16, 32, 32)
    it is the ViT paper's *hybrid*: three stride-2 3x3 convolutions (notebook 04's CNN)
    make an 8 x 8 grid whose cells are the patches (``patch_size`` 1).
    ``stem_filters=(), patch_size=8`` gives the plain ViT on 8 x 8 pixel patches.
    Introduced in notebook 07."""
    options = _options(options)
    images = keras.Input(image_shape, name="images")
    features = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(images)
    for index, filters in enumerate(options["stem_filters"]):
        features = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                                       name=f"stem{index + 1}")(features)
    tokens = PatchEmbedding(options["patch_size"], options["width"], name="patches")(features)
    tokens = ClassTokenAndPositions(name="class_and_positions")(tokens)
    tokens = _blocks(tokens, options["image_depth"], options, "vit")
    summary = ClassOutput(name="class_output")(tokens)
    embeddings = keras.layers.Dense(options["embedding_dim"], use_bias=False,
                                    name="image_projection")(summary)
    return keras.Model(images, embeddings, name="image_encoder")


def build_text_encoder(vocabulary_size: int, max_length: int = text.SEQUENCE_LENGTH,
                       **options):
    """A text transformer: token ids (batch, L), L <= ``max_length``, 0 = padding ->
    embeddings (batch, embedding_dim), the mean over real tokens projected to the shared
    space. Introduced in notebook 07."""
    options = _options(options)
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    hidden = TokenAndPositionEmbedding(vocabulary_size, max_length, options["width"],
                                       name="embedding")(token_ids)
    hidden = _blocks(hidden, options["text_depth"], options, "text")
    pooled = MaskedMean(name="mean_over_tokens")([hidden, token_ids])
    embeddings = keras.layers.Dense(options["embedding_dim"], use_bias=False,
                                    name="text_projection")(pooled)
    return keras.Model(token_ids, embeddings, name="text_encoder")


def build_clip(vocabulary_size: int, *, max_length: int = text.SEQUENCE_LENGTH,
               temperature: float = INITIAL_TEMPERATURE, learn_temperature: bool = True,
               learning_rate: float = CLIP_LEARNING_RATE, image_shape=(64, 64, 3), **options):
    """The dual encoder, compiled: ``[images, token_ids]`` -> logits (batch, batch), trained
    with ``ContrastiveLoss`` on the batch's caption ids. The encoders are the sub-models
    ``image_encoder`` and ``text_encoder`` (``model.get_layer(...)``), the temperature is
    the layer ``logits``. ``options`` override ``CLIP_DEFAULTS``. Introduced in notebook 07.
    """
    image_encoder = build_image_encoder(image_shape, **options)
    text_encoder = build_text_encoder(vocabulary_size, max_length, **options)
    images = keras.Input(image_shape, name="images")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    logits = ContrastiveLogits(temperature, learn_temperature, name="logits")(
        [image_encoder(images), text_encoder(token_ids)])
    model = keras.Model([images, token_ids], logits, name="clip")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-4),
                  loss=ContrastiveLoss())
    return model


# --- using the shared space -----------------------------------------------------------------


def _in_batches(encoder, inputs, batch_size: int) -> np.ndarray:
    """The encoder called on slices of ``inputs`` (a direct call: ``predict`` would trace a
    new function for every new input size)."""
    if len(inputs) == 0:
        raise ValueError("need at least one input to embed, got none")
    return np.concatenate([ops.convert_to_numpy(encoder(inputs[start:start + batch_size],
                                                        training=False))
                           for start in range(0, len(inputs), batch_size)])


def embed_images(model, images, batch_size: int = 256) -> np.ndarray:
    """L2-normalised image embeddings (N, d) of uint8 (N, H, W, 3) images. Introduced in
    notebook 07."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    embeddings = _in_batches(model.get_layer("image_encoder"),
                             images.astype(np.float32) / 255.0, batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def embed_texts(model, token_ids, batch_size: int = 256) -> np.ndarray:
    """L2-normalised text embeddings (N, d) of token ids (N, L). Introduced in notebook 07."""
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids must be integers (N, L), got {token_ids.dtype} "
                         f"{token_ids.shape}")
    embeddings = _in_batches(model.get_layer("text_encoder"), token_ids.astype(np.int32),
                             batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def retrieval_recall(similarity, image_captions, text_captions, ks=(1, 5)) -> dict:
    """Recall@k in both directions from a similarity matrix (N_images, N_texts).

    Captions repeat (several images are "a small red circle"), so a hit is judged by text,
    not by index: image i is a hit at k when one of its k most similar texts *reads* the
    same as image i's caption; text j is a hit when one of its k most similar images has
    text j as its caption. Returns ``{"recall_at_k": {"image_to_text": r,
    "text_to_image": r}}`` for each k. Introduced in notebook 07.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    image_captions, text_captions = list(image_captions), list(text_captions)
    if similarity.shape != (len(image_captions), len(text_captions)):
        raise ValueError(f"similarity must be (N_images, N_texts) = ({len(image_captions)}, "
                         f"{len(text_captions)}) for the captions given, got {similarity.shape}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"ks must hold positive ints, got {k!r}")
    names = {caption: index for index, caption in enumerate(sorted(set(image_captions)
                                                                    | set(text_captions)))}
    image_ids = np.array([names[c] for c in image_captions])
    text_ids = np.array([names[c] for c in text_captions])
    # Stable sorts: among equal similarities the lower index comes first.
    texts_ranked = np.argsort(-similarity, axis=1, kind="stable")  # per image
    images_ranked = np.argsort(-similarity.T, axis=1, kind="stable")  # per text
    result = {}
    for k in ks:
        image_hits = (text_ids[texts_ranked[:, :k]] == image_ids[:, None]).any(axis=1)
        text_hits = (image_ids[images_ranked[:, :k]] == text_ids[:, None]).any(axis=1)
        result[f"recall_at_{k}"] = {"image_to_text": float(image_hits.mean()),
                                    "text_to_image": float(text_hits.mean())}
    return result


def attribute_classes() -> list[tuple[str, str, str]]:
    """Every (size, colour, shape) of the attributes level: 2 x 6 x 3 = 36 classes.
    Introduced in notebook 07."""
    return list(product(draw.SIZES, draw.COLOURS, draw.SHAPES))


def class_embeddings(model, classes, templates=PROMPT_TEMPLATES, root=None,
                     vocabulary=None) -> np.ndarray:
    """One L2-normalised embedding per class (C, d): each template filled in with the
    class's size, colour and shape, embedded, normalised, averaged over the templates and
    normalised again (prompt ensembling). Introduced in notebook 07."""
    if not templates:
        raise ValueError("templates must hold at least one caption template")
    prompts = [template.format(size=size, colour=colour, shape=shape)
               for size, colour, shape in classes for template in templates]
    embeddings = embed_texts(model, text.vectorize(prompts, root=root, vocabulary=vocabulary))
    mean = embeddings.reshape(len(classes), len(templates), -1).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def zero_shot_predict(model, images, classes, templates=PROMPT_TEMPLATES, root=None,
                      vocabulary=None) -> np.ndarray:
    """The index of the closest class prompt for each image (N,): zero-shot classification,
    no classifier trained. Introduced in notebook 07."""
    scores = embed_images(model, images) @ class_embeddings(model, classes, templates, root,
                                                            vocabulary).T
    return scores.argmax(axis=1)


def zero_shot_accuracy(model, images, scenes, templates=PROMPT_TEMPLATES, root=None,
                       vocabulary=None) -> float:
    """The fraction of attributes-level ``images`` whose closest prompt, among all 36
    classes, names their scene's true size, colour and shape. Introduced in notebook 07."""
    classes = attribute_classes()
    labels = np.array([classes.index(scene_class(scene)) for scene in scenes])
    if len(labels) != len(images):
        raise ValueError(f"images and scenes must have the same length, got {len(images)} and "
                         f"{len(labels)}")
    predictions = zero_shot_predict(model, images, classes, templates, root, vocabulary)
    return float((predictions == labels).mean())


def scene_class(scene: dict) -> tuple[str, str, str]:
    """(size, colour, shape) of an attributes-level scene record. Introduced in notebook 07."""
    obj = scene["objects"][0]
    return obj["size"], obj["colour"], obj["shape"]


# --- training -------------------------------------------------------------------------------


class SimilaritySnapshots(keras.callbacks.Callback):
    """Records the cosine-similarity matrix of fixed images and captions before training
    and after the epochs named in ``epochs`` (1-based): ``snapshots`` maps epoch -> matrix.
    Introduced in notebook 07."""

    def __init__(self, images, token_ids, epochs):
        super().__init__()
        self.images, self.token_ids, self.epochs = images, token_ids, set(epochs)
        self.snapshots: dict[int, np.ndarray] = {}

    def _take(self, epoch):
        self.snapshots[epoch] = (embed_images(self.model, self.images)
                                 @ embed_texts(self.model, self.token_ids).T)

    def on_train_begin(self, logs=None):
        self._take(0)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.epochs:
            self._take(epoch + 1)


def _clip_dataset(images, token_ids, caption_ids, batch_size, seed, flip):
    import tensorflow as tf  # noqa: PLC0415

    dataset = tf.data.Dataset.from_tensor_slices((images, token_ids.astype(np.int32),
                                                  caption_ids.astype(np.int32)))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_inputs(image_batch, ids, captions):
        image_batch = tf.cast(image_batch, tf.float32) / 255.0
        if flip:  # attribute captions say nothing about left, right, up or down
            image_batch = tf.image.random_flip_left_right(image_batch, seed=seed)
            image_batch = tf.image.random_flip_up_down(image_batch, seed=seed + 1)
        return (image_batch, ids), captions

    return dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def is_heldout(scene, heldout=HELDOUT_COMBINATIONS) -> bool:
    """Whether an attributes-level scene shows one of the ``heldout`` (colour, shape)
    combinations. Introduced in notebook 07."""
    obj = scene["objects"][0]
    return len(scene["objects"]) == 1 and (obj["colour"], obj["shape"]) in heldout


def train_clip(level: str = "attributes", epochs: int | None = None, seed: int = 0,
               root=None, *, heldout=HELDOUT_COMBINATIONS, batch_size: int = 64,
               learning_rate: float = CLIP_LEARNING_RATE,
               temperature: float = INITIAL_TEMPERATURE, learn_temperature: bool = True,
               flip: bool | None = None, train_size: int | None = None,
               callbacks: list | None = None, log=None, keep_model: bool = False,
               model_options: dict | None = None, builder=None) -> dict:
    """Train ``build_clip`` on the retrieval pairs of ``level`` and evaluate it on the test
    split: the CLI ``python -m mmcourse train --task retrieval``.

    At the attributes level the ``heldout`` colour-shape combinations are removed from
    training; zero-shot accuracy is then measured on the seen classes of the test split
    (``zero_shot_accuracy``) and on every image of a held-out combination in the train and
    test splits (``zero_shot_heldout_accuracy``), over all 36 prompts. Retrieval ranks the
    test split's captions (and images) against each other. ``flip`` (default: on at the
    attributes level) adds random flips, which change no attribute caption.

    ``builder`` (default ``build_clip``) builds the model with ``build_clip``'s arguments;
    notebook 11 passes KerasHub's CLIP (``hub_clip.build_hub_clip``).

    Returns a JSON-ready dict (plus ``model`` with ``keep_model``). Introduced in notebook 07.
    """
    from mmcourse.seeding import seed_everything  # noqa: PLC0415

    if level not in data.LEVELS:
        raise ValueError(f"level must be one of {data.LEVELS}, got {level!r}")
    epochs = CLIP_EPOCHS[level] if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    heldout = tuple(tuple(pair) for pair in heldout) if level == "attributes" else ()
    for colour, shape in heldout:
        if colour not in draw.COLOURS or shape not in draw.SHAPES:
            raise ValueError(f"heldout must hold (colour, shape) pairs of the course data, got "
                             f"{(colour, shape)!r}")
    log = log or (lambda message: None)
    root = store.ensure_data(root)
    seed_everything(seed)
    vocabulary = text.load_vocabulary(root)

    def split(name):
        images, captions, _ = data.load_arrays("retrieval", level, name, root=root)
        scenes = data.load_records("scenes", level, name, root=root)
        return images, captions, scenes

    train_images, train_captions, train_scenes = split("train")
    train_heldout = np.array([is_heldout(s, heldout) for s in train_scenes], bool)
    keep = ~train_heldout
    if train_size is not None:
        keep &= np.cumsum(keep) <= train_size
    names = sorted(set(train_captions))
    caption_ids = np.array([names.index(c) for c in train_captions])
    token_ids = text.vectorize(train_captions, vocabulary=vocabulary)
    dataset = _clip_dataset(train_images[keep], token_ids[keep], caption_ids[keep],
                            batch_size, seed, level == "attributes" if flip is None else flip)

    model = (builder or build_clip)(len(vocabulary), temperature=temperature,
                                    learn_temperature=learn_temperature,
                                    learning_rate=learning_rate, **(model_options or {}))
    steps = math.ceil(int(keep.sum()) / batch_size)
    model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, (epochs - 1) * steps), warmup_target=learning_rate,
        warmup_steps=steps, alpha=0.02)

    def log_epoch(epoch, logs):
        log(f"[retrieval/{level}] epoch {epoch + 1}/{epochs}  loss {logs['loss']:.4f}  "
            f"temperature {model.get_layer('logits').temperature:.4f}")

    log(f"training CLIP on {level}: {model.count_params():,} parameters, {int(keep.sum())} "
        f"pairs, {epochs} epochs, seed {seed}")
    start = time.perf_counter()
    history = model.fit(dataset, epochs=epochs, verbose=0, shuffle=False, callbacks=[
        keras.callbacks.LambdaCallback(on_epoch_end=log_epoch), *(callbacks or [])])
    train_seconds = time.perf_counter() - start

    test_images, test_captions, test_scenes = split("test")
    test_seen = np.array([not is_heldout(s, heldout) for s in test_scenes], bool)
    similarity = (embed_images(model, test_images)
                  @ embed_texts(model, text.vectorize(test_captions, vocabulary=vocabulary)).T)
    seen_captions = [c for c, seen in zip(test_captions, test_seen, strict=True) if seen]
    result = {"task": "retrieval", "level": level,
              **retrieval_recall(similarity[test_seen][:, test_seen], seen_captions,
                                 seen_captions),
              "retrieval_pairs": int(test_seen.sum()),
              "hit_rule": "captions repeat, so a retrieved caption (or image) is a hit when "
                          "its caption text equals the query's",
              "retrieval_scope": "the test pairs of the combinations seen in training; "
                                 "recall_with_heldout adds the held-out ones"}
    result["recall_with_heldout"] = retrieval_recall(similarity, test_captions, test_captions)
    if level == "attributes":
        heldout_images = np.concatenate([test_images[~test_seen], train_images[train_heldout]])
        heldout_scenes = ([s for s, seen in zip(test_scenes, test_seen, strict=True) if not seen]
                          + [s for s, out in zip(train_scenes, train_heldout, strict=True) if out])
        seen_scenes = [s for s, seen in zip(test_scenes, test_seen, strict=True) if seen]
        result.update(
            zero_shot_accuracy=zero_shot_accuracy(model, test_images[test_seen], seen_scenes,
                                                  vocabulary=vocabulary),
            zero_shot_heldout_accuracy=zero_shot_accuracy(model, heldout_images, heldout_scenes,
                                                          vocabulary=vocabulary)
            if heldout_scenes else None,
            chance=1 / len(attribute_classes()), zero_shot_classes=len(attribute_classes()),
            heldout_combinations=[list(pair) for pair in heldout],
            heldout_examples=len(heldout_scenes))
    else:  # a caption names every object: no fixed set of classes to prompt
        result.update(zero_shot_accuracy=None, zero_shot_heldout_accuracy=None,
                      chance=1 / len(set(test_captions)), zero_shot_classes=None,
                      heldout_combinations=[], heldout_examples=0)
    result.update(
        params=int(model.count_params()), train_seconds=train_seconds,
        epochs_run=len(history.history["loss"]), seed=seed, batch_size=batch_size,
        learning_rate=learning_rate, temperature=model.get_layer("logits").temperature,
        learn_temperature=learn_temperature, train_examples=int(keep.sum()),
        test_examples=len(test_images),
        history={name: [float(v) for v in values] for name, values in history.history.items()})
    log(f"[retrieval/{level}] image->text recall@1 {result['recall_at_1']['image_to_text']:.3f}"
        f" in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
