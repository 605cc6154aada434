"""Contrastive language-audio pre-training (CLAP, Elizalde et al. 2023) at toy scale
(notebook 13).

The recipe of notebook 07's CLIP with a sound in place of the image:

- the audio front end is the by-hand log-mel spectrogram (``mmcourse.scratch``, equal to
  ``tf.signal``): 25 ms Hann windows every 10 ms, 64 mel bins from 50 Hz to 8 kHz;
- the audio encoder reads the log-mel as a one-channel image (frames x mel bins). The small
  CNN (``arch="cnn"``) pools frequency away but keeps 6 steps of time, which it flattens,
  so "a tone, then a click" and "a click, then a tone" stay apart (a global average over
  time would mix them up). ``arch="ast"`` is the Audio Spectrogram Transformer's design
  (Gong et al. 2021): 16 x 16 patches of the log-mel, a class token, positions and
  transformer blocks;
- the text encoder, the learned temperature and the symmetric contrastive loss are those
  of ``mmcourse.clip``.

The model reads log-mel features and token ids; it knows nothing of the course's clips. Their
captions' vocabulary, the scores and the trainer are ``mmcourse.train.clap``.
"""

from __future__ import annotations

import numpy as np

from mmcourse import scratch

#: The rate the front end and the models are built for: 16 kHz, as Whisper's (the course's
#: clips, ``mmcourse.data.audio``, are made at this rate unless told otherwise).
SAMPLE_RATE = 16000
#: The front end: 25 ms window and 10 ms hop at 16 kHz (Whisper's), 64 mel bins.
FRONT_END = {"frame_seconds": 0.025, "hop_seconds": 0.010, "num_mel_bins": 64,
             "lower_hz": 50.0, "upper_hz": 8000.0}
#: Centre and scale of the log-mel values (log energies of the course's clips lie in about
#: -14 .. 4), so the encoder sees numbers near [-1, 1].
LOG_MEL_CENTRE, LOG_MEL_SCALE = -5.0, 5.0
ARCHS = ("cnn", "ast")
CLAP_DEFAULTS = {"embedding_dim": 64, "width": 64, "text_depth": 1, "num_heads": 4,
                 "key_dim": 16, "hidden_units": 128}
CLAP_LEARNING_RATE = 2e-3
SEQUENCE_LENGTH = 8  # "a falling chirp, then a noise burst" is 7 tokens
#: Tokens per caption by language: each Han character is a token, and the longest Chinese
#: caption, 上升的滑音，然后下降的滑音, has 12.
SEQUENCE_LENGTHS = {"en": SEQUENCE_LENGTH, "zh": 12}


