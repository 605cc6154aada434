"""The course's models: encoders, fusion models and the article's model (notebook 04).

Keras and TensorFlow are imported inside the functions, so ``import mmcourse.matcher.model``
stays light.

- ``build_image_encoder``: the course's small CNN (also shown in notebook 02).
- ``build_text_encoder``: ``Embedding(mask_zero=True)`` followed by an LSTM.
- ``build_model(task, fusion)``: image encoder + text encoder + a fusion method from
  ``mmcourse.matcher.fusion`` + a small head, compiled.
- ``build_article_model()``: the source article's model, with only its bugs fixed.

The matcher's input contract and files (``check_inputs``, ``predict_batch``,
``load_matcher``, ``raw_input_model``) are in ``mmcourse.matcher.io``.
"""

from __future__ import annotations

from mmcourse.configs import with_options
from mmcourse.matcher.config import (  # noqa: F401  (re-exported)
    IMAGE_SHAPE,
    MODEL_DEFAULTS,
    POOLINGS,
    RELATIONAL_DEFAULTS,
    MatcherConfig,
)
from mmcourse.names import (  # noqa: F401  (re-exported)
    FUSIONS,
    MODEL_TASKS,
    OBJECT_FUSIONS,
    RELATIONAL_FUSIONS,
)

TASKS = MODEL_TASKS


def build_image_encoder(filters=(16, 32, 32), kernel_size: int = 3, pooling: str = "avg",
                        output: str = "vector", image_shape=IMAGE_SHAPE,
                        batch_norm: bool = False, normalize: bool = False,
                        coordinates: bool = False, name: str = "image_encoder"):
    """The course's small CNN: a functional ``keras.Model`` from an image batch
    (B, 64, 64, 3) float32 in [0, 1] to features.

    A ``Rescaling`` layer named ``centre`` first maps [0, 1] to [-1, 1], so the grey
    background is close to 0 and the first ReLUs start out silent on it. Then each entry
    of ``filters`` adds a ``Conv2D(f, kernel_size, strides=2, padding="same",
    activation="relu")`` named ``conv1``, ``conv2``, ...; every one halves the height and
    width, so with the default three layers the 64x64 image becomes an 8x8 grid of
    32-dimensional region features (each region sees a 15x15 pixel receptive field).
    ``batch_norm`` puts a ``BatchNormalization`` between each convolution and its ReLU.
    ``coordinates`` appends each pixel's x and y as two more input channels
    (``mmcourse.blocks.CoordinateChannels``, notebook 06).

    ``output``:
      - ``"vector"``: the grid pooled by ``pooling`` (see ``pool_regions``: ``"avg"``
        (B, C), ``"max"`` (B, C) or ``"avgmax"`` (B, 2C)), followed by a
        ``LayerNormalization`` named ``norm`` when ``normalize``;
      - ``"grid"``: (B, H', W', filters[-1]), the region features (for attention, FiLM);
      - ``"both"``: the list ``[grid, vector]``.

    Parameters: sum over conv layers of (k*k*C_in + 1) * C_out, 14,336 with the
    defaults, plus 2 * width for ``normalize``. ``build_model`` uses
    ``pooling="avgmax", normalize=True``.
    Introduced in notebook 02 (feature maps); used in notebook 04.
    """
    import keras  # noqa: PLC0415

    if output not in ("vector", "grid", "both"):
        raise ValueError(f"output must be 'vector', 'grid' or 'both', got {output!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    filters = tuple(filters)
    if not filters or not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"filters must be a non-empty sequence of positive ints, got {filters!r}")
    image_shape = tuple(image_shape)
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape!r}")

    image = keras.Input(shape=image_shape, name="image")
    grid = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(image)  # [0, 1] -> [-1, 1]
    if coordinates:  # notebook 06: every pixel also gets its x and y
        from mmcourse.blocks import CoordinateChannels  # noqa: PLC0415

        grid = CoordinateChannels(name="coordinates")(grid)
    for index, count in enumerate(filters, start=1):
        if batch_norm:
            grid = keras.layers.Conv2D(count, kernel_size, strides=2, padding="same",
                                       use_bias=False, name=f"conv{index}")(grid)
            grid = keras.layers.BatchNormalization(name=f"bn{index}")(grid)
            grid = keras.layers.ReLU(name=f"relu{index}")(grid)
        else:
            grid = keras.layers.Conv2D(count, kernel_size, strides=2, padding="same",
                                       activation="relu", name=f"conv{index}")(grid)
    if output == "grid":
        return keras.Model(image, grid, name=name)
    vector = pool_regions(grid, pooling)
    if normalize:
        vector = keras.layers.LayerNormalization(name="norm")(vector)
    outputs = vector if output == "vector" else [grid, vector]
    return keras.Model(image, outputs, name=name)


