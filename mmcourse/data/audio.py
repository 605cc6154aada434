"""Generated audio-caption data: clips of two sounds in order, captioned in English and
Chinese (notebook 13).

Each clip is 1 s of 16 kHz mono audio holding two different *sound events*, one in each
half: a low or high tone, a rising or falling chirp, one, two or three clicks, or a noise
burst. The caption says what is heard and in what order, "a low tone, then two clicks"
(低音，然后两声咔嗒). Pitch (within a range), loudness, onsets and the background hiss vary
at random; the caption does not state them, so a model must learn to ignore them.

Every one of the 8 x 7 = 56 ordered pairs of events gets the same number of clips per
split (balanced). Each clip also has a *negative* caption that changes exactly one thing:
the ``order`` (the two events swapped), the ``pitch`` of a tone (low <-> high), the
``direction`` of a chirp (rising <-> falling) or the ``count`` of clicks. Negatives are
always captions of other clips, so the text alone cannot tell a true caption from a false
one, and the audio alone has no caption to compare with.

Clips are made by NumPy in about a second and kept as int16 (full scale 32767). Training
code builds them in memory (``make_split``); ``python -m mmcourse data --modality audio``
writes them to ``data/audio`` (about 36 MB, never committed) with a manifest of hashes,
atomically, and ``--verify`` re-hashes the files and checks that the seed regenerates them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcourse.data import split_files
from mmcourse.paths import DATA_DIR

SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
#: The sound events, each with its English and Chinese phrase.
EVENTS = {
    "low tone": ("a low tone", "低音"),
    "high tone": ("a high tone", "高音"),
    "rising chirp": ("a rising chirp", "上升的滑音"),
    "falling chirp": ("a falling chirp", "下降的滑音"),
    "one click": ("one click", "一声咔嗒"),
    "two clicks": ("two clicks", "两声咔嗒"),
    "three clicks": ("three clicks", "三声咔嗒"),
    "noise burst": ("a noise burst", "一阵噪声"),
}
#: The coarse kinds for zero-shot classification: the event's kind without its attribute.
KINDS = {"low tone": "tone", "high tone": "tone", "rising chirp": "chirp",
         "falling chirp": "chirp", "one click": "clicks", "two clicks": "clicks",
         "three clicks": "clicks", "noise burst": "noise"}
PAIRS = tuple((a, b) for a in EVENTS for b in EVENTS if a != b)
#: One-thing changes for negatives: event -> (change kind, the other values).
_CHANGES = {"low tone": ("pitch", ("high tone",)), "high tone": ("pitch", ("low tone",)),
            "rising chirp": ("direction", ("falling chirp",)),
            "falling chirp": ("direction", ("rising chirp",)),
            "one click": ("count", ("two clicks", "three clicks")),
            "two clicks": ("count", ("one click", "three clicks")),
            "three clicks": ("count", ("one click", "two clicks"))}
CHANGE_KINDS = ("order", "pitch", "direction", "count")
#: Clips per ordered pair of events, per split.
CLIPS_PER_PAIR = {"train": 16, "test": 4}
SPLITS = tuple(CLIPS_PER_PAIR)
LOW_HZ, HIGH_HZ = (220.0, 400.0), (1200.0, 2000.0)
FOLDER = "audio"
DATA_VERSION = 1


def caption(events, language: str = "en") -> str:
    """The caption of an ordered pair of events: "a low tone, then two clicks" or
    "低音，然后两声咔嗒". Introduced in notebook 13."""
    first, second = events
    for event in events:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {tuple(EVENTS)}")
    if language == "en":
        return f"{EVENTS[first][0]}, then {EVENTS[second][0]}"
    if language == "zh":
        return f"{EVENTS[first][1]}，然后{EVENTS[second][1]}"
    raise ValueError(f"language must be 'en' or 'zh', got {language!r}")


def check_sample_rate(sample_rate) -> int:
    """``sample_rate`` as an int of Hz from 8000 to 48000, or a ``ValueError`` saying
    why. Notebook 13."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not 8000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be a whole number of Hz from 8000 to 48000 (the "
                         f"high tones reach {HIGH_HZ[1]:g} Hz, below the Nyquist frequency "
                         f"sample_rate / 2), got {sample_rate!r}")
    return int(sample_rate)


