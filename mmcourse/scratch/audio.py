"""The audio front end by hand: frames, Hann window, STFT, mel filters and the log-mel
spectrogram, equal to ``tf.signal``, and the ``audio`` benchmark (notebook 13).
"""

from __future__ import annotations

import numpy as np

from mmcourse.configs import positive_int
from mmcourse.scratch.checks import check_array


def _check_signal(signal, frame_length: int) -> np.ndarray:
    signal = check_array("signal", signal, 1, layout="(samples,)")
    if signal.size == 0:
        raise ValueError("signal is an empty clip (0 samples): pass a 1-D array of samples")
    if signal.size < frame_length:
        raise ValueError(f"signal has {signal.size} samples, fewer than one frame of "
                         f"frame_length={frame_length}: pass a longer clip or a shorter frame")
    return signal


def hann_window(length: int) -> np.ndarray:
    """The Hann window of ``tf.signal.hann_window(length)`` (periodic, the default of
    ``tf.signal.stft``): w[n] = 0.5 - 0.5 cos(2 pi n / M), n = 0 .. length - 1, with
    M = length for an even length (periodic: the window's next sample would be 0) and,
    as TensorFlow does it, M = length - 1 for an odd one (the symmetric window, ending at 0).
    A window of length 1 is [1]. Introduced in notebook 13."""
    length = positive_int("length", length)
    if length == 1:
        return np.ones(1)
    period = length if length % 2 == 0 else length - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / period)


def frame_signal(signal, frame_length: int, frame_step: int) -> np.ndarray:
    """Overlapping frames (frames, frame_length) of a 1-D signal, frame i starting at
    sample i * frame_step; the tail that fills no whole frame is dropped (``pad_end=False``,
    as ``tf.signal.frame``). A view, not a copy. Introduced in notebook 13."""
    frame_length = positive_int("frame_length", frame_length)
    frame_step = positive_int("frame_step", frame_step)
    signal = _check_signal(signal, frame_length)
    windows = np.lib.stride_tricks.sliding_window_view(signal, frame_length)
    return windows[::frame_step]


def _fft_length(frame_length: int, fft_length) -> int:
    if fft_length is None:  # tf.signal.stft's default: the next power of 2
        return 1 << (frame_length - 1).bit_length()
    fft_length = positive_int("fft_length", fft_length)
    if fft_length < frame_length:
        raise ValueError(f"fft_length must be >= frame_length={frame_length} (frames are "
                         f"zero-padded, never cropped), got {fft_length}")
    return fft_length


def stft(signal, frame_length: int, frame_step: int, fft_length: int | None = None):
    """The short-time Fourier transform by hand, equal to ``tf.signal.stft`` with its
    defaults (periodic Hann window, ``pad_end=False``).

    Each frame (``frame_signal``) is multiplied by ``hann_window(frame_length)``,
    zero-padded to ``fft_length`` (default: the next power of 2) and transformed by the
    real FFT: X[t, k] = sum_n w[n] x[t * step + n] exp(-2 pi i k n / fft_length), for
    k = 0 .. fft_length // 2. Returns complex (frames, fft_length // 2 + 1), vectorised
    over the frames. Introduced in notebook 13.
    """
    frame_length = positive_int("frame_length", frame_length)
    fft_length = _fft_length(frame_length, fft_length)
    frames = frame_signal(signal, frame_length, frame_step)
    return np.fft.rfft(frames * hann_window(frame_length), n=fft_length, axis=-1)