def pool_regions(grid, pooling: str = "avgmax", name: str = "pool"):
    """Pool a region grid (B, H, W, C) into a vector: ``"avg"`` (B, C), ``"max"`` (B, C)
    or ``"avgmax"``, both side by side (B, 2C). The average keeps how much of each
    feature there is (colour, size); the maximum keeps whether a feature occurs at all,
    however small the object (shape). Introduced in notebook 04."""
    import keras  # noqa: PLC0415

    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)(grid)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name)(grid)
    if pooling == "avgmax":
        average = keras.layers.GlobalAveragePooling2D(name=f"{name}_avg")(grid)
        maximum = keras.layers.GlobalMaxPooling2D(name=f"{name}_max")(grid)
        return keras.layers.Concatenate(name=name)([average, maximum])
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


def build_text_encoder(vocabulary_size: int, embedding_dim: int = 32, units: int = 32,
                       sequence_length: int | None = None, return_sequences: bool = False,
                       normalize: bool = False, name: str = "text_encoder"):
    """The course's text encoder: ``Embedding(vocabulary_size, embedding_dim,
    mask_zero=True)`` then ``LSTM(units)``, a functional ``keras.Model`` from token ids
    (B, L) int32 (0 = padding) to a vector (B, units), or to (B, L, units) with
    ``return_sequences``.

    ``mask_zero=True`` makes the LSTM skip the padding: a caption gives the same vector
    however much padding follows it. ``normalize`` adds a ``LayerNormalization`` named
    ``norm``. Parameters: vocabulary_size * embedding_dim + 4 (embedding_dim + units + 1)
    units (+ 2 units for ``normalize``). Introduced in notebook 03; used in notebook 04.
    """
    import keras  # noqa: PLC0415

    for arg, value in (("vocabulary_size", vocabulary_size), ("embedding_dim", embedding_dim),
                       ("units", units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    if vocabulary_size < 2:
        raise ValueError(f"vocabulary_size must be >= 2 (index 0 is padding), got "
                         f"{vocabulary_size}")
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True,
                                      name="embedding")(token_ids)
    encoded = keras.layers.LSTM(units, return_sequences=return_sequences, name="lstm")(embedded)
    if normalize:
        encoded = keras.layers.LayerNormalization(name="norm")(encoded)
    return keras.Model(token_ids, encoded, name=name)


def _check_choice(arg: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {arg} {value!r}; valid names: {', '.join(valid)}")


def _default_vocabulary_size(root) -> int:
    from mmcourse.data import text  # noqa: PLC0415

    return len(text.load_vocabulary(root))


def build_model(task: str = "match", fusion: str = "concat",
                config: MatcherConfig | None = None, *, vocabulary_size: int | None = None,
                vocabulary=None, num_answers: int | None = None,
                sequence_length: int | None = None, root=None, **options):
    """A compiled two-input model: image encoder + text encoder + ``fusion`` + head.

    Inputs ``image`` (B, 64, 64, 3) float32 in [0, 1] and ``token_ids`` (B, L) int32.
    ``task="match"``: one sigmoid unit (does the text describe the image?), binary
    cross-entropy. ``task="qa"``: softmax over ``num_answers`` answer words (default:
    ``len(mmcourse.data.text.answer_vocabulary(root))``), sparse categorical cross-entropy.
    ``fusion`` is one of ``FUSIONS`` (see ``mmcourse.matcher.fusion`` for each formula);
    ``image`` and ``text`` are the unimodal baselines (the other input is ignored).
    ``film`` and ``attention`` work on the CNN's 8x8 region grid, the others on the
    pooled image vector (``pooling``, default average and maximum side by side, 2 x 32
    wide). With ``normalize`` (default) both encoders end in a ``LayerNormalization``,
    so the two vectors reach the fusion on the same scale: without it the product in
    ``multiply`` starts tiny and every fusion learns several times slower.
    Head: ``Dense(hidden_units, relu)`` then the output layer.

    Notebook 06 adds the relational models (``RELATIONAL_FUSIONS``), and options whose
    default (None) depends on the model: ``filters``, ``width``, ``coordinates`` (CoordConv
    channels), ``batch_norm`` and ``anchored`` (``MODEL_DEFAULTS``, overridden by
    ``RELATIONAL_DEFAULTS``). ``cnn_mlp``, the CNN+MLP baseline of Santoro et al. (2017):
    the whole region grid, flattened, beside the question, then ``Dense(width)``;
    ``relation_network``: a 4x4 grid of region tokens with coordinates,
    ``RelationModule(width)`` over all 256 pairs conditioned on the question;
    ``anchored``: region tokens with coordinates projected to ``width``, one
    self-attention block over the regions, then the question as one query token through
    ``hops`` cross-attention blocks (``num_heads`` heads of ``key_dim``; ``dropout`` in the
    attention), the second an ``AnchoredAttention`` when ``anchored``: hop 1 reads the
    object the question names, hop 2 finds the object at the asked distance from it;
    ``transformer``: the same region tokens and self-attention block, then each region
    says which object, if any, is centred in it (``Dense(12)`` named ``cells``, trained
    beside the answers on the generator's cell targets by ``cell_trainer``), and the
    object-token read-out of the ``objects`` model reads those regions as objects
    (``object_relations.CellObjects``, ``ObjectPairReadout`` over word slots, and the
    counts).
    ``frequencies`` sets the coordinates' sines and cosines (0: x and y only).
    ``objects`` (``OBJECT_FUSIONS``) takes no pixels: its first input, ``objects``, holds
    the object tokens of a classical detector (``mmcourse.data.objects``), float32
    (B, ``objects.MAX_OBJECTS``, ``objects.FEATURES``), or ``image_shape`` when it is given
    as (slots, features); ``object_relations.match_features`` replaces the image encoder and
    the fusion: the question in word slots, a relation network over the present pairs
    (``ObjectRelationModule(width)``, width 64 by default, g also given each pair's offset and
    distance) to count, and a read-out of the two named objects (``ObjectPairReadout``; for
    qa it also reads the named object's nearest and furthest neighbours).
    ``vocabulary_size`` is taken from the vocabulary: ``len(vocabulary)`` when a token list
    is given (your own data, notebook 09), else the course vocabulary's size; a
    ``vocabulary_size`` that disagrees with ``vocabulary`` is a ``ValueError``. Optimizer: Adam.
    Unknown names raise a ``ValueError`` that lists the valid ones.

    The architecture is ``config``, a ``MatcherConfig`` (default: its defaults), with
    ``options`` (its field names as keywords: ``hidden_units=128``) replacing fields; the
    data decide the rest: ``vocabulary_size`` or ``vocabulary``, ``num_answers``,
    ``sequence_length`` (None: any length) and ``root`` (the course data, for the defaults).
    Introduced in notebook 04.
    """
    import keras  # noqa: PLC0415

    from mmcourse.matcher import fusion as fusion_layers  # noqa: PLC0415

    _check_choice("task", task, TASKS)
    _check_choice("fusion", fusion, FUSIONS)
    config = with_options(MatcherConfig, config, options).resolved(fusion)
    if vocabulary is not None:
        if isinstance(vocabulary, (str, int)):
            raise TypeError(f"vocabulary must be a list of tokens (\"\", \"[UNK]\", ...), got "
                            f"{type(vocabulary).__name__}; pass a size as vocabulary_size=")
        if vocabulary_size is not None and vocabulary_size != len(vocabulary):
            raise ValueError(f"vocabulary_size={vocabulary_size} disagrees with the vocabulary "
                             f"of {len(vocabulary)} tokens: pass only vocabulary=")
        vocabulary_size = len(vocabulary)
    if vocabulary_size is None:
        vocabulary_size = _default_vocabulary_size(root)
    if task == "qa" and num_answers is None:
        from mmcourse.data import text  # noqa: PLC0415

        num_answers = len(text.answer_vocabulary(root))

    if fusion in OBJECT_FUSIONS:
        return _objects_model(task, config, vocabulary_size, num_answers, sequence_length)
    if fusion == "transformer":
        return _cell_transformer_model(task, config, vocabulary_size, num_answers,
                                       sequence_length)
    image = keras.Input(shape=config.image_shape, name="image")
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    on_grid = fusion in ("film", "attention", *RELATIONAL_FUSIONS)
    image_encoder = build_image_encoder(config.filters, image_shape=config.image_shape,
                                        pooling=config.pooling, batch_norm=config.batch_norm,
                                        normalize=config.normalize,
                                        coordinates=config.coordinates,
                                        output="grid" if on_grid else "vector")
    text_encoder = build_text_encoder(vocabulary_size, config.embedding_dim, config.text_units,
                                      sequence_length=sequence_length,
                                      normalize=config.normalize)
    image_features = image_encoder(image)
    text_vector = text_encoder(token_ids)
    pair = [image_features, text_vector]
    units, heads = config.fusion_units, {"num_heads": config.num_heads, "key_dim": config.key_dim}
    if fusion == "image":
        fused = image_features
    elif fusion == "text":
        fused = text_vector
    elif fusion == "concat":
        fused = keras.layers.Concatenate(name="fusion")(pair)
    elif fusion in RELATIONAL_FUSIONS:
        fused = _relational_features(fusion, image_features, text_vector, config)
    elif fusion == "film":
        modulated = fusion_layers.FiLM(name="fusion")(pair)
        modulated = keras.layers.ReLU(name="film_relu")(modulated)
        fused = pool_regions(modulated, config.pooling)
    elif fusion == "attention":
        fused = fusion_layers.CrossAttentionFusion(units, **heads, name="fusion")(pair)
    elif fusion == "lowrank":
        fused = fusion_layers.LowRankFusion(units, rank=config.rank, name="fusion")(pair)
    elif fusion == "multiply":
        fused = fusion_layers.MultiplyFusion(units, activation=config.multiply_activation,
                                             name="fusion")(pair)
    else:
        layer = {"sum": fusion_layers.SumFusion, "gated": fusion_layers.GatedFusion,
                 "bilinear": fusion_layers.TensorFusion}[fusion]
        fused = layer(units, name="fusion")(pair)
    return _head(task, [image, token_ids], fused, f"{task}_{fusion}", config, num_answers)


_LOSSES = {"match": "binary_crossentropy", "qa": "sparse_categorical_crossentropy"}
_OUTPUTS = {"match": "match", "qa": "answer"}


def _head(task, inputs, fused, name, config, num_answers):
    """The head every course model shares: a hidden layer, then a match probability or an
    answer distribution, compiled with Adam and its loss."""
    import keras  # noqa: PLC0415

    hidden = keras.layers.Dense(config.hidden_units, activation="relu", name="hidden")(fused)
    if task == "match":
        output = keras.layers.Dense(1, activation="sigmoid", name="match")(hidden)
    else:
        output = keras.layers.Dense(num_answers, activation="softmax", name="answer")(hidden)
    model = keras.Model(inputs, output, name=name)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=_LOSSES[task],
                  metrics=["accuracy"])
    return model


def _relational_features(fusion: str, grid, question, config: MatcherConfig):
    """The fused vector of a relational model (see ``build_model``) from the region grid
    (B, H, W, C) and the question vector (B, d_q), with ``config`` resolved for ``fusion``.
    Introduced in notebook 06."""
    import keras  # noqa: PLC0415

    from mmcourse import blocks as relations  # noqa: PLC0415

    width, num_heads, key_dim, dropout = (config.width, config.num_heads, config.key_dim,
                                          config.dropout)

    if fusion == "cnn_mlp":
        flat = keras.layers.Flatten(name="flatten")(grid)
        both = keras.layers.Concatenate(name="fusion")([flat, question])
        return keras.layers.Dense(width, activation="relu", name="mlp")(both)
    tokens = relations.RegionTokens(config.frequencies, name="regions")(grid)
    if fusion == "relation_network":
        return relations.RelationModule(width, name="fusion")([tokens, question])
    tokens = keras.layers.Dense(width, name="region_embedding")(tokens)
    tokens = relations.TransformerBlock(num_heads, key_dim, 2 * width, dropout,
                                        name="region_attention")(tokens)
    query = keras.layers.Dense(width, name="question_embedding")(question)
    query = keras.layers.Reshape((1, width), name="question_token")(query)
    for hop in range(1, config.hops + 1):
        if config.anchored and hop == 2:
            query = relations.AnchoredAttention(tuple(grid.shape[1:3]), num_heads, key_dim,
                                                2 * width, name=f"hop{hop}")([query, tokens])
        else:
            query = relations.TransformerBlock(num_heads, key_dim, 2 * width, dropout,
                                               name=f"hop{hop}")(query, tokens)
    return keras.layers.Flatten(name="fusion")(query)


def _objects_model(task, config: MatcherConfig, vocabulary_size, num_answers, sequence_length):
    """The ``objects`` fusion of ``build_model``: object tokens + question, compiled.
    Introduced in notebook 06."""
    import keras  # noqa: PLC0415

    from mmcourse.data import objects  # noqa: PLC0415
    from mmcourse.matcher import object_relations

    shape = config.image_shape
    if shape == IMAGE_SHAPE:
        shape = (objects.MAX_OBJECTS, objects.FEATURES)
    if len(shape) != 2 or shape[1] != objects.FEATURES:
        raise ValueError(f"image_shape for fusion 'objects' must be (slots, "
                         f"{objects.FEATURES}) object tokens (mmcourse.data.objects), got {shape}")
    tokens = keras.Input(shape=shape, name="objects")
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    fused = object_relations.match_features(tokens, token_ids, vocabulary_size,
                                            config.embedding_dim, config.width,
                                            objects.TOKEN_FEATURES.index("x"),
                                            read_neighbours=task == "qa")
    return _head(task, [tokens, token_ids], fused, f"{task}_objects", config, num_answers)


#: The ``transformer`` fusion's predictions per region (``object_relations.CellObjects``):
#: 1 + 6 colour logits, 3 shape logits and the centre's offset (dx, dy).
CELL_OUTPUTS = 12


def _cell_transformer_layers(task, config: MatcherConfig, vocabulary_size, num_answers):
    """The layers of the ``transformer`` fusion by name (see ``build_model``)."""
    import keras  # noqa: PLC0415

    from mmcourse import blocks as relations  # noqa: PLC0415
    from mmcourse.matcher import object_relations  # noqa: PLC0415

    width = config.width
    cell_objects = object_relations.CellObjects(name="cell_objects")
    # in this order: each layer's initial weights depend on when it is made
    layers = {
        "image_encoder": build_image_encoder(config.filters, image_shape=config.image_shape,
                                             batch_norm=config.batch_norm,
                                             coordinates=config.coordinates, output="grid"),
        "context": keras.layers.Conv2D(config.filters[-1], 3, padding="same",
                                       activation="relu", name="context"),
        "regions": relations.RegionTokens(config.frequencies, name="regions"),
        "region_embedding": keras.layers.Dense(width, name="region_embedding"),
        "region_attention": relations.TransformerBlock(config.num_heads, config.key_dim,
                                                       2 * width, config.dropout,
                                                       name="region_attention"),
        "cells": keras.layers.Dense(CELL_OUTPUTS, name="cells"),
        "cell_objects": cell_objects,
    }
    layers["word_embedding"], layers["word_slots"] = object_relations.statement_layers(
        vocabulary_size, config.embedding_dim)
    layers["pair"] = object_relations.ObjectPairReadout(
        width, centre_index=cell_objects.centre_index, read_neighbours=task == "qa", name="pair")
    layers["hidden"] = keras.layers.Dense(config.hidden_units, activation="relu", name="hidden")
    layers[_OUTPUTS[task]] = (
        keras.layers.Dense(1, activation="sigmoid", name="match") if task == "match"
        else keras.layers.Dense(num_answers, activation="softmax", name="answer"))
    return layers


def _cell_scene(layer, image):
    """Image (B, 64, 64, 3) -> cell predictions (B, 64, ``CELL_OUTPUTS``), with ``layer``
    (name -> layer) the ``transformer`` fusion's layers."""
    grid = layer("context")(layer("image_encoder")(image))
    tokens = layer("region_embedding")(layer("regions")(grid))
    return layer("cells")(layer("region_attention")(tokens))


def _cell_read(layer, task, cells, token_ids):
    """Cell predictions and the question's token ids -> the model's output."""
    import keras  # noqa: PLC0415

    tokens, counts = layer("cell_objects")(cells)
    words = layer("word_embedding")(token_ids)
    statement = keras.layers.Flatten()(layer("word_slots")([words, token_ids]))
    fused = keras.layers.Concatenate()([layer("pair")([tokens, statement]), counts])
    return layer(_OUTPUTS[task])(layer("hidden")(fused))


def _cell_transformer_model(task, config: MatcherConfig, vocabulary_size, num_answers,
                            sequence_length):
    """The ``transformer`` fusion of ``build_model``, compiled. Introduced in notebook 06."""
    import keras  # noqa: PLC0415

    layers = _cell_transformer_layers(task, config, vocabulary_size, num_answers)
    image = keras.Input(shape=config.image_shape, name="image")
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    output = _cell_read(layers.get, task, _cell_scene(layers.get, image), token_ids)
    model = keras.Model([image, token_ids], output, name=f"{task}_transformer")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=_LOSSES[task],
                  metrics=["accuracy"])
    return model


