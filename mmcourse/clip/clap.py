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
"""

from __future__ import annotations

import math
import time

import numpy as np

from mmcourse import scratch
from mmcourse.data import audio as audio_data
from mmcourse.data import text

#: The front end: 25 ms window and 10 ms hop at 16 kHz (Whisper's), 64 mel bins.
FRONT_END = {"frame_seconds": 0.025, "hop_seconds": 0.010, "num_mel_bins": 64,
             "lower_hz": 50.0, "upper_hz": 8000.0}
#: Centre and scale of the log-mel values (log energies of the course's clips lie in about
#: -14 .. 4), so the encoder sees numbers near [-1, 1].
LOG_MEL_CENTRE, LOG_MEL_SCALE = -5.0, 5.0
ARCHS = ("cnn", "ast")
CLAP_DEFAULTS = {"embedding_dim": 64, "width": 64, "text_depth": 1, "num_heads": 4,
                 "key_dim": 16, "hidden_units": 128}
CLAP_EPOCHS = 20
CLAP_LEARNING_RATE = 2e-3
SEQUENCE_LENGTH = 8  # "a falling chirp, then a noise burst" is 7 tokens
#: Tokens per caption by language: each Han character is a token, and the longest Chinese
#: caption, 上升的滑音，然后下降的滑音, has 12.
SEQUENCE_LENGTHS = {"en": SEQUENCE_LENGTH, "zh": 12}


def log_mel_features(waveforms, sample_rate: int = audio_data.SAMPLE_RATE) -> np.ndarray:
    """Scaled log-mel spectrograms float32 (N, frames, 64) of int16 clips (N, samples):
    ``scratch.log_mel_spectrogram`` with ``FRONT_END``, then (x - centre) / scale.
    Introduced in notebook 13."""
    waveforms = np.asarray(waveforms)
    if waveforms.ndim != 2 or waveforms.dtype != np.int16 or waveforms.shape[1] == 0:
        raise ValueError(f"waveforms must be int16 clips (N, samples) with samples > 0, got "
                         f"{waveforms.dtype} {waveforms.shape}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate != audio_data.SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {audio_data.SAMPLE_RATE} Hz, the rate the "
                         f"front end and models are built for, got {sample_rate!r}")
    frame = round(FRONT_END["frame_seconds"] * sample_rate)
    hop = round(FRONT_END["hop_seconds"] * sample_rate)
    signals = audio_data.to_float(waveforms)
    features = [scratch.log_mel_spectrogram(signal, sample_rate, frame, hop, 512,
                                            FRONT_END["num_mel_bins"], FRONT_END["lower_hz"],
                                            FRONT_END["upper_hz"]) for signal in signals]
    return ((np.stack(features) - LOG_MEL_CENTRE) / LOG_MEL_SCALE).astype(np.float32)


def build_vocabulary() -> list[str]:
    """The tokens of every caption of the audio data (English and Chinese), in a fixed
    order. Introduced in notebook 13."""
    captions = [audio_data.caption(pair, language) for pair in audio_data.PAIRS
                for language in ("en", "zh")]
    return text.build_vocabulary(captions)


def vectorize(captions, sequence_length: int = SEQUENCE_LENGTH) -> np.ndarray:
    """Token ids int32 (N, ``sequence_length``) of audio captions (``SEQUENCE_LENGTHS``
    gives each language's). Introduced in notebook 13."""
    return text.vectorize(captions, vocabulary=build_vocabulary(),
                          sequence_length=sequence_length)


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
        x = clip._blocks(x, 2, options, "ast")
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


def _embed(encoder, inputs, batch_size: int = 256) -> np.ndarray:
    from mmcourse import clip

    embeddings = clip._in_batches(encoder, inputs, batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def embed_audio(model, features) -> np.ndarray:
    """L2-normalised audio embeddings (N, d) of log-mel features. Introduced in notebook 13."""
    return _embed(model.get_layer("audio_encoder"), np.asarray(features, np.float32))


def embed_captions(model, captions) -> np.ndarray:
    """L2-normalised text embeddings (N, d) of caption strings, vectorised to the model's
    token length. Introduced in notebook 13."""
    length = model.get_layer("text_encoder").get_layer("embedding").max_length
    return _embed(model.get_layer("text_encoder"), vectorize(captions, length))


# --- evaluation -----------------------------------------------------------------------------


def event_prompts(language: str = "en") -> dict[str, list[str]]:
    """Zero-shot prompts for "which sound comes first": for each event, every caption that
    starts with it (7 each), to be averaged (prompt ensembling). Introduced in notebook 13."""
    return {event: [audio_data.caption((event, other), language)
                    for other in audio_data.EVENTS if other != event]
            for event in audio_data.EVENTS}


def zero_shot_first_event(audio_embeddings, text_embedder, language: str = "en") -> np.ndarray:
    """For each clip, the index into ``audio_data.EVENTS`` of the closest class embedding:
    zero-shot classification of the first sound among 8, with no classifier trained.
    ``text_embedder`` maps a list of captions to normalised embeddings. Introduced in
    notebook 13."""
    prompts = event_prompts(language)
    classes = []
    for event in audio_data.EVENTS:
        mean = text_embedder(prompts[event]).mean(axis=0)
        classes.append(mean / np.linalg.norm(mean))
    return np.argmax(np.asarray(audio_embeddings) @ np.stack(classes).T, axis=1)


def evaluate(audio_embeddings, text_embedder, records, language: str = "en") -> dict:
    """Recall@1 and @5 both ways (``clip.retrieval_recall``: a hit is judged by caption
    text), zero-shot accuracy of the first sound's event, and for each clip whether its true
    caption scores above its one-change negative, overall and by change kind. Introduced in
    notebook 13."""
    from mmcourse import clip

    key = "caption" if language == "en" else "caption_zh"
    negative_key = "negative" if language == "en" else "negative_zh"
    captions = [r[key] for r in records]
    text_embeddings = text_embedder(captions)
    similarity = np.asarray(audio_embeddings) @ text_embeddings.T
    recall = clip.retrieval_recall(similarity, captions, captions)
    events = list(audio_data.EVENTS)
    labels = np.array([events.index(r["events"][0]) for r in records])
    predicted = zero_shot_first_event(audio_embeddings, text_embedder, language)
    negatives = text_embedder([r[negative_key] for r in records])
    prefers_truth = (np.sum(audio_embeddings * text_embeddings, axis=1)
                     > np.sum(audio_embeddings * negatives, axis=1))
    changes = np.array([r["change"] for r in records])
    by_change = {kind: float(prefers_truth[changes == kind].mean())
                 for kind in audio_data.CHANGE_KINDS if np.any(changes == kind)}
    renamed = {k: {"audio_to_text": v["image_to_text"], "text_to_audio": v["text_to_image"]}
               for k, v in recall.items()}
    return {**renamed, "zero_shot_accuracy": float((predicted == labels).mean()),
            "zero_shot_chance": 1 / len(events),
            "true_over_negative": float(prefers_truth.mean()),
            "true_over_negative_by_change": by_change, "similarity": similarity}


def train_clap(seed: int = 0, epochs: int = CLAP_EPOCHS, arch: str = "cnn",
               language: str = "en", batch_size: int = 64,
               learning_rate: float = CLAP_LEARNING_RATE, clips_per_pair: int | None = None,
               log=None, keep_model: bool = False) -> dict:
    """Train ``build_clap`` on the generated train clips (built in memory, seeded) and
    evaluate it on the test clips: the CLI ``python -m mmcourse train --task retrieval
    --modality audio``. ``clips_per_pair`` shrinks the training set (notebook demos).
    Returns a JSON-ready dict (plus ``model`` with ``keep_model``). Introduced in
    notebook 13."""
    import keras

    from mmcourse.seeding import seed_everything

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    log = log or (lambda message: None)
    seed_everything(seed)
    key = "caption" if language == "en" else "caption_zh"
    train_waves, train_records = audio_data.make_split("train", seed,
                                                       clips_per_pair=clips_per_pair)
    test_waves, test_records = audio_data.make_split("test", seed)
    train_features = log_mel_features(train_waves)
    test_features = log_mel_features(test_waves)
    captions = [r[key] for r in train_records]
    names = sorted(set(captions))
    caption_ids = np.array([names.index(c) for c in captions], np.int32)
    vocabulary = build_vocabulary()
    length = SEQUENCE_LENGTHS[language]
    model = build_clap(train_features.shape[1:], len(vocabulary), arch, learning_rate, length)
    steps = math.ceil(len(captions) / batch_size)
    model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, (epochs - 1) * steps), warmup_target=learning_rate,
        warmup_steps=steps, alpha=0.02)
    log(f"training CLAP ({arch}) on {len(captions)} clips: {model.count_params():,} "
        f"parameters, {epochs} epochs, seed {seed}")
    start = time.perf_counter()
    history = model.fit([train_features, vectorize(captions, length)], caption_ids,
                        batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    train_seconds = time.perf_counter() - start
    result = evaluate(embed_audio(model, test_features), lambda c: embed_captions(model, c),
                      test_records, language)
    result.pop("similarity")
    result.update(task="retrieval", modality="audio", arch=arch, language=language, seed=seed,
                  epochs=epochs, params=int(model.count_params()), train_seconds=train_seconds,
                  train_examples=len(captions), test_examples=len(test_records),
                  temperature=model.get_layer("logits").temperature,
                  loss=[float(v) for v in history.history["loss"]])
    log(f"[retrieval/audio] audio->text recall@1 "
        f"{result['recall_at_1']['audio_to_text']:.3f} in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
