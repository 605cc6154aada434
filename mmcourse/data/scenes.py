"""The course dataset: scenes of coloured shapes with captions and questions (notebook 01).

Scenes are drawn with OpenCV (anti-aliased) on a plain gray background, 64x64 RGB.

* ``attributes`` level: one object per scene, captioned "a large red circle".
* ``relations`` level: 2 to 4 objects, at most one of each colour (as in Sort-of-CLEVR,
  Santoro et al. 2017), with statements about left/right, above/below, nearest/furthest
  and counting. Every pair of centres differs by at least ``MARGIN`` pixels in x and in y,
  so every left/right and above/below statement is clear-cut.

Tasks: ``match`` (image + text -> 1 if the text is true of the image), ``qa`` (question ->
answer word) and ``retrieval`` (image <-> caption pairs). Each scene gets one true and one
false ``match`` statement; the false one changes exactly one attribute or relation of the
true one, chosen uniformly, so neither the image alone nor the text alone predicts the
label (see data/README.md). Files: PNG images, JSONL records, ``vocab.json`` and a
``manifest.json`` of hashes; ``python -m mmcourse data [--verify]`` builds or checks them.

This module draws the scenes (``random_scene``), writes a dataset's files (``write_levels``)
and loads them; ``data.draw`` renders a scene, ``data.statements`` holds the grammar and
the truth, ``data.store`` generates and verifies a dataset folder atomically.
"""

from __future__ import annotations

import errno
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from mmcourse.data import folders
from mmcourse.data.draw import COLOURS, IMAGE_SIZE, SHAPES, SIZES, object_extent, render_scene
from mmcourse.data.grammar_zh import ANSWERS_ZH, SEQUENCE_LENGTHS_ZH, WORDS_ZH
from mmcourse.data.statements import (
    ANSWERS,
    MARGIN,
    WORDS,
    answer_word,
    centre_distance,
    draw_questions,
    match_pair,
    retrieval_caption,
    statement_text,
)
from mmcourse.data.text import SEQUENCE_LENGTH, STANDARDIZE, split_words
from mmcourse.names import DATA_TASKS, LEVELS
from mmcourse.paths import DATA_DIR

TASKS = DATA_TASKS
SPLITS = ("train", "val", "test")

#: Relations level: radius range of every object.
RELATION_RADIUS = (6, 8)

#: Number of scenes per level and split. Each scene gives MATCH_PAIRS_PER_SCENE pairs of
#: match records (one true, one false), QA_PER_SCENE qa records and 1 retrieval record.
DEFAULT_SIZES = {
    "attributes": {"train": 2000, "val": 250, "test": 500},
    "relations": {"train": 4000, "val": 500, "test": 1000},
}
#: Questions cost no pixels: at the relations level every scene is asked 10 questions
#: (half relational) and 5 statement pairs (Sort-of-CLEVR asks 20 questions per image), so
#: notebook 06's models see 40,000 training questions from 4,000 images.
QA_PER_SCENE = {"attributes": 1, "relations": 10}
MATCH_PAIRS_PER_SCENE = {"attributes": 1, "relations": 5}
#: How many of a scene's questions come from its own random stream (all of them in data
#: version 1); the others come from a second stream, so the images stay those of version 1.
QA_FROM_SCENE_STREAM = {"attributes": 1, "relations": 2}


# --- scenes --------------------------------------------------------------------------------