def log_mel_features(waveforms, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Scaled log-mel spectrograms float32 (N, frames, 64) of int16 clips (N, samples):
    ``scratch.log_mel_spectrogram`` with ``FRONT_END``, then (x - centre) / scale.
    Introduced in notebook 13."""
    waveforms = np.asarray(waveforms)
    if waveforms.ndim != 2 or waveforms.dtype != np.int16 or waveforms.shape[1] == 0:
        raise ValueError(f"waveforms must be int16 clips (N, samples) with samples > 0, got "
                         f"{waveforms.dtype} {waveforms.shape}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate != SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {SAMPLE_RATE} Hz, the rate the "
                         f"front end and models are built for, got {sample_rate!r}")
    frame = round(FRONT_END["frame_seconds"] * sample_rate)
    hop = round(FRONT_END["hop_seconds"] * sample_rate)
    signals = waveforms.astype(np.float32) / 32767.0  # int16 full scale -> [-1, 1]
    features = [scratch.log_mel_spectrogram(signal, sample_rate, frame, hop, 512,
                                            FRONT_END["num_mel_bins"], FRONT_END["lower_hz"],
                                            FRONT_END["upper_hz"]) for signal in signals]
    return ((np.stack(features) - LOG_MEL_CENTRE) / LOG_MEL_SCALE).astype(np.float32)


# --- the model ------------------------------------------------------------------------------


def build_audio_encoder(feature_shape, arch: str = "cnn", embedding_dim: int = 64, **options):
    """Log-mel (batch, frames, mels) -> embeddings (batch, embedding_dim).

    ``cnn``: three blocks of 3x3 convolutions with ReLU and 2x2 max pooling (16, 32, 64
    filters), then an average over the remaining frequency axis and pairs of time steps
    (98 frames -> 6 steps), flattened in order into a dense layer. ``ast``: the first frames cut to a
    multiple of 16, 16 x 16 patches (``clip.PatchEmbedding``), a class token and positions,
    two transformer blocks, the class token's output projected. Introduced in notebook 13.
    """
    import keras

    from mmcourse import clip
    from mmcourse.clip.model import transformer_blocks

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    options = {**CLAP_DEFAULTS, **options}
    features = keras.Input(tuple(feature_shape), name="log_mel")
    x = keras.layers.Reshape((*feature_shape, 1), name="as_image")(features)
    if arch == "cnn":
        for index, filters in enumerate((16, 32, 64)):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"conv{index + 1}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool{index + 1}")(x)
        x = keras.layers.AveragePooling2D((2, x.shape[2]), name="mean_over_mels")(x)
        x = keras.layers.Flatten(name="time_steps_in_order")(x)
        x = keras.layers.Dense(128, activation="relu", name="hidden")(x)
    else:
        frames = feature_shape[0] - feature_shape[0] % 16
        x = keras.layers.Cropping2D(((0, feature_shape[0] - frames), (0, 0)), name="crop")(x)
        x = clip.PatchEmbedding(16, options["width"], name="patches")(x)
        x = clip.ClassTokenAndPositions(name="class_and_positions")(x)
        x = transformer_blocks(x, 2, options, "ast")
        x = clip.ClassOutput(name="class_output")(x)
    embeddings = keras.layers.Dense(embedding_dim, use_bias=False, name="audio_projection")(x)
    return keras.Model(features, embeddings, name="audio_encoder")


def build_clap(feature_shape, vocabulary_size: int, arch: str = "cnn",
               learning_rate: float = CLAP_LEARNING_RATE,
               sequence_length: int = SEQUENCE_LENGTH, **options):
    """The audio-text dual encoder, compiled: ``[log_mel, token_ids]`` -> logits (batch,
    batch) with ``clip.ContrastiveLogits`` (learned temperature), trained with
    ``clip.ContrastiveLoss`` on the batch's caption ids. The sub-models are
    ``audio_encoder`` and ``text_encoder``. Introduced in notebook 13."""
    import keras

    from mmcourse import clip

    options = {**CLAP_DEFAULTS, **options}
    audio_encoder = build_audio_encoder(feature_shape, arch, **options)
    text_encoder = clip.build_text_encoder(vocabulary_size, sequence_length, **options)
    features = keras.Input(tuple(feature_shape), name="log_mel")
    token_ids = keras.Input((sequence_length,), dtype="int32", name="token_ids")
    logits = clip.ContrastiveLogits(name="logits")([audio_encoder(features),
                                                    text_encoder(token_ids)])
    model = keras.Model([features, token_ids], logits, name="clap")
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=1e-4),
                  loss=clip.ContrastiveLoss())
    return model


def embed_all(encoder, inputs, batch_size: int = 256) -> np.ndarray:
    """L2-normalised embeddings (N, d) of ``inputs`` by ``encoder``, in batches.
    Notebook 13."""
    from mmcourse.clip.shared_space import in_batches

    embeddings = in_batches(encoder, inputs, batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def embed_audio(model, features) -> np.ndarray:
    """L2-normalised audio embeddings (N, d) of log-mel features. Introduced in notebook 13."""
    return embed_all(model.get_layer("audio_encoder"), np.asarray(features, np.float32))
