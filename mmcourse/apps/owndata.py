"""Your own data: a folder of images + ``captions.csv`` to a trained match model, its
evaluation and one saved file (notebook 09).

- ``load_own_data(folder)``: every check of ``mmcourse.data.folders`` first (one ``DataError``
  lists all problems), then a deterministic train/val/test split **by image** (no image
  in two splits). Without a label column each caption is a true pair and every image
  also gets one false pair, the caption of another image of its split that is none of
  its own captions: balanced, and said so (``pairs == "shuffled captions"``).
- ``train_folder(folder, ...)``: vocabulary built from the training captions only
  (``text.build_vocabulary``), ``models.build_model(vocabulary=...)``, then the trainer core
  (``mmcourse.train.core.fit_and_evaluate``) fits and evaluates on the test split. It never
  writes into ``folder``; ``save`` writes one raw-input ``.keras`` file (``export_model``).

Loading that file back and predicting from raw strings is ``mmcourse.apps.raw_model``'s.
Keras and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmcourse.apps.raw_model import IMAGE_SIZE, export_model
from mmcourse.configs import with_options
from mmcourse.data import folders, text
from mmcourse.data.folders import DataError
from mmcourse.i18n import _
from mmcourse.names import COURSE_SCENE_FUSIONS
from mmcourse.train.core import TrainConfig

SPLITS = ("train", "val", "test")
#: Share of the images in validation and test (at least one image each).
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.1}
DEFAULT_EPOCHS = 25  # with the negative rounds: about 100,000 examples seen at least
#: The longest sequence a vocabulary-derived default allows.
MAX_SEQUENCE_LENGTH = 64
#: Without labels, the training split gets fresh false pairs in several rounds (each round
#: all true pairs plus a new shuffled caption per pair) until it holds this many pairs, at
#: most ``MAX_NEGATIVE_ROUNDS`` rounds: a small folder then gives the model enough steps.
MIN_TRAIN_PAIRS = 4000
MAX_NEGATIVE_ROUNDS = 8
#: Warn when at least this share of the images has a caption that other images have too: the
#: folder then names classes, and a "false" pair (another image's caption) may be true.
SHARED_CAPTION_WARNING = 0.2
#: Warn when the test split has fewer pairs: the 95% interval of an accuracy near 0.5 on
#: n pairs is about +-1.96 * 0.5 / sqrt(n), +-0.10 at 100 pairs (50 images without labels,
#: so a folder of about 500 images).
MIN_TEST_PAIRS = 100


@dataclass
class OwnData:
    """A checked folder as arrays, split by image. ``splits[name]`` holds that split's
    ``images`` uint8 (N, 64, 64, 3), ``texts``, ``labels`` float32 0/1 and ``image_names``;
    ``pairs`` is ``"labels"`` or ``"shuffled captions"``; ``notes`` what was done."""

    folder: Path
    pairs: str
    splits: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    #: Per split, without labels: ``false_pairs``, ``may_be_true`` (false pairs whose caption
    #: other images share and no group rules out) and ``in_own_group`` (0: never drawn).
    negatives: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def sizes(self) -> dict:
        """Per split: how many images and how many (image, text) pairs (all rounds)."""
        return {name: {"images": len(set(split["image_names"])), "pairs": len(split["texts"])}
                for name, split in self.splits.items()}


def split_images(names, seed: int = 0) -> dict:
    """Assign each distinct image name to train, val or test, deterministically under
    ``seed`` (sorted names, then a seeded permutation): ``{split: set of names}``. Val and
    test get ``SPLIT_FRACTIONS`` of the images, at least one each. Introduced in notebook 09."""
    unique = sorted(set(names))
    if len(unique) < 3:
        raise DataError(f"need at least 3 different images to split into train, val and "
                        f"test, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    n_val, n_test = (max(1, round(len(unique) * SPLIT_FRACTIONS[s])) for s in ("val", "test"))
    return {"test": set(shuffled[:n_test]), "val": set(shuffled[n_test:n_test + n_val]),
            "train": set(shuffled[n_test + n_val:])}


def caption_sharing(image_names, texts) -> dict:
    """How many images share captions: ``images``, ``captions`` (distinct), ``shared_images``
    (images with a caption that another image has too), ``share`` (their fraction),
    ``shared`` ({caption: number of images} for captions of two or more images) and
    ``most`` ((caption, images) of the most shared, or None). Introduced in notebook 09."""
    images_of: dict[str, set] = {}
    for name, caption in zip(image_names, texts, strict=True):
        images_of.setdefault(caption, set()).add(name)
    shared = {caption: len(names) for caption, names in images_of.items() if len(names) > 1}
    shared_images = set().union(*(images_of[c] for c in shared)) if shared else set()
    images = len(set(image_names))
    most = max(shared.items(), key=lambda item: (item[1], item[0])) if shared else None
    return {"images": images, "captions": len(images_of), "shared_images": len(shared_images),
            "share": len(shared_images) / max(images, 1), "shared": shared, "most": most}


def folder_warnings(rows, has_label: bool, has_group: bool = False) -> list[str]:
    """What ``check-data`` and ``train --data-dir`` warn about in a readable folder: captions
    shared by many images (without labels or groups, a false pair may then be true) and a
    test split too small to measure (fewer than ``MIN_TEST_PAIRS`` pairs). Introduced in
    notebook 09."""
    warnings = []
    names = [row.image for row in rows]
    if not has_label:
        sharing = caption_sharing(names, [row.text for row in rows])
        if sharing["share"] >= SHARED_CAPTION_WARNING and not has_group:
            caption, count = sharing["most"]
            warnings.append(_(
                "warning: captions repeat: {captions:,} different captions for {images:,} "
                "images, {share:.0%} of the images share a caption with others (most: "
                "{caption} on {count} images). A false pair is another image's caption; it is "
                "never one of the image's own, but where two different captions can describe "
                "the same image (paraphrases, translations, one class) the 'false' pair is "
                "true and the measured accuracy is too low. Add a column group (the same value "
                "for captions that mean the same), or a label column with your own false pairs"
            ).format(captions=sharing["captions"], images=sharing["images"],
                     share=sharing["share"], caption=repr(caption), count=count))
    if len(set(names)) >= 3:
        test_images = len(split_images(names)["test"])
        per_image = (len(rows) / max(len(set(names)), 1)) * (1 if has_label else 2)
        test_pairs = int(round(test_images * per_image))
        if test_pairs < MIN_TEST_PAIRS:
            half_width = 1.96 * 0.5 / np.sqrt(max(test_pairs, 1))
            warnings.append(_(
                "warning: the test split is too small to measure: {images} image(s), about "
                "{pairs} pair(s), so the test accuracy moves in steps of {step:.0%} and its 95% "
                "interval is about +-{half_width:.2f}; use at least {minimum} test pairs "
                "(about {needed:,} images)").format(
                    images=test_images, pairs=test_pairs, step=1 / max(test_pairs, 1),
                    half_width=half_width, minimum=MIN_TEST_PAIRS,
                    needed=int(np.ceil(MIN_TEST_PAIRS / per_image / SPLIT_FRACTIONS["test"]))))
    return warnings


def shuffled_pairs(image_names, texts, rng: np.random.Generator, groups=None):
    """True pairs plus one false pair per true pair: the image with the caption of another
    image that is none of its own captions, nor a caption of a row in one of its groups
    (``groups``: one group value or None per row; equal values declare the captions
    equivalent). Returns (image_names, texts, labels float32), true and false interleaved.
    ``DataError`` when no such caption exists. Introduced in notebook 09."""
    own: dict[str, set] = {}
    for name, caption in zip(image_names, texts, strict=True):
        own.setdefault(name, set()).add(caption)
    if groups is not None:
        groups = list(groups)
        by_group: dict[str, set] = {}
        for group, caption in zip(groups, texts, strict=True):
            if group is not None:
                by_group.setdefault(group, set()).add(caption)
        for name, group in zip(image_names, groups, strict=True):
            if group is not None:
                own[name] = own[name] | by_group[group]
    names_out, texts_out, labels = [], [], []
    texts = list(texts)
    for name, caption in zip(image_names, texts, strict=True):
        negative = None
        for index in rng.integers(len(texts), size=32):  # a few random draws first
            if texts[index] not in own[name]:
                negative = texts[index]
                break
        if negative is None:  # rare: scan every caption in a random order
            order = rng.permutation(len(texts))
            negative = next((texts[i] for i in order if texts[i] not in own[name]), None)
        if negative is None:
            raise DataError(f"cannot make a false pair for image {name!r}: every caption of "
                            f"its split is one of its own (or of its group); add images with "
                            f"other captions, or a label column")
        names_out += [name, name]
        texts_out += [caption, negative]
        labels += [1.0, 0.0]
    return names_out, texts_out, np.array(labels, np.float32)


def load_own_data(folder, seed: int = 0, size: int = IMAGE_SIZE,
                  negative_rounds: int | None = None) -> OwnData:
    """Check and read ``folder`` (see the module docstring). Without labels the training
    split repeats its true pairs ``negative_rounds`` times, each time with fresh shuffled
    captions (default: enough rounds for ``MIN_TRAIN_PAIRS`` pairs, at most
    ``MAX_NEGATIVE_ROUNDS``); validation and test get one round. Introduced in notebook 09."""
    check = folders.check_folder(folder, size=size)
    if not check.ok:
        raise DataError(f"{Path(folder) / folders.CAPTIONS}: {len(check.problems)} problem(s) "
                        f"(`python -m mmcourse check-data {folder}` lists them):\n"
                        + "\n".join(str(p) for p in check.problems))
    rows = check.rows
    assignment = split_images([row.image for row in rows], seed)
    has_label, has_group = check.captions.has_label, check.captions.has_group
    result = OwnData(Path(folder), "labels" if has_label else "shuffled captions")
    result.warnings = folder_warnings(rows, has_label, has_group)
    if not has_label:
        result.notes.append("no label column: every caption is a true pair, and each image "
                            "also gets the caption of another image of its split as a false "
                            "pair (balanced 1:1)" + (", never one of its group" if has_group
                                                     else ""))
    shared = caption_sharing([row.image for row in rows], [row.text for row in rows])["shared"]
    groups_of: dict[str, set] = {}
    for row in rows:
        groups_of.setdefault(row.image, set()).add(row.group)
    group_of_caption: dict[str, set] = {}
    for row in rows:
        group_of_caption.setdefault(row.text, set()).add(row.group)
    for index, split in enumerate(SPLITS):
        chosen = [row for row in rows if row.image in assignment[split]]
        names = [row.image for row in chosen]
        captions = [row.text for row in chosen]
        if has_label:
            labels = np.array([row.label for row in chosen], np.float32)
        else:
            rounds = 1
            if split == "train":
                rounds = negative_rounds or int(min(MAX_NEGATIVE_ROUNDS, max(
                    1, np.ceil(MIN_TRAIN_PAIRS / (2 * max(len(chosen), 1))))))
                result.notes.append(f"training pairs: {rounds} round(s) of true pairs, each "
                                    f"with fresh shuffled captions as false pairs")
            groups = [row.group for row in chosen] if has_group else None
            parts = [shuffled_pairs(names, captions, np.random.default_rng([seed, index, r]),
                                    groups) for r in range(rounds)]
            names = [name for part in parts for name in part[0]]
            captions = [caption for part in parts for caption in part[1]]
            labels = np.concatenate([part[2] for part in parts])
            result.negatives[split] = _negative_audit(names, captions, labels, shared,
                                                      groups_of, group_of_caption)
        result.splits[split] = {
            "images": np.stack([check.images[name] for name in names]),
            "texts": captions, "labels": labels, "image_names": names}
    if result.negatives:
        counts = {key: sum(n[key] for n in result.negatives.values())
                  for key in ("false_pairs", "may_be_true")}
        result.notes.append(
            f"false pairs that may be true: {counts['may_be_true']:,} of "
            f"{counts['false_pairs']:,} ({counts['may_be_true'] / counts['false_pairs']:.1%}) "
            f"have a caption that other images share and no group rules out"
            + ("" if counts["may_be_true"] else " (none)"))
    if has_label:
        train_labels = result.splits["train"]["labels"]
        if train_labels.min() == train_labels.max():
            raise DataError(f"every training label is {train_labels[0]:g}: the model needs "
                            f"true (1) and false (0) pairs; add the other kind, or drop the "
                            f"label column to have false pairs made by shuffling captions")
    return result


def _negative_audit(names, captions, labels, shared, groups_of, group_of_caption) -> dict:
    """Count a split's false pairs: all, those that may be true (a caption shared by several
    images, with no declared group on either side) and those inside the image's own group."""
    audit = {"false_pairs": 0, "may_be_true": 0, "in_own_group": 0}
    for name, caption, label in zip(names, captions, labels, strict=True):
        if label > 0.5:
            continue
        audit["false_pairs"] += 1
        image_groups = groups_of[name] - {None}
        caption_groups = group_of_caption[caption] - {None}
        if image_groups & caption_groups:
            audit["in_own_group"] += 1
        elif caption in shared and not (image_groups and caption_groups):
            audit["may_be_true"] += 1
    return audit