def random_scene(rng: np.random.Generator, level: str) -> list[dict]:
    """Draw the objects of one scene (positions are integer pixel centres). Introduced in
    notebook 01."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if level == "attributes":
        size = tuple(SIZES)[rng.integers(len(SIZES))]
        obj = {"shape": SHAPES[rng.integers(3)], "colour": tuple(COLOURS)[rng.integers(6)],
               "size": size, "r": int(rng.integers(SIZES[size][0], SIZES[size][1] + 1))}
        reach = int(np.ceil(object_extent(obj))) + 1
        obj["x"], obj["y"] = (int(v) for v in rng.integers(reach, IMAGE_SIZE - reach, size=2))
        return [{k: obj[k] for k in ("shape", "colour", "size", "x", "y", "r")}]
    if level != "relations":
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    count = int(rng.integers(2, 5))
    colours = rng.choice(len(COLOURS), size=count, replace=False)
    objects = [{"shape": SHAPES[rng.integers(3)], "colour": tuple(COLOURS)[c],
                "r": int(rng.integers(RELATION_RADIUS[0], RELATION_RADIUS[1] + 1))}
               for c in colours]
    reach = int(np.ceil(1.2 * RELATION_RADIUS[1])) + 1
    span = IMAGE_SIZE - 2 * reach - (count - 1) * MARGIN
    while True:
        # Sorted uniform draws plus i * MARGIN: every pair differs by >= MARGIN, uniformly.
        xs = np.sort(rng.integers(0, span, size=count)) + reach + MARGIN * np.arange(count)
        ys = np.sort(rng.integers(0, span, size=count)) + reach + MARGIN * np.arange(count)
        xs, ys = rng.permutation(xs), rng.permutation(ys)
        for obj, x, y in zip(objects, xs, ys, strict=True):
            obj["x"], obj["y"] = int(x), int(y)
        if all(centre_distance(a, b) >= object_extent(a) + object_extent(b) + 2
               for i, a in enumerate(objects) for b in objects[i + 1:]):
            return [{k: o[k] for k in ("shape", "colour", "x", "y", "r")} for o in objects]


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of the decoded pixels and their shape (what the manifest stores for an image).
    Introduced in notebook 01."""
    image = np.ascontiguousarray(image)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def split_sizes(sizes) -> dict:
    """The examples per level and split: ``DEFAULT_SIZES`` with ``sizes``' entries
    over them, each checked. Notebook 01."""
    result = {level: dict(DEFAULT_SIZES[level]) for level in LEVELS}
    for level, splits in (sizes or {}).items():
        if level not in LEVELS:
            raise ValueError(f"sizes has level {level!r}; expected levels {LEVELS}")
        for split, n in splits.items():
            if split not in SPLITS or isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"sizes[{level!r}] must map splits {SPLITS} to ints >= 1, "
                                 f"got {split!r}: {n!r}")
            result[level][split] = n
    return result


def _write_jsonl(path: Path, records) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_levels(folder: Path, seed: int, sizes: dict, progress: bool,
                 language: str = "en") -> dict:
    """Write every level and split under ``folder``; return the manifest's file entries.
    ``language`` changes only the texts (and answer words): scenes, images, labels and the
    random draws are those of the English data."""
    from tqdm.auto import tqdm

    files = {}
    words = WORDS if language == "en" else WORDS_ZH
    vocabulary = {"", "[UNK]", *words}
    total = sum(sum(s.values()) for s in sizes.values())
    bar = tqdm(total=total, desc="drawing scenes", unit="scene", file=sys.stderr,
               mininterval=1.0, disable=not progress)
    for level_index, level in enumerate(LEVELS):
        seen = set()  # pixel hashes: no image (hence no image+text pair) in two splits
        for split_index, split in enumerate(SPLITS):
            rng = np.random.default_rng([seed, level_index, split_index])
            extra_rng = np.random.default_rng([seed, level_index, split_index, 1])
            split_dir = folder / level / split
            (split_dir / "images").mkdir(parents=True)
            records = {"scenes": [], "match": [], "qa": [], "retrieval": []}
            for scene_id in range(sizes[level][split]):
                while True:
                    objects = random_scene(rng, level)
                    image = render_scene(objects)
                    digest = pixel_hash(image)
                    if digest not in seen:
                        seen.add(digest)
                        break
                name = f"images/{scene_id:05d}.png"
                if not cv2.imwrite(str(split_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 1]):  # False, not an exception
                    raise OSError(errno.EIO, "OpenCV could not write the image (disk full?)",
                                  str(split_dir / name))
                files[f"{level}/{split}/{name}"] = {"sha256": digest, "shape": list(image.shape)}
                base = {"image": name, "scene": scene_id}
                records["scenes"].append({**base, "objects": objects})
                # The scene's first match pair and first questions come from its stream,
                # the others from a second one: more records per scene change no image.
                pairs = [match_pair(objects, stream, level) for stream in
                         (rng, *[extra_rng] * (MATCH_PAIRS_PER_SCENE[level] - 1))]
                for statement, false_statement, changed in pairs:
                    records["match"].append({**base, "text": statement_text(statement, language),
                                             "label": 1, "kind": statement["kind"],
                                             "changed": None})
                    records["match"].append({**base,
                                             "text": statement_text(false_statement, language),
                                             "label": 0, "kind": statement["kind"],
                                             "changed": changed})
                first = QA_FROM_SCENE_STREAM[level]
                questions = (draw_questions(objects, rng, level, first, language)
                             + draw_questions(objects, extra_rng, level,
                                              QA_PER_SCENE[level] - first, language))
                for kind, question, answer in questions:
                    records["qa"].append({**base, "text": question,
                                          "answer": answer_word(answer, language),
                                          "label": ANSWERS.index(answer), "kind": kind})
                records["retrieval"].append({**base,
                                             "text": retrieval_caption(objects, level, language),
                                             "label": scene_id})
                bar.update()
            for task in ("match", "qa"):  # true and false statements interleaved at random
                order = rng.permutation(len(records[task]))
                records[task] = [records[task][i] for i in order]
            for task, task_records in records.items():
                for record in task_records if task != "scenes" else ():
                    tokens = split_words(record["text"])
                    assert set(tokens) <= vocabulary and len(tokens) <= (
                        SEQUENCE_LENGTH if language == "en" else SEQUENCE_LENGTHS_ZH[level]), record
                path = split_dir / f"{task}.jsonl"
                _write_jsonl(path, task_records)
                files[f"{level}/{split}/{task}.jsonl"] = _file_entry(path, len(task_records))
    bar.close()
    vocab_path = folder / "vocab.json"
    if language == "en":  # as in data version 2, byte for byte
        vocab = {"tokens": ["", "[UNK]", *WORDS], "answers": list(ANSWERS),
                 "standardize": "lower_and_strip_punctuation", "split": "whitespace",
                 "sequence_length": SEQUENCE_LENGTH}
        content = json.dumps(vocab, indent=1)
    else:
        vocab = {"tokens": ["", "[UNK]", *WORDS_ZH], "answers": list(ANSWERS_ZH),
                 "standardize": STANDARDIZE, "split": "whitespace", "language": language,
                 "sequence_length": max(SEQUENCE_LENGTHS_ZH.values()),
                 "sequence_lengths": SEQUENCE_LENGTHS_ZH}
        content = json.dumps(vocab, indent=1, ensure_ascii=False)
    vocab_path.write_text(content + "\n", encoding="utf-8")
    files["vocab.json"] = _file_entry(vocab_path)
    return files


