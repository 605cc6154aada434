"""The by-hand audio front end and tubelets (notebook 13) against TensorFlow and Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse import scratch


@pytest.mark.parametrize("seed", range(6))
def test_stft_equals_tensorflow_on_random_signals_and_parameters(seed):
    rng = np.random.default_rng(seed)
    frame_length = int(rng.integers(8, 300))
    frame_step = int(rng.integers(1, frame_length + 40))  # hops longer than a frame too
    fft_length = int(frame_length + rng.integers(0, 200))
    signal = rng.standard_normal(int(rng.integers(frame_length, 3000))).astype(np.float32)
    ours = scratch.stft(signal, frame_length, frame_step, fft_length)
    theirs = tf.signal.stft(signal, frame_length, frame_step, fft_length).numpy()
    assert ours.shape == theirs.shape == (
        1 + (len(signal) - frame_length) // frame_step, fft_length // 2 + 1)
    assert np.iscomplexobj(ours)
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * max(1, np.abs(theirs).max()))


def test_stft_default_fft_length_is_the_next_power_of_two_like_tensorflow():
    signal = np.random.default_rng(1).standard_normal(2000).astype(np.float32)
    ours = scratch.stft(signal, 400, 160)
    theirs = tf.signal.stft(signal, 400, 160).numpy()
    assert ours.shape == theirs.shape == (11, 257)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_hann_window_is_periodic_like_tensorflow():
    for length in (1, 2, 7, 400):
        np.testing.assert_allclose(scratch.hann_window(length),
                                   tf.signal.hann_window(length).numpy(), atol=1e-6)
    # the periodic window starts at 0 and peaks at length / 2, it does not end at 0
    window = scratch.hann_window(8)
    assert window[0] == 0 and window[4] == pytest.approx(1.0) and window[-1] > 0
    # an odd length gives TensorFlow's symmetric window: 0, 0.5, 1, 0.5, 0
    np.testing.assert_allclose(scratch.hann_window(5), [0, 0.5, 1, 0.5, 0], atol=1e-12)


def test_frames_by_hand_equal_tf_signal_frame():
    signal = np.arange(23, dtype=np.float64)
    np.testing.assert_array_equal(scratch.frame_signal(signal, 5, 3),
                                  tf.signal.frame(signal, 5, 3).numpy())


def test_a_pure_tone_peaks_at_its_frequency_bin():
    sample_rate, frequency = 16000, 1000.0  # bin spacing 16000 / 512 = 31.25 Hz: bin 32
    t = np.arange(sample_rate) / sample_rate
    spectrum = np.abs(scratch.stft(np.sin(2 * np.pi * frequency * t), 400, 160, 512))
    assert set(np.argmax(spectrum, axis=1)) == {32}


@pytest.mark.parametrize("seed", range(5))
def test_mel_weight_matrix_equals_tensorflow(seed):
    rng = np.random.default_rng(seed)
    sample_rate = float(rng.choice([8000, 16000, 22050, 44100]))
    bins = int(rng.integers(33, 600))
    mels = int(rng.integers(4, 90))
    lower = float(rng.uniform(0, 400))
    upper = float(rng.uniform(lower + 500, sample_rate / 2))
    ours = scratch.mel_weight_matrix(mels, bins, sample_rate, lower, upper)
    theirs = tf.signal.linear_to_mel_weight_matrix(mels, bins, sample_rate, lower, upper,
                                                   dtype=tf.float64).numpy()
    assert ours.shape == (bins, mels)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_mel_scale_matches_the_htk_formula_by_hand():
    # 1000 Hz is about 1000 mel on the HTK scale: 1127 ln(17 / 7) = 1127 * 0.887303 = 999.991
    assert scratch.hertz_to_mel(1000.0) == pytest.approx(999.991, abs=1e-3)
    assert scratch.hertz_to_mel(0.0) == 0.0


def _tf_log_mel(signal, sample_rate, frame_length, frame_step, fft_length, mels, lower, upper):
    magnitude = tf.abs(tf.signal.stft(tf.constant(signal, tf.float64), frame_length,
                                      frame_step, fft_length))
    weights = tf.signal.linear_to_mel_weight_matrix(mels, fft_length // 2 + 1, sample_rate,
                                                    lower, upper, dtype=tf.float64)
    return tf.math.log(tf.matmul(magnitude, weights) + 1e-6).numpy()


@pytest.mark.parametrize("seed", range(5))
def test_log_mel_spectrogram_equals_tensorflow_pipeline(seed):
    rng = np.random.default_rng(100 + seed)
    sample_rate = int(rng.choice([8000, 16000]))
    frame_length = int(rng.integers(64, 512))
    frame_step = int(rng.integers(16, frame_length))
    fft_length = int(2 ** np.ceil(np.log2(frame_length)))
    mels = int(rng.integers(8, 64))
    lower, upper = float(rng.uniform(0, 200)), float(rng.uniform(1000, sample_rate / 2))
    signal = rng.standard_normal(int(rng.integers(frame_length, 6000))) * rng.uniform(0.01, 3)
    ours = scratch.log_mel_spectrogram(signal, sample_rate, frame_length, frame_step,
                                       fft_length, mels, lower, upper)
    theirs = _tf_log_mel(signal, sample_rate, frame_length, frame_step, fft_length, mels,
                         lower, upper)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_log_mel_of_silence_is_log_of_the_offset():
    out = scratch.log_mel_spectrogram(np.zeros(1000), 16000, 400, 160, 512, 80)
    np.testing.assert_allclose(out, np.log(1e-6))


@pytest.mark.parametrize("call, match", [
    (lambda: scratch.stft(np.zeros(0), 4, 2), "empty clip"),
    (lambda: scratch.stft(np.zeros(10), 16, 2), "fewer than one frame"),
    (lambda: scratch.stft(np.zeros((2, 100)), 16, 2), "signal must be 1-D"),
    (lambda: scratch.stft(np.zeros(100), 16, 0), "frame_step must be a positive int"),
    (lambda: scratch.stft(np.zeros(100), 16, 4, 8), "fft_length must be >= frame_length"),
    (lambda: scratch.mel_weight_matrix(8, 257, 0, 0, 100), "sample_rate must be > 0"),
    (lambda: scratch.mel_weight_matrix(8, 257, 16000, 0, 9000), "Nyquist"),
    (lambda: scratch.mel_weight_matrix(8, 257, 16000, 500, 400), "lower_hz < upper_hz"),
    (lambda: scratch.log_mel_spectrogram(np.zeros(100), -1, 16, 4), "sample_rate"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tubelet", [(2, 4, 4), (1, 8, 8), (4, 2, 4)])
def test_tubelet_embedding_equals_conv3d(tubelet):
    rng = np.random.default_rng(3)
    videos = rng.random((2, 8, 16, 16, 3)).astype(np.float32)
    layer = keras.layers.Conv3D(5, kernel_size=tubelet, strides=tubelet)
    expected = layer(videos).numpy()
    kernel, bias = layer.get_weights()
    bias = rng.standard_normal(bias.shape).astype(np.float32)
    layer.set_weights([kernel, bias])
    expected = layer(videos).numpy()
    ours = scratch.tubelet_embedding(videos, kernel, bias)
    assert ours.shape == (2, expected.shape[1] * expected.shape[2] * expected.shape[3], 5)
    np.testing.assert_allclose(ours, expected.reshape(2, -1, 5), atol=1e-5)


def test_tubeletify_order_is_time_then_row_then_column():
    videos = np.arange(1 * 4 * 2 * 2 * 1).reshape(1, 4, 2, 2, 1)  # value = t*4 + row*2 + col
    tubelets = scratch.tubeletify(videos, (2, 1, 2))
    assert tubelets.shape == (1, 4, 4)
    # first tubelet: frames 0-1, row 0, columns 0-1, frame-major within the tubelet
    np.testing.assert_array_equal(tubelets[0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(tubelets[0, 1], [2, 3, 6, 7])  # row 1
    np.testing.assert_array_equal(tubelets[0, 2], [8, 9, 12, 13])  # frames 2-3


def test_tubelets_bad_input():
    with pytest.raises(ValueError, match="split evenly"):
        scratch.tubeletify(np.zeros((1, 5, 8, 8, 3)), (2, 4, 4))
    with pytest.raises(ValueError, match="videos must be 5-D"):
        scratch.tubeletify(np.zeros((5, 8, 8, 3)), 2)
    with pytest.raises(ValueError, match="C=3 but videos have 1"):
        scratch.tubelet_embedding(np.zeros((1, 2, 4, 4, 1)), np.zeros((2, 2, 2, 3, 4)))