def default_sequence_length(texts) -> int:
    """The longest tokenised text (``text.split_words``), between 1 and
    ``MAX_SEQUENCE_LENGTH``. Introduced in notebook 09."""
    longest = max((len(text.split_words(t)) for t in texts), default=1)
    return int(min(max(longest, 1), MAX_SEQUENCE_LENGTH))


def _log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_folder(folder, task: str = "match", fusion: str = "concat",
                 config: TrainConfig | None = None, *, save=None,
                 sequence_length: int | None = None, max_tokens: int | None = None,
                 augment: bool = False, log=_log_to_stderr, keep_model: bool = False,
                 model_options: dict | None = None, negative_rounds: int | None = None,
                 **options) -> dict:
    """Train a match model on your own folder and evaluate it on its test split.

    How to fit is ``config``, a ``mmcourse.train.core.TrainConfig``, with ``options`` (its
    field names as keywords: ``epochs=10, seed=0, patience=3``) replacing fields; left at
    None, ``epochs`` is ``DEFAULT_EPOCHS``, ``batch_size`` 64 and ``learning_rate`` 2e-3.
    ``patience``: early stopping on the validation loss, restoring the best weights.

    Returns the result of ``mmcourse.train.core.fit_and_evaluate`` (test_accuracy,
    test_loss, accuracy_by_type by true/false pair, params, train_seconds, ...; the same
    keys as ``mmcourse.train.tasks.train``) plus ``data_dir``, ``pairs``, ``split_sizes``,
    ``oov_rate`` (test tokens unknown to the training vocabulary), ``vocabulary_size``,
    ``sequence_length``, ``notes``, ``warnings`` (``folder_warnings``), ``negatives``
    (``OwnData.negatives``) and ``saved`` (the ``.keras`` path, or None). ``keep_model``
    adds ``model`` (raw inputs) and ``data`` (the ``OwnData``). ``model_options`` go to
    ``build_model``; by default the image encoder gets CoordConv channels
    (``coordinates=True``), because captions often say *where* ("on the left", 左侧) and
    pooled features forget where. Introduced in notebook 09.
    """
    from mmcourse.matcher.model import FUSIONS

    if task != "match":
        raise ValueError(f"--task {task!r}: a folder of captions trains the match task only "
                         f"(does the text describe the image?)")
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; valid names: {', '.join(FUSIONS)}")
    if fusion in COURSE_SCENE_FUSIONS:
        raise ValueError(f"fusion {fusion!r} needs the course scenes: "
                         f"{COURSE_SCENE_FUSIONS[fusion]}, which your own images do not have: "
                         f"choose another fusion, e.g. 'anchored'")
    config = with_options(TrainConfig, config, options).resolved(
        epochs=DEFAULT_EPOCHS, batch_size=64, learning_rate=2e-3)
    if save is not None and Path(save).suffix != ".keras":
        raise ValueError(f"--save {save}: the file name must end in .keras")
    log = log or (lambda message: None)
    own = load_own_data(folder, config.seed, negative_rounds=negative_rounds)
    for note in [*own.warnings, *own.notes]:
        log(note)
    sizes = own.sizes()
    log("split by image: " + ", ".join(f"{name} {s['images']} images / {s['pairs']} pairs"
                                       for name, s in sizes.items()))

    from mmcourse.data import pipeline
    from mmcourse.matcher.model import build_model
    from mmcourse.seeding import seed_everything
    from mmcourse.train.core import Splits, fit_and_evaluate

    train_split = own.splits["train"]
    vocabulary = text.build_vocabulary(train_split["texts"], max_tokens=max_tokens)
    if sequence_length is None:
        sequence_length = default_sequence_length(train_split["texts"])
    oov = text.oov_rate(own.splits["test"]["texts"], vocabulary)
    if oov > text.OOV_WARNING:
        log(f"warning: {oov:.0%} of the test tokens are not in the training vocabulary")
    seed_everything(config.seed)

    def dataset(split, shuffle, with_augment=False):
        part = own.splits[split]
        ids = text.vectorize(part["texts"], vocabulary=vocabulary,
                             sequence_length=sequence_length, warn=False)
        return pipeline.dataset_from_arrays(part["images"], ids, part["labels"],
                                            batch_size=config.batch_size, shuffle=shuffle,
                                            seed=config.seed, augment=with_augment,
                                            vocabulary=vocabulary)

    splits = Splits(dataset("train", True, augment),
                    dataset("val", False) if config.validate else None, dataset("test", False),
                    {"train": sizes["train"]["pairs"],
                     "validation": sizes["val"]["pairs"] if config.validate else 0,
                     "test": sizes["test"]["pairs"]})
    model_options = {"coordinates": True, "learning_rate": config.learning_rate,
                     **(model_options or {})}
    model = build_model(task, fusion, vocabulary=vocabulary, sequence_length=sequence_length,
                        **model_options)
    log(f"training {task}/{fusion} on {own.folder.name}: {model.count_params():,} parameters, "
        f"{len(vocabulary)} tokens, sequence length {sequence_length}, {config.epochs} epochs")
    test_labels = own.splits["test"]["labels"]
    kinds = ["true pair" if label > 0.5 else (
        "false pair" if own.pairs == "labels" else "shuffled caption") for label in test_labels]
    fitted = fit_and_evaluate(model, splits, config, test_labels=test_labels,
                              test_kinds=kinds, name=own.folder.name, log=log)
    raw_model = export_model(model, vocabulary, sequence_length)
    saved = None
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        raw_model.save(save)
        saved = str(save)
        log(f"saved {save}: vocabulary and standardisation inside; load it with "
            f"mmcourse.apps.raw_model.load_raw_model or keras.saving.load_model(path, "
            f"safe_mode=True)")
    result = {
        "task": task, "fusion": fusion, "level": "own data", **fitted,
        "data_dir": str(own.folder), "pairs": own.pairs, "split_sizes": sizes,
        "oov_rate": oov, "vocabulary_size": len(vocabulary),
        "sequence_length": int(sequence_length), "notes": own.notes, "saved": saved,
        "warnings": own.warnings, "negatives": own.negatives,
    }
    if keep_model:
        result["model"], result["data"] = raw_model, own
    return result