def _ramp(length: int, sample_rate: int) -> np.ndarray:
    """A 10 ms raised-cosine fade in and out, so events start without a click."""
    envelope = np.ones(length)
    fade = min(int(0.01 * sample_rate), length // 2)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    envelope[:fade], envelope[length - fade:] = rise, rise[::-1]
    return envelope


def _event(event: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One event's samples, about 0.35 s, peak amplitude 1 before the loudness."""
    length = int(rng.uniform(0.32, 0.38) * sample_rate)
    t = np.arange(length) / sample_rate
    if event in ("low tone", "high tone"):
        frequency = rng.uniform(*(LOW_HZ if event == "low tone" else HIGH_HZ))
        return np.sin(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi)) \
            * _ramp(length, sample_rate)
    if event in ("rising chirp", "falling chirp"):
        low, high = rng.uniform(*LOW_HZ), rng.uniform(*HIGH_HZ)
        start, end = (low, high) if event == "rising chirp" else (high, low)
        frequency = start * (end / start) ** (t / t[-1])  # exponential sweep
        phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
        return np.sin(phase) * _ramp(length, sample_rate)
    if event == "noise burst":
        return np.clip(rng.standard_normal(length) / 2.5, -1, 1) * _ramp(length, sample_rate)
    count = {"one click": 1, "two clicks": 2, "three clicks": 3}[event]
    samples = np.zeros(length)
    click = int(0.006 * sample_rate)
    decay = np.exp(-np.arange(click) / (0.0012 * sample_rate))
    gap = rng.uniform(0.09, 0.11) * sample_rate
    for index in range(count):
        start = int(index * gap)
        samples[start:start + click] = np.clip(rng.standard_normal(click) / 2, -1, 1) * decay
    return samples


def synthesize(events, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One clip of ``CLIP_SECONDS``: ``events[0]`` starting in 30-100 ms, ``events[1]`` in
    520-580 ms, each at a random loudness (peak 0.25 to 0.9), over a faint hiss. Returns
    int16 samples. Introduced in notebook 13."""
    sample_rate = check_sample_rate(sample_rate)
    clip = rng.standard_normal(int(CLIP_SECONDS * sample_rate)) * rng.uniform(0.002, 0.01)
    for event, (low, high) in zip(events, ((0.03, 0.10), (0.52, 0.58)), strict=True):
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {tuple(EVENTS)}")
        samples = _event(event, rng, sample_rate) * rng.uniform(0.25, 0.9)
        start = int(rng.uniform(low, high) * sample_rate)
        clip[start:start + len(samples)] += samples
    return np.round(np.clip(clip, -1, 1) * 32767).astype(np.int16)


def one_change_negatives(events) -> list[tuple[tuple[str, str], str]]:
    """Every false pair of events that differs from ``events`` in one thing, with the
    change's kind (``CHANGE_KINDS``): the order swapped, a tone's pitch, a chirp's direction
    or a count of clicks changed. Never a pair with the same event twice. Introduced in
    notebook 13."""
    first, second = events
    options = [((second, first), "order")]
    for position, event in enumerate(events):
        if event in _CHANGES:
            kind, values = _CHANGES[event]
            for value in values:
                changed = list(events)
                changed[position] = value
                if changed[0] != changed[1]:
                    options.append((tuple(changed), kind))
    return options


def _choose_negatives(pairs, rng: np.random.Generator) -> list[tuple[tuple[str, str], str]]:
    """One negative per clip, chosen so that every caption is a negative about as often as
    it is a positive: each clip (in random order) takes, among its one-change negatives,
    one whose caption has been used least so far (ties broken at random). Then a caption's
    truth cannot be guessed from the caption alone."""
    used = dict.fromkeys(PAIRS, 0)
    chosen = [None] * len(pairs)
    for index in rng.permutation(len(pairs)):
        options = one_change_negatives(pairs[index])
        fewest = min(used[option] for option, _ in options)
        candidates = [choice for choice in options if used[choice[0]] == fewest]
        chosen[index] = candidates[int(rng.integers(len(candidates)))]
        used[chosen[index][0]] += 1
    return chosen


def _split_seed(seed: int, split: str) -> int:
    return seed * 1000 + SPLITS.index(split) + 1


def make_split(split: str, seed: int = 0, sample_rate: int = SAMPLE_RATE,
               clips_per_pair: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """The clips of one split, in memory: int16 waveforms (N, samples) and one record per
    clip, ``{"events", "caption", "caption_zh", "negative", "negative_zh", "change"}``.
    ``clips_per_pair`` (default ``CLIPS_PER_PAIR[split]``) clips of each of the 56 ordered
    pairs, shuffled; the same seed gives the same bytes. Introduced in notebook 13."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    sample_rate = check_sample_rate(sample_rate)
    per_pair = CLIPS_PER_PAIR[split] if clips_per_pair is None else clips_per_pair
    if isinstance(per_pair, bool) or not isinstance(per_pair, (int, np.integer)) or per_pair < 1:
        raise ValueError(f"clips_per_pair must be a positive int, got {per_pair!r}")
    rng = np.random.default_rng(_split_seed(int(seed), split))
    pairs = [pair for pair in PAIRS for _ in range(per_pair)]
    order = rng.permutation(len(pairs))
    waveforms = np.empty((len(pairs), int(CLIP_SECONDS * sample_rate)), np.int16)
    records = []
    shuffled = [pairs[index] for index in order]
    negatives = _choose_negatives(shuffled, rng)
    for row, events in enumerate(shuffled):
        waveforms[row] = synthesize(events, rng, sample_rate)
        false_events, change = negatives[row]
        records.append({"events": list(events), "caption": caption(events),
                        "caption_zh": caption(events, "zh"), "negative": caption(false_events),
                        "negative_zh": caption(false_events, "zh"), "change": change})
    return waveforms, records


def to_float(waveforms) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1]. Introduced in notebook 13."""
    waveforms = np.asarray(waveforms)
    if waveforms.dtype != np.int16:
        raise ValueError(f"waveforms must be int16 samples, got {waveforms.dtype}")
    return waveforms.astype(np.float32) / 32767.0


# --- on disk: data/audio ------------------------------------------------------------------


def _folder(root) -> Path:
    return Path(root) if root is not None else DATA_DIR / FOLDER


COMMAND = "python -m mmcourse data --modality audio"


def generate(root=None, seed: int = 0, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``{split}.npy`` (int16 clips) and ``{split}.jsonl`` for each split, plus
    ``manifest.json`` (seed, sample rate, sha256 of each file), under ``root`` (default
    ``data/audio``), atomically (``split_files.write``). Returns the folder. Introduced in
    notebook 13."""
    sample_rate = check_sample_rate(sample_rate)
    settings = {"version": DATA_VERSION, "seed": int(seed), "sample_rate": sample_rate,
                "clips_per_pair": CLIPS_PER_PAIR}
    return split_files.write(_folder(root), SPLITS,
                             lambda split: make_split(split, seed, sample_rate), settings)


def verify(root=None) -> list[str]:
    """The problems of ``data/audio`` ([] when intact): a file missing, altered (its hash
    differs from the manifest) or not what the manifest's seed regenerates. Introduced in
    notebook 13."""
    def maker(manifest):
        seed, sample_rate = manifest["seed"], manifest["sample_rate"]
        return lambda split: make_split(split, seed, sample_rate)

    return split_files.verify(_folder(root), SPLITS, maker, COMMAND)


def load_split(split: str, root=None) -> tuple[np.ndarray, list[dict]]:
    """The clips and records of one split from ``data/audio`` (written by ``generate``).
    Introduced in notebook 13."""
    return split_files.load(_folder(root), split, SPLITS, "audio", COMMAND)
