"""Video-text matching at toy scale: a temporal model against frame averaging (notebook 13).

Both models read each of the 8 frames with the same small CNN (per-frame features, as
video models built on image encoders do) and the statement with the text encoder of
``mmcourse.clip``; they differ only in how they combine the frames over time:

- ``average``: the mean of the 8 frame features. A mean does not depend on the frames'
  order, so a clip and the same clip played backwards give the same features: this
  baseline cannot tell "moves left, then up" from "moves down, then right";
- ``temporal``: a learned position embedding per frame (frame 0, 1, ...), one transformer
  block of self-attention over the 8 frames, then the mean. The positions make the result
  depend on the order, and the attention lets frame t compare itself with the others.

The video and text vectors v and t are fused as [v, t, v * t] and an MLP gives the
probability that the statement is true.
"""

from __future__ import annotations

import time

import numpy as np

from mmcourse.data import text
from mmcourse.data import video as video_data

FUSIONS = ("temporal", "average")
VIDEO_EPOCHS = 20
#: Adam's step. At 2e-3 the temporal model stalled on a plateau where it knew the motion
#: only, and read the shapes on no seed of 3; at 5e-4 it reads them (notebook 13,
#: ``docs/results/video_table_lr2e-3.jsonl`` against ``video_table.jsonl``).
VIDEO_LEARNING_RATE = 5e-4
SEQUENCE_LENGTH = 8  # "the red circle moves left then up" is 7 tokens
#: Tokens per statement by language (each Han character a token): the longest Chinese one,
#: 品红色三角形向左移动，然后向上移动, has 16.
SEQUENCE_LENGTHS = {"en": SEQUENCE_LENGTH, "zh": 16}
WIDTH = 64
#: Channels of the coarse *where* map (4 x 4 of them) beside the 32 of *what*.
WHERE_CHANNELS = 8


def build_vocabulary() -> list[str]:
    """The tokens of every statement the video data can make, English and Chinese.
    Introduced in notebook 13."""
    from mmcourse.data import draw

    paths = [(d,) for d in video_data.DIRECTIONS] + [
        (a, b) for a in video_data.DIRECTIONS for b in video_data.DIRECTIONS
        if b not in (a, video_data.OPPOSITE[a])]
    statements = [video_data.statement(colour, shape, path, language)
                  for colour in draw.COLOURS for shape in draw.SHAPES for path in paths
                  for language in ("en", "zh")]
    return text.build_vocabulary(statements)


def vectorize(statements, sequence_length: int = SEQUENCE_LENGTH) -> np.ndarray:
    """Token ids int32 (N, ``sequence_length``; ``SEQUENCE_LENGTHS`` gives each language's).
    Introduced in notebook 13."""
    return text.vectorize(statements, vocabulary=build_vocabulary(),
                          sequence_length=sequence_length)


def build_video_encoder(fusion: str = "temporal", frames: int = video_data.FRAMES,
                        size: int = video_data.FRAME_SIZE):
    """uint8-valued frames (batch, T, H, W, 3) -> a video vector (batch, 64): the per-frame
    CNN (two stride-2 3x3 convolutions; the 8 x 8 grid's maximum, which says *what* the shape
    is, beside a coarse map of *where* it is: 8 channels (a 1 x 1 convolution) on a 4 x 4 grid
    (2 x 2 average pooling), 128 numbers; a dense layer), then ``average`` or ``temporal``
    pooling over time (see the module). The map is coarse on purpose: the whole 8 x 8 x 32
    grid (2,048 numbers) beside 32 for *what* drowned colour and shape, and the temporal model
    stayed at chance on attribute statements (notebook 13, the git history of
    ``docs/results/video_table.jsonl``). Introduced in notebook 13."""
    import keras

    from mmcourse.blocks import TransformerBlock
    from mmcourse.clip import ClassOutput, ClassTokenAndPositions

    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    videos = keras.Input((frames, size, size, 3), name="frames")
    frame = keras.Input((size, size, 3), name="frame")
    grid = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="centre")(frame)
    grid = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                               name="conv1")(grid)
    grid = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu",
                               name="conv2")(grid)
    what = keras.layers.GlobalMaxPooling2D(name="what")(grid)  # its colour and shape
    where = keras.layers.Conv2D(WHERE_CHANNELS, 1, activation="relu", name="where_channels")(grid)
    where = keras.layers.AveragePooling2D(2, name="where_coarse")(where)
    where = keras.layers.Flatten(name="where")(where)  # a 4 x 4 map in order: the shape's place
    frame_vector = keras.layers.Dense(WIDTH, activation="relu", name="frame_vector")(
        keras.layers.Concatenate(name="what_and_where")([what, where]))
    frame_cnn = keras.Model(frame, frame_vector, name="frame_cnn")
    features = keras.layers.TimeDistributed(frame_cnn, name="per_frame")(videos)
    if fusion == "temporal":
        features = ClassTokenAndPositions(name="class_and_frame_positions")(features)
        features = TransformerBlock(4, 16, 128, name="temporal_attention")(features)
        features = keras.layers.LayerNormalization(name="temporal_norm")(features)
        pooled = ClassOutput(name="class_output")(features)
    else:
        pooled = keras.layers.GlobalAveragePooling1D(name="mean_over_frames")(features)
    return keras.Model(videos, pooled, name=f"video_encoder_{fusion}")


