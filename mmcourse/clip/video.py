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

The models take the clips' shape (``frames``, ``size``) and the vocabulary size from their
caller: the course's clips (``mmcourse.data.video``), their statements' tokens, the scores
and the trainer are ``mmcourse.train.video``.
"""

from __future__ import annotations

FUSIONS = ("temporal", "average")
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


def build_video_encoder(fusion: str = "temporal", *, frames: int, size: int):
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


def build_video_matcher(fusion: str = "temporal", *, vocabulary_size: int, frames: int,
                        size: int, learning_rate: float = VIDEO_LEARNING_RATE,
                        sequence_length: int = SEQUENCE_LENGTH):
    """The match model, compiled: ``[frames (batch, frames, size, size, 3), token_ids (batch,
    sequence_length)]`` (the course's clips: 8 frames of 32 x 32, 8 tokens) -> the probability
    that the statement is true (batch, 1), with binary cross-entropy and accuracy. Introduced
    in notebook 13."""
    import keras

    video_encoder = build_video_encoder(fusion, frames=frames, size=size)
    token_ids_in = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(vocabulary_size, 32, name="token_embedding")(token_ids_in)
    words_in_order = keras.layers.Flatten(name="words_in_order")(embedded)
    text_encoder = keras.Model(token_ids_in, keras.layers.Dense(
        WIDTH, activation="relu", name="text_vector")(words_in_order), name="text_encoder")
    videos = keras.Input((frames, size, size, 3), name="frames")
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
