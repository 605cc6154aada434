"""Exercises of notebook 13 (sound and motion): how many frames an STFT makes, Whisper's
log-mel of one second (its frame count predicted, then measured), and an experiment that
shuffles the frames of video clips and lets the checker measure what each video model sees.
"""

from __future__ import annotations

import collections

import numpy as np

from mmcourse.exercises import (
    Exercise,
    ExerciseSet,
    Incorrect,
    NotAttempted,
    Prediction,
    compare,
    contains_placeholder,
    function_exercise,
    solution_from,
)

#: q2: Whisper's front end at 16 kHz on a 1 s clip: 25 ms window, 10 ms hop, 80 mel bins.
Q2_SAMPLES, Q2_FRAME, Q2_HOP, Q2_MELS = 16000, 400, 160, 80
#: q3: the clips the checker shuffles with your function, and its bounds.
Q3_CLIPS = 6
Q3_AVERAGE_BOUND, Q3_TEMPORAL_BOUND = 1e-4, 1e-3


# q1's reference and solution: the frames of ``tf.signal.stft`` without end padding
def frame_count(num_samples, frame_length, frame_step):
    return 1 + (num_samples - frame_length) // frame_step


def q2_signal() -> np.ndarray:
    """q2's one second of audio at 16 kHz: white noise (seed 13, standard deviation 0.1), so
    every mel bin holds energy; float32."""
    return (0.1 * np.random.default_rng(13).standard_normal(Q2_SAMPLES)).astype(np.float32)


def whisper_log_mel(signal, num_mel_bins=Q2_MELS):
    """q2: Whisper's front end by the course's scratch.log_mel_spectrogram (section 2)."""
    from mmcourse import scratch

    return scratch.log_mel_spectrogram(signal, 16000, Q2_FRAME, Q2_HOP, 512, num_mel_bins,
                                       0.0, 8000.0)


# q3's reference and solution: each clip's frames in a new random order
def shuffle_frames(videos, seed):
    rng = np.random.default_rng(seed)
    return np.stack([clip[rng.permutation(len(clip))] for clip in videos])


def _q3_videos():
    from mmcourse.data import video as video_data

    return video_data.make_split("test", seed=0, clips=Q3_CLIPS)[0]


def measure_shuffle(function) -> dict:
    """Shuffle ``Q3_CLIPS`` test clips with ``function(videos, seed=0)`` and measure the
    largest change of the averaging and the temporal video encoders' outputs (both built
    fresh with seed 0). ``Incorrect`` when the function does not permute each clip's frames."""
    import keras

    from mmcourse.clip import video

    videos = _q3_videos()
    try:
        shuffled = function(videos.copy(), seed=0)
    except Exception as error:  # the learner's bug, reported
        raise Incorrect(f"calling it with (videos, seed=0) raised {type(error).__name__}: "
                        f"{error}") from None
    if contains_placeholder(shuffled):
        raise NotAttempted
    shuffled = np.asarray(shuffled)
    if shuffled.shape != videos.shape:
        raise Incorrect(f"the result has shape {shuffled.shape}; expected the videos' shape "
                        f"{videos.shape}.")
    for index, (clip, mixed) in enumerate(zip(videos, shuffled, strict=True)):
        if collections.Counter(f.tobytes() for f in clip) != \
                collections.Counter(f.tobytes() for f in mixed):
            raise Incorrect(f"clip {index} does not hold the same frames after shuffling: "
                            f"permute the frames (axis 1) within each clip, not the clips, "
                            f"pixels or channels.")
    if np.mean([np.array_equal(a, b) for a, b in zip(videos, shuffled, strict=True)]) > 0.5:
        raise Incorrect("most clips keep their order: shuffle the frames of each clip.")
    changes = {}
    for fusion in ("average", "temporal"):
        keras.utils.set_random_seed(0)
        encoder = video.build_video_encoder(fusion, frames=videos.shape[1],
                                            size=videos.shape[2])
        before = encoder(videos.astype(np.float32)).numpy()
        after = encoder(shuffled.astype(np.float32)).numpy()
        changes[fusion] = float(np.abs(before - after).max())
    return changes


def scratch_stft(signal):
    """A wrong answer to q2: the STFT of Whisper's window and hop, without the mel filters."""
    from mmcourse import scratch

    return scratch.stft(signal, Q2_FRAME, Q2_HOP, 512)


