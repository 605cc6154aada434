"""CLIP's symmetric contrastive loss (InfoNCE in both directions), as a function and as a
Keras loss for ``fit`` (notebook 07).
"""

from __future__ import annotations

import keras
from keras import ops

from mmcourse.clip.layers import l2_normalise


def _targets(logits, caption_ids):
    """Row targets: the diagonal, or, with caption ids, every column whose caption equals the
    row's, in equal shares (a batch can hold the same caption twice)."""
    if caption_ids is None:
        return ops.eye(ops.shape(logits)[0], dtype=logits.dtype)
    ids = ops.reshape(caption_ids, (-1,))
    same = ops.cast(ops.equal(ids[:, None], ids[None, :]), logits.dtype)
    return same / ops.sum(same, axis=1, keepdims=True)


def contrastive_loss_per_pair(logits, caption_ids=None):
    """The symmetric cross-entropy of a square logits matrix, per pair (N,):
    (CE(row i, targets) + CE(column i, targets)) / 2, row i scoring image i against every
    text and column i text i against every image. Introduced in notebook 07."""
    targets = _targets(logits, caption_ids)
    image_to_text = -ops.sum(targets * ops.log_softmax(logits, axis=1), axis=1)
    text_to_image = -ops.sum(targets * ops.log_softmax(logits, axis=0), axis=0)
    return (image_to_text + text_to_image) / 2


def contrastive_loss(image_embeddings, text_embeddings, temperature, caption_ids=None):
    """CLIP's loss for N image-text pairs, (N, d) each, pair i matching:

        logits = normalise(I) normalise(T)^T / temperature                  (N, N)
        loss = (CE(rows, diagonal) + CE(columns, diagonal)) / 2

    mean over the N pairs; rows score each image against every text, columns each text
    against every image. ``caption_ids`` (N,), optional, spreads a row's target over every
    text with the same caption (duplicates are not negatives). Returns a scalar tensor
    (``float(...)`` works). Introduced in notebook 07.
    """
    image_embeddings = ops.convert_to_tensor(image_embeddings, dtype="float32")
    text_embeddings = ops.convert_to_tensor(text_embeddings, dtype="float32")
    if len(image_embeddings.shape) != 2 or tuple(image_embeddings.shape) != \
            tuple(text_embeddings.shape):
        raise ValueError(f"image_embeddings and text_embeddings must both be (N, d) with the "
                         f"same N and d, got {tuple(image_embeddings.shape)} and "
                         f"{tuple(text_embeddings.shape)}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    logits = ops.matmul(l2_normalise(image_embeddings),
                        ops.transpose(l2_normalise(text_embeddings))) / temperature
    return ops.mean(contrastive_loss_per_pair(logits, caption_ids))


@keras.saving.register_keras_serializable(package="mmcourse")
class ContrastiveLoss(keras.losses.Loss):
    """``contrastive_loss`` for ``fit``: y_true is the batch's caption ids (N,), y_pred the
    logits (N, N) of ``ContrastiveLogits``. Introduced in notebook 07."""

    def __init__(self, name: str = "contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return contrastive_loss_per_pair(y_pred, y_true)