def cell_trainer(model, questions_per_scene: int, learning_rate=2e-3):
    """The trainer of a ``transformer`` model (notebook 06): the same layers, fitted on
    whole scenes with their cell targets. Inputs ``image`` (S, 64, 64, 3) and
    ``token_ids`` (S, ``questions_per_scene``, L); outputs ``{"answer": (S,
    questions_per_scene, ...), "cells": (S, 64, CELL_OUTPUTS)}`` (``"answer"`` for match
    too), the second fitted to ``mmcourse.data.cells`` targets with
    ``object_relations.CellLoss``. Each scene's image goes through the CNN and the region
    attention once for all its questions, which makes an epoch several times cheaper than
    one image per question. Compiled with Adam
    (``learning_rate``), the model's own loss for the answers, and their accuracy."""
    import keras  # noqa: PLC0415

    from mmcourse.matcher import object_relations  # noqa: PLC0415

    questions = int(questions_per_scene)
    if questions < 1:
        raise ValueError(f"questions_per_scene must be >= 1, got {questions_per_scene!r}")
    task = "match" if "match" in {layer.name for layer in model.layers} else "qa"
    length = model.inputs[1].shape[1]
    image = keras.Input(shape=model.inputs[0].shape[1:], name="image")
    token_ids = keras.Input(shape=(questions, length), dtype="int32", name="token_ids")
    cells = _cell_scene(model.get_layer, image)
    per_question = object_relations.SceneQuestions(questions, "repeat", name="per_question")
    flat_ids = object_relations.SceneQuestions(questions, "fold", name="questions")(token_ids)
    answers = _cell_read(model.get_layer, task, per_question(cells), flat_ids)
    answers = object_relations.SceneQuestions(questions, "unfold", name="per_scene")(answers)
    trainer = keras.Model([image, token_ids], {"answer": answers, "cells": cells},
                          name=f"{model.name}_trainer")
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss={"answer": _LOSSES[task], "cells": object_relations.CellLoss()},
                    metrics={"answer": ["accuracy"]})
    return trainer


