"""The audio-text model of notebook 13: its front end against tf.signal, its evaluation
against hand-made embeddings, and its report."""

import numpy as np
import pytest
import tensorflow as tf

from mmcourse.clip import clap
from mmcourse.data import audio as audio_data
from mmcourse.train import clap as clap_training


def test_log_mel_features_equal_the_tensorflow_pipeline():
    waveforms, _ = audio_data.make_split("test", seed=0, clips_per_pair=1)
    ours = clap.log_mel_features(waveforms[:2])
    signal = tf.constant(waveforms[:2].astype(np.float32) / 32767.0)
    magnitude = tf.abs(tf.signal.stft(signal, 400, 160, 512))
    weights = tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 50.0, 8000.0)
    expected = (tf.math.log(tf.matmul(magnitude, weights) + 1e-6).numpy() + 5.0) / 5.0
    assert ours.shape == (2, 98, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("waveforms, sample_rate, match", [
    (np.zeros((2, 16000), np.int16), 8000, "sample_rate must be 16000 Hz"),
    (np.zeros((2, 0), np.int16), 16000, "samples > 0"),
    (np.zeros((2, 16000), np.float32), 16000, "waveforms must be int16"),
])
def test_front_end_bad_input(waveforms, sample_rate, match):
    with pytest.raises(ValueError, match=match):
        clap.log_mel_features(waveforms, sample_rate)


def _records():
    _, records = audio_data.make_split("test", seed=0, clips_per_pair=1)
    return records


def _event_vectors():
    return {event: np.eye(16)[index] for index, event in enumerate(audio_data.EVENTS)}


def _ordered_embedding(events):
    vectors = _event_vectors()
    vector = np.concatenate([vectors[events[0]][:8], vectors[events[1]][:8]])
    return vector / np.linalg.norm(vector)


def _embedder(embedding):
    by_caption = {audio_data.caption(pair): embedding(pair) for pair in audio_data.PAIRS}
    return lambda captions: np.stack([by_caption[c] for c in captions])


def test_evaluate_perfect_embeddings_score_one_everywhere():
    records = _records()
    audio = np.stack([_ordered_embedding(r["events"]) for r in records])
    result = clap_training.evaluate(audio, _embedder(_ordered_embedding), records)
    assert result["recall_at_1"] == {"audio_to_text": 1.0, "text_to_audio": 1.0}
    assert result["zero_shot_accuracy"] == 1.0 and result["zero_shot_chance"] == 1 / 8
    assert result["true_over_negative_by_change"] == dict.fromkeys(audio_data.CHANGE_KINDS,
                                                                   1.0)


def _bag_of_events(events):  # knows which sounds, not their order
    vectors = _event_vectors()
    vector = vectors[events[0]] + vectors[events[1]]
    return vector / np.linalg.norm(vector)


def test_evaluate_an_order_blind_model_fails_exactly_the_order_negatives():
    records = _records()
    audio = np.stack([_bag_of_events(r["events"]) for r in records])
    result = clap_training.evaluate(audio, _embedder(_bag_of_events), records)
    by_change = result["true_over_negative_by_change"]
    assert by_change["order"] == 0.0  # a tie is not a win
    assert by_change["pitch"] == by_change["direction"] == by_change["count"] == 1.0
    # each caption ties with its reverse: recall@1 by text is then about one half
    assert 0.3 < result["recall_at_1"]["audio_to_text"] < 0.7
    assert result["recall_at_5"]["audio_to_text"] == 1.0


def test_the_cnn_keeps_time_order():
    encoder = clap.build_audio_encoder((98, 64))
    features = np.random.default_rng(0).standard_normal((1, 98, 64)).astype(np.float32)
    swapped = np.concatenate([features[:, 49:], features[:, :49]], axis=1)
    a, b = (encoder(x).numpy() for x in (features, swapped))
    assert np.abs(a - b).max() > 1e-3
    with pytest.raises(ValueError, match="arch must be one of"):
        clap.build_audio_encoder((98, 64), arch="rnn")


def test_train_clap_reports_what_the_command_line_promises():
    lines = []
    result = clap_training.train_clap(seed=0, epochs=1, clips_per_pair=1, keep_model=True,
                                      log=lines.append)
    # one line per epoch (train.core.fit_logged), its loss the one the result reports
    assert [line for line in lines if " epoch " in line] == [
        f"[retrieval/audio] epoch 1/1  loss {result['loss'][0]:.4f}"]
    assert set(result["recall_at_1"]) == {"audio_to_text", "text_to_audio"}
    assert set(result["recall_at_5"]) == {"audio_to_text", "text_to_audio"}
    for key in ("zero_shot_accuracy", "train_seconds", "params", "true_over_negative"):
        assert isinstance(result[key], float | int)
    assert result["train_examples"] == 56 and result["test_examples"] == 224
    model = result["model"]
    assert model.get_layer("audio_encoder").output.shape[-1] == 64


@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_caption_is_cut_short_in_either_language(language):
    from mmcourse.data import text

    captions = [audio_data.caption(pair, language) for pair in audio_data.PAIRS]
    ids = clap_training.vectorize(captions, clap.SEQUENCE_LENGTHS[language])
    assert [int(np.count_nonzero(row)) for row in ids] == \
        [len(text.split_words(c)) for c in captions]
    assert not np.any(ids == 1)  # no unknown token