def notebook_13() -> ExerciseSet:
    """Exercises of notebook 13 (sound and motion)."""
    q1_cases = [(16000, 400, 160), (1000, 256, 128), (400, 400, 160), (1023, 100, 7),
                (5000, 512, 512)]

    def check_log_mel(answer):
        if isinstance(answer, tuple) and all(isinstance(a, int) for a in answer):
            raise Incorrect(f"{answer} is a shape typed in: pass the log-mel array itself, the "
                            f"checker measures its shape.")
        compare(answer, whisper_log_mel(q2_signal()), atol=1e-3, rtol=1e-4,
                what="your log-mel")

    def check_shuffle(answer):
        if not callable(answer):
            raise Incorrect(f"pass your function itself (no parentheses), got "
                            f"{type(answer).__name__}.")
        changes = measure_shuffle(answer)
        if not changes["average"] < Q3_AVERAGE_BOUND:
            raise Incorrect(f"the averaging encoder changed by {changes['average']:.2e}: a "
                            f"shuffle keeps each clip's frames, so their mean cannot change.")
        if not changes["temporal"] > Q3_TEMPORAL_BOUND:
            raise Incorrect(f"the temporal encoder changed by only {changes['temporal']:.2e}.")
        return "the temporal one"  # what the bounds above just measured

    return ExerciseSet("notebook_13", [
        function_exercise(
            name="q1",
            prompt="Write frame_count(num_samples, frame_length, frame_step): how many frames "
                   "tf.signal.stft (and scratch.stft) cuts from a signal of num_samples "
                   "samples, with no end padding (pad_end=False).",
            function=frame_count,
            cases=q1_cases,
            hints=["Frame i starts at sample i * frame_step and must end by num_samples.",
                   "The last start is at most num_samples - frame_length."],
            wrong=lambda: [
                lambda n, length, step: n // step,  # ignores the frame's length
                lambda n, length, step: -(-n // step),  # pad_end=True
                lambda n, length, step: (n - length) // step,  # off by one
                lambda n, length, step: int(np.ceil((n - length) / step)) + 1,  # rounds up
                lambda n, length, step: None],
        ),
        Exercise(
            name="q2",
            prompt=f"Measurement. Predict first: Whisper's front end reads 16 kHz audio with a "
                   f"{Q2_FRAME}-sample (25 ms) window every {Q2_HOP} samples (10 ms) and "
                   f"{Q2_MELS} mel bins; how many frames does one second ({Q2_SAMPLES} "
                   f"samples) give, without end padding? Then measure: compute the log-mel of "
                   f"q2_signal() with scratch.log_mel_spectrogram(signal, 16000, {Q2_FRAME}, "
                   f"{Q2_HOP}, 512, {Q2_MELS}, 0.0, 8000.0) and pass the array. The checker "
                   f"computes it with its own front end and compares shape (frames, mel bins) "
                   f"and values.",
            checker=check_log_mel,
            hints=["Use your frame_count of q1 for the frames.",
                   "The columns are the mel bins, not the fft_length // 2 + 1 = 257 "
                   "frequency bins."],
            prediction=Prediction("how many frames does one second give?", unit=" frames",
                                  measure=lambda answer: int(np.shape(answer)[0])),
            solution_code=("from mmcourse.exercises.notebook_13 import q2_signal\n"
                           "ex.q2.predict(98)\n"
                           "log_mel = scratch.log_mel_spectrogram(q2_signal(), 16000, 400, 160, "
                           "512, 80, 0.0, 8000.0)\n"
                           "print(log_mel.shape)\n"
                           "ex.q2.check(log_mel)"),
            reference=lambda: whisper_log_mel(q2_signal()),
            wrong=lambda: [whisper_log_mel(q2_signal()).T,  # (mel bins, frames)
                           whisper_log_mel(q2_signal(), 64),  # the CLAP front end's 64 bins
                           np.abs(scratch_stft(q2_signal())),  # no mel filters, no log
                           np.exp(whisper_log_mel(q2_signal())),  # the log left out
                           whisper_log_mel(q2_signal()[:Q2_SAMPLES - Q2_HOP]),  # 97 frames
                           (98, 80), None]),
        Exercise(
            name="q3",
            prompt="Experiment. Predict first: if the frames of every clip are shuffled, how "
                   "much does the frame-averaging video encoder's output change, and the "
                   "temporal one's? Write shuffle_frames(videos, seed) that returns the videos "
                   "(N, T, H, W, C) with each clip's frames in a random order "
                   "(numpy.random.default_rng(seed)). The checker shuffles "
                   f"{Q3_CLIPS} test clips with it, checks that each clip keeps its frames, "
                   "and measures both encoders (video.build_video_encoder, seed 0) before and "
                   "after: the averaging one must change by less than "
                   f"{Q3_AVERAGE_BOUND:g}, the temporal one by more than {Q3_TEMPORAL_BOUND:g}.",
            checker=check_shuffle,
            hints=["rng.permutation(T) gives a new order of the frames of one clip.",
                   "Index each clip, not the batch: clip[order], then np.stack them."],
            prediction=Prediction(
                "which encoder's output changes when the frames are shuffled?",
                choices=("neither", "the averaging one", "the temporal one", "both")),
            solution_code="ex.q3.predict('the temporal one')\n" + solution_from(
                shuffle_frames,
                "from mmcourse.exercises.notebook_13 import measure_shuffle\n"
                "print({k: f'{v:.1e}' for k, v in measure_shuffle(shuffle_frames).items()})\n"
                "ex.q3.check(shuffle_frames)"),
            reference=lambda: shuffle_frames,
            wrong=lambda: [
                lambda videos, seed: videos,  # nothing shuffled
                lambda videos, seed: videos[np.random.default_rng(seed).permutation(
                    len(videos))],  # the clips shuffled, not the frames
                lambda videos, seed: videos[..., ::-1],  # the channels
                lambda videos, seed: np.random.default_rng(seed).permutation(
                    videos.reshape(-1)).reshape(videos.shape),  # the pixels
                lambda videos, seed: videos[:, :4],  # frames dropped
                0.0, None]),
    ])
