"""Generated video-caption data: 8 frames of one of the course's shapes moving, with
statements about its motion, for the match task (notebook 13).

A clip is 8 RGB frames of 32 x 32 pixels (uint8, (8, 32, 32, 3)), drawn by
``mmcourse.data.draw.render_scene``: a shape of some colour that either moves in one direction
("the red circle moves left") or in two, one after the other ("the red circle moves left,
then up"). Each clip gives two match records, one true statement and one false, and the
false one is of one of three kinds:

- ``order``: a two-step clip, with the statement of the same path walked backwards in time
  ("moves down, then right" for a clip that moves left, then up);
- ``direction``: a one-step clip, with the opposite direction ("moves right");
- ``attribute``: the true motion, with the colour or the shape changed.

Every clip is played forwards or backwards with equal chance (its statement follows), so
a clip and its reverse are equally likely. A clip reversed has the same frames in another
order, hence the same mean frame: a model that averages its frames (or per-frame features)
sees the same input for "left, then up" and "down, then right" and must stay at chance on
``order`` and ``direction`` statements, while it can still read colours and shapes. Made
in a few seconds by NumPy and OpenCV; ``make_split`` builds a split in memory, and
``generate`` writes both to ``data/video`` with a manifest (``python -m mmcourse data
--modality video [--verify]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcourse.data import draw, grammar_zh, split_files
from mmcourse.paths import DATA_DIR

FRAMES = 8
FRAME_SIZE = 32
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
STATEMENT_KINDS = ("order", "direction", "attribute")
#: What a false statement changes: an ``attribute`` one changes the colour or the shape.
CHANGES = ("order", "direction", "colour", "shape")
#: Clips per split; each gives one true and one false match record.
CLIPS = {"train": 3000, "test": 600}
SPLITS = tuple(CLIPS)
RADIUS = (4.0, 5.0)
#: Pixels per frame: one-step clips travel 7 steps, two-step clips 4 + 3.
STEP = {1: 2.4, 2: 3.2}
DIRECTIONS_ZH = {"left": "左", "right": "右", "up": "上", "down": "下"}
FOLDER = "video"
DATA_VERSION = 1


def statement(colour: str, shape: str, path, language: str = "en") -> str:
    """"the red circle moves left, then up" (or 红色圆形向左移动，然后向上) for ``path``, a
    tuple of one or two directions. Introduced in notebook 13."""
    if colour not in draw.COLOURS or shape not in draw.SHAPES:
        raise ValueError(f"colour and shape must be the course's, got {colour!r} {shape!r}")
    if not 1 <= len(path) <= 2 or any(d not in DIRECTIONS for d in path):
        raise ValueError(f"path must be one or two of {tuple(DIRECTIONS)}, got {path!r}")
    if language == "en":
        return f"the {colour} {shape} moves " + ", then ".join(path)
    if language == "zh":
        moves = "，然后".join(f"向{DIRECTIONS_ZH[d]}移动" for d in path)
        return f"{grammar_zh.COLOURS_ZH[colour]}{grammar_zh.SHAPES_ZH[shape]}{moves}"
    raise ValueError(f"language must be 'en' or 'zh', got {language!r}")


def reverse_path(path) -> tuple[str, ...]:
    """The path walked backwards in time: (left, up) -> (down, right). Introduced in
    notebook 13."""
    return tuple(OPPOSITE[d] for d in reversed(path))


def _positions(path, rng: np.random.Generator) -> np.ndarray:
    """Centres (FRAMES, 2) of a path that stays inside the frame."""
    step = STEP[len(path)]
    moves = [path[0]] * (FRAMES - 1) if len(path) == 1 else \
        [path[0]] * (FRAMES // 2) + [path[1]] * (FRAMES // 2 - 1)
    offsets = np.concatenate([[[0.0, 0.0]], np.cumsum([DIRECTIONS[m] for m in moves],
                                                      axis=0) * step])
    margin = RADIUS[1] * 1.3 + 1
    low = margin - offsets.min(axis=0)
    high = FRAME_SIZE - margin - offsets.max(axis=0)
    start = rng.uniform(low, high)
    return start + offsets


def render_clip(colour: str, shape: str, positions, radius: float) -> np.ndarray:
    """Frames uint8 (T, 32, 32, 3) of one shape at the given centres. Introduced in
    notebook 13."""
    return np.stack([draw.render_scene([{"shape": shape, "colour": colour, "x": x, "y": y,
                                         "r": radius}], size=FRAME_SIZE)
                     for x, y in positions])


def make_clip(rng: np.random.Generator, kind: str):
    """One clip (8, 32, 32, 3), its record ``{"colour", "shape", "path"}`` and, for the
    given negative ``kind``, a false statement's record. Played backwards with chance 1/2."""
    colour = list(draw.COLOURS)[int(rng.integers(len(draw.COLOURS)))]
    shape = draw.SHAPES[int(rng.integers(len(draw.SHAPES)))]
    first = list(DIRECTIONS)[int(rng.integers(4))]
    if kind == "direction":
        path = (first,)
    else:
        turns = [d for d in DIRECTIONS if d not in (first, OPPOSITE[first])]
        path = (first, turns[int(rng.integers(2))])
    positions = _positions(path, rng)
    if rng.random() < 0.5:  # play it backwards: the statement follows
        positions, path = positions[::-1], reverse_path(path)
    frames = render_clip(colour, shape, positions, rng.uniform(*RADIUS))
    true = {"colour": colour, "shape": shape, "path": list(path)}
    if kind in ("order", "direction"):
        false = {**true, "path": list(reverse_path(path))}
    else:
        if rng.random() < 0.5:
            others = [c for c in draw.COLOURS if c != colour]
            false = {**true, "colour": others[int(rng.integers(len(others)))]}
        else:
            others = [s for s in draw.SHAPES if s != shape]
            false = {**true, "shape": others[int(rng.integers(len(others)))]}
    return frames, true, false


