"""CLAP trained and scored on the course's generated audio (notebook 13; ``python -m mmcourse
train --task retrieval --modality audio``): the captions' vocabulary and token ids, the
zero-shot and one-change scores, and ``train_clap``. The model and its log-mel front end are
``mmcourse.clip.clap``.
"""

from __future__ import annotations

import numpy as np

from mmcourse.clip.clap import (
    ARCHS,
    CLAP_LEARNING_RATE,
    SEQUENCE_LENGTH,
    SEQUENCE_LENGTHS,
    build_clap,
    embed_all,
    embed_audio,
    log_mel_features,
)
from mmcourse.data import audio as audio_data
from mmcourse.data import text
from mmcourse.train.core import TrainConfig, fit_logged, warmup_cosine

CLAP_EPOCHS = 20


# --- the captions' tokens ------------------------------------------------------------------


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


def embed_captions(model, captions) -> np.ndarray:
    """L2-normalised text embeddings (N, d) of caption strings, vectorised to the model's
    token length. Introduced in notebook 13."""
    length = model.get_layer("text_encoder").get_layer("embedding").max_length
    return embed_all(model.get_layer("text_encoder"), vectorize(captions, length))


# --- evaluation ----------------------------------------------------------------------------


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


# --- training ------------------------------------------------------------------------------


def train_clap(seed: int = 0, epochs: int = CLAP_EPOCHS, arch: str = "cnn",
               language: str = "en", batch_size: int = 64,
               learning_rate: float = CLAP_LEARNING_RATE, clips_per_pair: int | None = None,
               log=None, keep_model: bool = False) -> dict:
    """Train ``build_clap`` on the generated train clips (built in memory, seeded) and
    evaluate it on the test clips: the CLI ``python -m mmcourse train --task retrieval
    --modality audio``. ``clips_per_pair`` shrinks the training set (notebook demos).
    ``log`` gets a line per epoch (``train.core.fit_logged``) and the scores. Returns a JSON-ready dict (plus ``model`` with ``keep_model``). Introduced in
    notebook 13."""
    from mmcourse.seeding import seed_everything

    config = TrainConfig(epochs, batch_size, learning_rate, seed)
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
    warmup_cosine(model, config, len(captions))
    log(f"training CLAP ({arch}) on {len(captions)} clips: {model.count_params():,} "
        f"parameters, {epochs} epochs, seed {seed}")
    fitted = fit_logged(model, [train_features, vectorize(captions, length)], config,
                        targets=caption_ids, name="retrieval/audio", log=log)
    train_seconds = fitted["train_seconds"]
    result = evaluate(embed_audio(model, test_features), lambda c: embed_captions(model, c),
                      test_records, language)
    result.pop("similarity")
    result.update(task="retrieval", modality="audio", arch=arch, language=language, seed=seed,
                  epochs=epochs, params=int(model.count_params()), train_seconds=train_seconds,
                  train_examples=len(captions), test_examples=len(test_records),
                  temperature=model.get_layer("logits").temperature,
                  loss=fitted["history"]["loss"])
    log(f"[retrieval/audio] audio->text recall@1 "
        f"{result['recall_at_1']['audio_to_text']:.3f} in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
