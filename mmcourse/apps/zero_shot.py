"""A KerasHub CLIP preset sorts your own photos into labels it was never trained on:
``python -m mmcourse zero-shot`` (notebook 12).

Each label is put into caption templates ("a photo of a {}."), the templates' text
embeddings are L2-normalised and averaged, and the mean normalised again (prompt ensembling,
as ``clip.class_embeddings`` does in notebook 07). An image's probabilities are the softmax
of its cosine similarities to the labels, scaled by the model's learned ``logit_scale``
(``exp``; 100 in OpenAI's CLIP), the same logits ``CLIPBackbone`` computes for a batch.

The same code runs a real preset (``clip_vit_base_patch32``, downloaded once, with a network
or a mirror) and a tiny local one; photos are read as ``caption`` reads them
(``photos.read_photos``), and a preset that cannot be loaded is reported as ``caption``
reports it (``cli.commands_hub.load_or_report``). This module is apart from ``photos``
because it holds another model family (CLIP, a dual encoder) than PaliGemma's captioner.
"""

from __future__ import annotations

import re
import string
from typing import NamedTuple

import numpy as np

from mmcourse.hub import presets as hub_presets

#: Templates unless told otherwise: a few of the CLIP paper's ImageNet prompts.
DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "a drawing of a {}.")
#: Photos or prompts embedded at once.
BATCH_SIZE = 32
_LABEL_SEPARATORS = re.compile(r"[,，]")  # an ASCII or a Chinese (full-width) comma


class CLIPModel(NamedTuple):
    """A ``keras_hub.models.CLIPBackbone`` and the ``CLIPPreprocessor`` (tokenizer and image
    converter) of its preset: KerasHub has no CLIP task that holds both. Notebook 12."""

    backbone: object
    preprocessor: object


def load_clip(preset) -> CLIPModel:
    """The backbone and preprocessor of ``preset``, a local preset folder or a KerasHub
    preset name such as ``clip_vit_base_patch32`` (``hub_presets.load_preset``: offline, a
    real name fails fast with a ``ConnectionError`` that says what to do). Notebook 12."""
    import keras_hub  # noqa: PLC0415

    backbone = hub_presets.load_preset(keras_hub.models.CLIPBackbone, preset)
    preprocessor = hub_presets.load_preset(keras_hub.models.CLIPPreprocessor, preset)
    return CLIPModel(backbone, preprocessor)


def parse_labels(labels) -> list[str]:
    """``"cat, dog"`` (commas, ASCII or Chinese) or a list -> ``["cat", "dog"]``, stripped,
    in the order given. ``ValueError`` for an empty label, fewer than two, or a label given
    twice (CLIP's tokenizer lower-cases, so "Cat" and "cat" are the same). Notebook 12."""
    if isinstance(labels, str):
        labels = _LABEL_SEPARATORS.split(labels)
    labels = [str(label).strip() for label in labels]
    if any(not label for label in labels):
        raise ValueError(f"an empty label in {','.join(labels)!r}; give labels separated by "
                         "commas, e.g. 'cat,dog,bird'")
    if len(labels) < 2:
        raise ValueError(f"at least two labels are needed to choose between, got {labels}")
    seen = {}
    for label in labels:
        if label.lower() in seen:
            raise ValueError(f"label {label!r} is given twice (as {seen[label.lower()]!r} "
                             "too); each label once")
        seen[label.lower()] = label
    return labels


def check_templates(templates) -> list[str]:
    """``templates`` as a list, each holding ``{}`` exactly once (where the label goes) and
    no other field; ``ValueError`` otherwise. Notebook 12."""
    if isinstance(templates, str):
        templates = [templates]
    templates = list(templates)
    if not templates:
        raise ValueError("give at least one template, e.g. 'a photo of a {}.'")
    for template in templates:
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template)
                      if field is not None]
        except ValueError as error:  # a single '{' or '}'
            raise ValueError(f"template {template!r}: {error}; write a literal brace "
                             f"twice ('{{{{' or '}}}}')") from None
        if fields != [""]:
            raise ValueError(f"template {template!r} must hold '{{}}' once, where the label "
                             "goes, e.g. 'a photo of a {}.'")
    return templates


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def text_embeddings(model: CLIPModel, prompts) -> np.ndarray:
    """``backbone.get_text_embeddings`` of ``prompts`` tokenized by the preprocessor (start,
    tokens, end, padding), (N, projection_dim), not normalised. Notebook 12."""
    out = []
    for start in range(0, len(prompts), BATCH_SIZE):
        batch = model.preprocessor({"prompts": list(prompts[start:start + BATCH_SIZE]),
                                    "images": None})
        out.append(np.asarray(model.backbone.get_text_embeddings(batch["token_ids"])))
    return np.concatenate(out).astype(np.float64)