def _file_entry(path: Path, records: int | None = None) -> dict:
    entry = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    if records is not None:
        entry["records"] = records
    return entry


def data_root(root) -> Path:
    """``root`` as a Path, or the course's ``DATA_DIR`` when it is None. Notebook 01."""
    return Path(root) if root is not None else DATA_DIR


def read_image(path, size: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 (OpenCV reads BGR: converted here, once).

    With ``size``, resize to (size, size) (``cv2.INTER_AREA``). Raises ``DataError``
    naming the file when it is missing, cannot be decoded, is over the pixel limit or a
    corrupt JPEG; transparency is composited over white (``folders.decode_image``).
    Introduced in notebook 01.
    """
    return folders.read_image(path, size)



# --- loading ------------------------------------------------------------------------------


def _check_names(task: str, level: str, split: str) -> None:
    if task not in (*TASKS, "scenes"):
        raise ValueError(f"task must be one of {TASKS} (or 'scenes'), got {task!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def load_records(task: str, level: str, split: str, root=None) -> list[dict]:
    """The JSONL records of one task, level and split. ``image`` is relative to the JSONL
    file's folder. Introduced in notebook 01."""
    _check_names(task, level, split)
    path = data_root(root) / level / split / f"{task}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m mmcourse data` or "
                                f"mmcourse.data.store.ensure_data()")
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def load_arrays(task: str, level: str, split: str, root=None):
    """(images uint8 (N, 64, 64, 3) RGB, texts, labels) of one task, level and split.

    Labels: match float32 0/1; qa int32 index into ``ANSWERS`` (``text.answer_vocabulary``);
    retrieval int32 pair ids. Introduced in notebook 01.
    """
    records = load_records(task, level, split, root)
    folder = data_root(root) / level / split
    cache = {}
    images = np.empty((len(records), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for index, record in enumerate(records):
        name = record["image"]
        if name not in cache:
            cache[name] = read_image(folder / name, IMAGE_SIZE)
        images[index] = cache[name]
    texts = [record["text"] for record in records]
    dtype = np.float32 if task == "match" else np.int32
    labels = np.array([record["label"] for record in records], dtype=dtype)
    return images, texts, labels


# --- bring your own data ------------------------------------------------------------------

FOLDER_COLUMNS = ("image", "text")


def load_folder(folder, size: int = IMAGE_SIZE):
    """Read a folder of images plus ``captions.csv`` (columns image,text and optional label).

    Returns (images uint8 (N, size, size, 3) RGB, texts, labels): labels float32 0/1 from
    the ``label`` (or ``labels``) column, or int32 pair ids 0..N-1 when there is none (every
    row a true pair, as in retrieval). All problems are found first and raised as one
    ``DataError`` naming the file, line and column of each (``mmcourse.data.folders``).
    Introduced in notebook 01.
    """
    return folders.load_folder(folder, size)
