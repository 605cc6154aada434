"""The video matchers trained and scored on the course's generated clips (notebook 13;
``python -m mmcourse train --task match --modality video --fusion temporal|average``): the
statements' vocabulary and token ids, accuracy by kind of statement and by change, and
``train_video``. The models are ``mmcourse.clip.video``.
"""

from __future__ import annotations

import numpy as np

from mmcourse.clip.video import (
    FUSIONS,
    SEQUENCE_LENGTH,
    SEQUENCE_LENGTHS,
    VIDEO_LEARNING_RATE,
    build_video_matcher,
)
from mmcourse.data import text
from mmcourse.data import video as video_data
from mmcourse.train.core import TrainConfig, fit_logged

VIDEO_EPOCHS = 20


# --- the statements' tokens ----------------------------------------------------------------


def build_vocabulary() -> list[str]:
    """The tokens of every statement the video data can make, English and Chinese.
    Introduced in notebook 13."""
    from mmcourse.data import scenes as data

    paths = [(d,) for d in video_data.DIRECTIONS] + [
        (a, b) for a in video_data.DIRECTIONS for b in video_data.DIRECTIONS
        if b not in (a, video_data.OPPOSITE[a])]
    statements = [video_data.statement(colour, shape, path, language)
                  for colour in data.COLOURS for shape in data.SHAPES for path in paths
                  for language in ("en", "zh")]
    return text.build_vocabulary(statements)


def vectorize(statements, sequence_length: int = SEQUENCE_LENGTH) -> np.ndarray:
    """Token ids int32 (N, ``sequence_length``; ``SEQUENCE_LENGTHS`` gives each language's).
    Introduced in notebook 13."""
    return text.vectorize(statements, vocabulary=build_vocabulary(),
                          sequence_length=sequence_length)


# --- evaluation ----------------------------------------------------------------------------


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


# --- training ------------------------------------------------------------------------------


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
    ``keep_model``. ``learning_rate`` is Adam's (``VIDEO_LEARNING_RATE``); ``log`` gets a
    line per epoch (``train.core.fit_logged``) and the scores. Introduced in notebook 13."""
    from mmcourse.seeding import seed_everything

    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    config = TrainConfig(epochs, batch_size, learning_rate, seed)
    if language not in ("en", "zh"):
        raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
    log = log or (lambda message: None)
    seed_everything(seed)
    train_videos, train_records = video_data.make_split("train", seed, train_clips)
    test_videos, test_records = video_data.make_split("test", seed, test_clips)
    model = build_video_matcher(fusion, vocabulary_size=len(build_vocabulary()),
                                frames=video_data.FRAMES, size=video_data.FRAME_SIZE,
                                learning_rate=learning_rate,
                                sequence_length=SEQUENCE_LENGTHS[language])
    inputs, labels = _inputs(train_videos, train_records, language)
    log(f"training the {fusion} video model on {len(labels)} statements about "
        f"{len(train_videos)} clips: {model.count_params():,} parameters, {epochs} epochs, "
        f"seed {seed}")
    fitted = fit_logged(model, inputs, config, targets=labels, name=f"match/video/{fusion}",
                        log=log)
    train_seconds = fitted["train_seconds"]
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
              "loss": fitted["history"]["loss"]}
    log(f"[match/video/{fusion}] test accuracy {result['test_accuracy']:.3f}, order "
        f"{by_kind.get('order', float('nan')):.3f}, in {train_seconds:.1f} s")
    if keep_model:
        result["model"] = model
    return result