def build_video_matcher(fusion: str = "temporal", vocabulary_size: int | None = None,
                        learning_rate: float = VIDEO_LEARNING_RATE,
                        sequence_length: int = SEQUENCE_LENGTH):
    """The match model, compiled: ``[frames (batch, 8, 32, 32, 3), token_ids (batch, 8)]``
    -> the probability that the statement is true (batch, 1), with binary cross-entropy and
    accuracy. Introduced in notebook 13."""
    import keras

    vocabulary_size = vocabulary_size or len(build_vocabulary())
    video_encoder = build_video_encoder(fusion)
    token_ids_in = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(vocabulary_size, 32, name="token_embedding")(token_ids_in)
    words_in_order = keras.layers.Flatten(name="words_in_order")(embedded)
    text_encoder = keras.Model(token_ids_in, keras.layers.Dense(
        WIDTH, activation="relu", name="text_vector")(words_in_order), name="text_encoder")
    videos = keras.Input((video_data.FRAMES, video_data.FRAME_SIZE, video_data.FRAME_SIZE, 3),
                         name="frames")
    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    # Both vectors on one scale, so that the product v * t does not start tiny (notebook 04).
    v = keras.layers.LayerNormalization(name="video_norm")(video_encoder(videos))
    t = keras.layers.LayerNormalization(name="text_norm")(text_encoder(token_ids))
    fused = keras.layers.Concatenate(name="fuse")([v, t, keras.layers.Multiply()([v, t])])
    hidden = keras.layers.Dense(128, activation="relu", name="hidden")(fused)
    probability = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    model = keras.Model([videos, token_ids], probability, name=f"video_match_{fusion}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def _inputs(videos, records, language):
    key = "statement" if language == "en" else "statement_zh"
    clips = np.array([r["clip"] for r in records])
    return [videos[clips], vectorize([r[key] for r in records], SEQUENCE_LENGTHS[language])], \
        np.array([r["label"] for r in records], np.float32)


def _accuracy_by(probabilities, records, field: str, values) -> tuple[dict, np.ndarray]:
    """Match accuracy (probability > 0.5 means "true") per value of ``records[field]``, in
    the order of ``values``, and the per-record correctness."""
    probabilities = np.asarray(probabilities).reshape(-1)
    if len(probabilities) != len(records):
        raise ValueError(f"probabilities and records must have the same length, got "
                         f"{len(probabilities)} and {len(records)}")
    correct = (probabilities > 0.5) == np.array([r["label"] == 1 for r in records])
    groups = np.array([r[field] for r in records])
    return ({value: float(correct[groups == value].mean())
             for value in values if np.any(groups == value)}, correct)


def accuracy_by_kind(probabilities, records) -> dict:
    """Match accuracy (probability > 0.5 means "true") per statement kind, and overall as
    ``all``. Introduced in notebook 13."""
    result, correct = _accuracy_by(probabilities, records, "kind",
                                   video_data.STATEMENT_KINDS)
    result["all"] = float(correct.mean())
    return result


def accuracy_by_change(probabilities, records) -> dict:
    """Match accuracy per ``change`` of the pair (``video_data.CHANGES``): the attribute
    statements split into ``colour`` and ``shape``. Introduced in notebook 13."""
    return _accuracy_by(probabilities, records, "change", video_data.CHANGES)[0]


def train_video(fusion: str = "temporal", seed: int = 0, epochs: int = VIDEO_EPOCHS,
                train_clips: int | None = None, test_clips: int | None = None,
                language: str = "en", batch_size: int = 32, log=None,
                keep_model: bool = False,
                learning_rate: float = VIDEO_LEARNING_RATE) -> dict:
    """Train ``build_video_matcher(fusion)`` on generated clips (in memory, seeded) and
    score the test split: the CLI ``python -m mmcourse train --task match --modality video
    --fusion temporal|average``. Returns a JSON-ready dict with ``test_accuracy`` and
    ``accuracy_by_type`` (``order``, ``direction``, ``attribute``), ``accuracy_by_change``
    (the attribute ones split into ``colour`` and ``shape``), plus ``model`` with
    ``keep_model``. ``learning_rate`` is Adam's (``VIDEO_LEARNING_RATE``). Introduced in
    notebook 13."""
    from mmcourse.seeding import seed_everything

    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
            or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    log = log or (lambda message: None)
    seed_everything(seed)
    train_videos, train_records = video_data.make_split("train", seed, train_clips)
    test_videos, test_records = video_data.make_split("test", seed, test_clips)
    model = build_video_matcher(fusion, learning_rate=learning_rate,
                                sequence_length=SEQUENCE_LENGTHS[language])
    inputs, labels = _inputs(train_videos, train_records, language)
    log(f"training the {fusion} video model on {len(labels)} statements about "
        f"{len(train_videos)} clips: {model.count_params():,} parameters, {epochs} epochs, "
        f"seed {seed}")
    start = time.perf_counter()
    history = model.fit(inputs, labels, batch_size=batch_size, epochs=epochs, shuffle=True,
                        verbose=0)
    train_seconds = time.perf_counter() - start
    test_inputs, _ = _inputs(test_videos, test_records, language)
    probabilities = model.predict(test_inputs, batch_size=256, verbose=0)
    by_kind = accuracy_by_kind(probabilities, test_records)
    result = {"task": "match", "modality": "video", "fusion": fusion,
              "test_accuracy": by_kind.pop("all"), "accuracy_by_type": by_kind,
              "accuracy_by_change": accuracy_by_change(probabilities, test_records),
              "chance": 0.5, "params": int(model.count_params()),
              "train_seconds": train_seconds, "seed": seed, "epochs": epochs,
              "language": language, "train_examples": len(labels),
              "test_examples": len(test_records),
              "loss": [float(v) for v in history.history["loss"]]}
    log(f"[match/video/{fusion}] test accuracy {result['test_accuracy']:.3f}, order "
        f"{by_kind.get('order', float('nan')):.3f}, in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