def image_embeddings(model: CLIPModel, photos) -> np.ndarray:
    """``backbone.get_vision_embeddings`` of uint8 ``photos`` (N, H, W, 3) after the
    preset's image converter, (N, projection_dim), not normalised. Notebook 12."""
    out = []
    for start in range(0, len(photos), BATCH_SIZE):
        pixels = model.preprocessor.image_converter(photos[start:start + BATCH_SIZE])
        out.append(np.asarray(model.backbone.get_vision_embeddings(pixels)))
    return np.concatenate(out).astype(np.float64)


def label_embeddings(model: CLIPModel, labels, templates=DEFAULT_TEMPLATES) -> np.ndarray:
    """One L2-normalised embedding per label (L, d): each template filled in with the label,
    embedded, normalised, averaged over the templates and normalised again (prompt
    ensembling, notebook 07). Notebook 12."""
    labels, templates = parse_labels(labels), check_templates(templates)
    prompts = [template.format(label) for label in labels for template in templates]
    embeddings = _normalise(text_embeddings(model, prompts))
    return _normalise(embeddings.reshape(len(labels), len(templates), -1).mean(axis=1))


def logit_scale(model: CLIPModel) -> float:
    """The factor on cosine similarities: ``exp`` of the backbone's learned ``logit_scale``
    (CLIP's inverse temperature, 100 in OpenAI's presets). Notebook 12."""
    return float(np.exp(np.asarray(model.backbone.clip_head.logit_scale)))


def zero_shot_probabilities(model: CLIPModel, photos, labels,
                            templates=DEFAULT_TEMPLATES) -> np.ndarray:
    """(N, L) class probabilities of uint8 ``photos``: the softmax over ``labels`` (their
    order kept) of ``logit_scale`` times the cosine similarity of each photo to each
    ``label_embeddings`` row. Rows sum to 1. Notebook 12."""
    scores = logit_scale(model) * _normalise(image_embeddings(model, photos)) @ \
        label_embeddings(model, labels, templates).T
    scores -= scores.max(axis=1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=1, keepdims=True)


def zero_shot_photos(model: CLIPModel, folder, labels,
                     templates=DEFAULT_TEMPLATES) -> list[dict]:
    """``[{"image": name, "probabilities": [p per label, in the order of labels], "label":
    the most probable}]`` for each photo of ``folder`` (``photos.read_photos``: sorted by
    name, resized to the model's input size). ``model`` is ``load_clip``'s. Notebook 12."""
    from mmcourse.apps import photos as photo_folder  # noqa: PLC0415

    labels, templates = parse_labels(labels), check_templates(templates)
    size = int(model.backbone.vision_encoder.image_shape[0])
    names, pixels = photo_folder.read_photos(folder, size)
    probabilities = zero_shot_probabilities(model, pixels, labels, templates)
    return [{"image": name, "probabilities": [float(p) for p in row],
             "label": labels[int(np.argmax(row))]}
            for name, row in zip(names, probabilities, strict=True)]


def format_table(labels, results) -> str:
    """The results as a text table: one row per image, one column per label (probabilities
    to 3 decimals), then the top label. Notebook 12."""
    width = max(len("image"), *(len(row["image"]) for row in results))
    columns = [max(5, len(label)) for label in labels]
    lines = ["  ".join(["image".ljust(width)] + [label.rjust(c) for label, c in
                                                 zip(labels, columns, strict=True)] + ["top"])]
    for row in results:
        lines.append("  ".join([row["image"].ljust(width)] + [
            f"{p:.3f}".rjust(c) for p, c in zip(row["probabilities"], columns, strict=True)]
            + [row["label"]]))
    return "\n".join(lines)