def hertz_to_mel(frequency):
    """The mel scale of HTK and TensorFlow: m = 1127 ln(1 + f / 700). Introduced in
    notebook 13."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_weight_matrix(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float,
                      lower_hz: float, upper_hz: float) -> np.ndarray:
    """Triangular mel filters (num_spectrogram_bins, num_mel_bins), equal to
    ``tf.signal.linear_to_mel_weight_matrix`` with the same arguments.

    num_mel_bins + 2 edges are spaced evenly in mel from ``lower_hz`` to ``upper_hz``;
    filter j rises linearly (in mel) from edge j to 1 at edge j + 1 and falls to 0 at
    edge j + 2. The spectrogram bins are at k * (sample_rate / 2) / (bins - 1) Hz; the
    DC bin (k = 0) gets no weight, as in TensorFlow. Introduced in notebook 13.
    """
    num_mel_bins = positive_int("num_mel_bins", num_mel_bins)
    num_spectrogram_bins = positive_int("num_spectrogram_bins", num_spectrogram_bins)
    if num_spectrogram_bins < 2:
        raise ValueError(f"num_spectrogram_bins must be >= 2, got {num_spectrogram_bins}")
    for name, value in (("sample_rate", sample_rate), ("lower_hz", lower_hz),
                        ("upper_hz", upper_hz)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    if not 0 <= lower_hz < upper_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= lower_hz < upper_hz <= sample_rate / 2 = "
                         f"{sample_rate / 2:g} Hz (Nyquist), got lower_hz={lower_hz!r}, "
                         f"upper_hz={upper_hz!r}")
    bin_hz = np.linspace(0.0, sample_rate / 2, num_spectrogram_bins)[1:]  # DC dropped
    bin_mel = hertz_to_mel(bin_hz)[:, None]
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, num_mel_bins)), weights])


#: log(mel energy + LOG_OFFSET), so that silence gives a finite log.
LOG_OFFSET = 1e-6


def log_mel_spectrogram(signal, sample_rate: float, frame_length: int, frame_step: int,
                        fft_length: int | None = None, num_mel_bins: int = 64,
                        lower_hz: float = 0.0, upper_hz: float | None = None) -> np.ndarray:
    """log(|STFT| @ mel filters + 1e-6), (frames, num_mel_bins): the magnitude of ``stft``,
    times ``mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower_hz,
    upper_hz)`` (``upper_hz`` defaults to the Nyquist frequency), then the natural log.
    Equal to the same pipeline of ``tf.signal`` functions. Introduced in notebook 13."""
    frame_length = positive_int("frame_length", frame_length)
    fft_length = _fft_length(frame_length, fft_length)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer,
                                                                      np.floating)) \
            or not sample_rate > 0:
        raise ValueError(f"sample_rate must be a number > 0 Hz, got {sample_rate!r}")
    if upper_hz is None:
        upper_hz = sample_rate / 2
    weights = mel_weight_matrix(num_mel_bins, fft_length // 2 + 1, sample_rate, lower_hz,
                                upper_hz)
    magnitude = np.abs(stft(signal, frame_length, frame_step, fft_length))
    return np.log(magnitude @ weights + LOG_OFFSET)


def audio_benchmark():
    """The ``audio`` benchmark: the by-hand STFT (NumPy, vectorised over frames) against
    ``tf.signal.stft``, and the log-mel front end's cost per second of audio
    (``python -m mmcourse bench audio``). Whisper's parameters at 16 kHz: 25 ms window,
    10 ms hop, 80 mel bins. Introduced in notebook 13."""
    import tensorflow as tf

    from mmcourse.bench import BenchResult, Ratio, speedup, time_candidates

    sample_rate, seconds = 16000, 10
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(sample_rate * seconds).astype(np.float32)
    signal_tf = tf.constant(signal)
    frame_length, frame_step, fft_length = 400, 160, 512
    weights_tf = tf.signal.linear_to_mel_weight_matrix(80, fft_length // 2 + 1, sample_rate,
                                                       0.0, sample_rate / 2)

    def tensorflow_stft():
        return tf.signal.stft(signal_tf, frame_length, frame_step, fft_length).numpy()

    def tensorflow_log_mel():
        magnitude = tf.abs(tf.signal.stft(signal_tf, frame_length, frame_step, fft_length))
        return tf.math.log(tf.matmul(magnitude, weights_tf) + LOG_OFFSET).numpy()

    timings = time_candidates({
        "by hand (scratch.stft)": lambda: stft(signal, frame_length, frame_step, fft_length),
        "tensorflow (tf.signal.stft)": tensorflow_stft,
        "by hand log-mel": lambda: log_mel_spectrogram(signal, sample_rate, frame_length,
                                                       frame_step, fft_length, 80),
        "tensorflow log-mel": tensorflow_log_mel,
    }, repeats=7, warmup=2, items=seconds)
    by_name = {t.name: t for t in timings}
    difference = np.abs(stft(signal, frame_length, frame_step, fft_length)
                        - tensorflow_stft()).max()
    return BenchResult(
        name="audio",
        description="STFT of 10 s of 16 kHz audio (400-sample Hann window, hop 160, "
                    "512-point FFT) and an 80-bin log-mel: NumPy by hand vs tf.signal",
        timings=timings,
        ratios=[
            Ratio("by-hand / tensorflow STFT time",
                  speedup(timings, "by hand (scratch.stft)", "tensorflow (tf.signal.stft)"),
                  target=None, higher_is_better=False),
            Ratio("by-hand / tensorflow log-mel time",
                  speedup(timings, "by hand log-mel", "tensorflow log-mel"),
                  higher_is_better=False),
        ],
        facts={
            "by-hand log-mel ms per second of audio":
                f"{by_name['by hand log-mel'].median_s / seconds * 1e3:.3f}",
            "tensorflow log-mel ms per second of audio":
                f"{by_name['tensorflow log-mel'].median_s / seconds * 1e3:.3f}",
            "max |by hand - tensorflow| (STFT)": f"{difference:.2e}",
        },
    )