def change_of(true: dict, false: dict) -> str:
    """What a false statement changes in the true one: ``order``, ``direction``, ``colour``
    or ``shape`` (the last two are the ``attribute`` kind). Introduced in notebook 13."""
    changed = [key for key in ("colour", "shape") if true[key] != false[key]]
    if changed:
        return changed[0]
    return "direction" if len(true["path"]) == 1 else "order"


def make_split(split: str, seed: int = 0, clips: int | None = None):
    """One split in memory: clips uint8 (N, 8, 32, 32, 3) and 2N match records
    ``{"clip", "statement", "statement_zh", "label", "kind", "change"}`` (record 2i true,
    2i + 1 false, both about clip i; ``change`` says what the pair's false statement changes,
    ``change_of``). The kinds take turns, so each is a third of the clips.
    Introduced in notebook 13."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    count = CLIPS[split] if clips is None else clips
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"clips must be a positive int, got {count!r}")
    rng = np.random.default_rng(seed * 1000 + SPLITS.index(split) + 501)
    videos = np.empty((count, FRAMES, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    records = []
    for index in range(count):
        kind = STATEMENT_KINDS[index % len(STATEMENT_KINDS)]
        videos[index], true, false = make_clip(rng, kind)
        change = change_of(true, false)
        for label, facts in ((1, true), (0, false)):
            records.append({"clip": index, "label": label, "kind": kind, "change": change,
                            "statement": statement(facts["colour"], facts["shape"],
                                                   facts["path"]),
                            "statement_zh": statement(facts["colour"], facts["shape"],
                                                      facts["path"], "zh")})
    return videos, records


def mean_frame(videos) -> np.ndarray:
    """The frame average (N, H, W, C) float32 of uint8 videos (N, T, H, W, C): all that a
    frame-averaging model sees. Introduced in notebook 13."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"videos must be 5-D (N, T, H, W, C), got shape {videos.shape}")
    return videos.astype(np.float32).mean(axis=1)


# --- on disk: data/video --------------------------------------------------------------------


def _folder(root) -> Path:
    return Path(root) if root is not None else DATA_DIR / FOLDER


COMMAND = "python -m mmcourse data --modality video"


def generate(root=None, seed: int = 0) -> Path:
    """Write ``{split}.npy`` (uint8 clips (N, 8, 32, 32, 3)) and ``{split}.jsonl`` (the match
    records of ``make_split``) for each split, plus ``manifest.json`` (seed, sha256 of each
    file), under ``root`` (default ``data/video``), atomically (``split_files.write``).
    Returns the folder. Introduced in notebook 13."""
    settings = {"version": DATA_VERSION, "seed": int(seed), "clips": CLIPS}
    return split_files.write(_folder(root), SPLITS, lambda split: make_split(split, seed),
                             settings)


def verify(root=None) -> list[str]:
    """The problems of ``data/video`` ([] when intact): a file missing, altered (its hash
    differs from the manifest) or not what the manifest's seed regenerates. Introduced in
    notebook 13."""
    def maker(manifest):
        seed = manifest["seed"]
        make_split(SPLITS[0], seed, 1)  # a seed make_split refuses is an altered manifest
        return lambda split: make_split(split, seed)

    return split_files.verify(_folder(root), SPLITS, maker, COMMAND)


def load_split(split: str, root=None) -> tuple[np.ndarray, list[dict]]:
    """The clips and match records of one split from ``data/video`` (written by
    ``generate``). Introduced in notebook 13."""
    return split_files.load(_folder(root), split, SPLITS, "video", COMMAND)