def build_article_model(vocabulary_size: int | None = None, image_shape=IMAGE_SHAPE,
                        embedding_dim: int = 64, root=None):
    """The source article's model (its section 5.2), kept faithful, compiled as it was
    (``adam``, binary cross-entropy, accuracy):

    Conv2D(64, 3x3, relu) -> MaxPool(2) -> Conv2D(128, 3x3, relu) -> MaxPool(2) -> Flatten;
    LSTM(64); concatenate; Dense(128, relu) -> Dense(1, sigmoid).

    Only its bugs are fixed: an ``Embedding(vocabulary_size, embedding_dim,
    mask_zero=True)`` before the LSTM (the article fed 2-D token ids straight into it),
    and the imports are Keras 3's. The images are the course's 64x64 (the article used
    224x224, which would make its Flatten 30x wider). Its data pipeline and two-input
    ``fit`` are fixed in ``mmcourse.train.tasks``. Introduced in notebook 04.
    """
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    if vocabulary_size is None:
        vocabulary_size = _default_vocabulary_size(root)
    input_img = keras.Input(shape=tuple(image_shape), name="image")
    input_txt = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Conv2D(64, (3, 3), activation="relu")(input_img)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Conv2D(128, (3, 3), activation="relu")(x)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Flatten()(x)
    y = layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True)(input_txt)  # fix 1
    y = layers.LSTM(64)(y)
    combined = layers.concatenate([x, y])
    z = layers.Dense(128, activation="relu")(combined)
    output = layers.Dense(1, activation="sigmoid")(z)
    model = keras.Model(inputs=[input_img, input_txt], outputs=output, name="article_model")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
