"""Contrastive language-image pre-training (CLIP, Radford et al. 2021) at toy scale (notebook 07).

Two encoders map an image and a caption into one shared space, where a matching pair
points the same way:

- the image encoder is a small vision transformer (ViT, Dosovitskiy et al. 2021): the
  image is cut into p x p patches (``mmcourse.scratch.patchify``), each patch is projected
  to a token (``PatchEmbedding``, the same as a ``Conv2D(kernel_size=p, strides=p)``), a
  learned class token and learned position embeddings are added
  (``ClassTokenAndPositions``), pre-norm transformer blocks (``TransformerBlock`` of
  notebook 06) mix the tokens, and the class token's output is the image's summary;
- the text encoder embeds tokens and positions (``TokenAndPositionEmbedding``, padding
  masked), runs the same blocks, and averages the outputs over the real tokens
  (``MaskedMean``). Every token has attended to every other one, so the mean carries word
  order; CLIP takes the end token's output instead because its text transformer is causal,
  and only the last token has seen the whole caption;
- each encoder ends in a linear projection to the shared space; ``ContrastiveLogits``
  L2-normalises both embeddings and scales their dot products by a learned 1 / temperature.

Training pulls the N matching pairs of a batch together and pushes the N^2 - N others
apart (``contrastive_loss``). Afterwards, retrieval ranks captions for an image (or images
for a caption) by cosine similarity, and zero-shot classification asks which of a set of
prompts, one per class, is closest to the image.

The family's files, in the order they import each other: ``layers`` (the Keras layers),
``loss`` (``contrastive_loss``), ``model`` (the encoders and ``build_clip``),
``shared_space`` (embeddings, retrieval, zero-shot). Training on the course's data is
``mmcourse.train.clip`` (``train_clip``). This package re-exports the public names, so
``mmcourse.clip.contrastive_loss`` and ``clip.build_clip`` work without knowing the files.
"""

from mmcourse.clip.layers import (
    INITIAL_TEMPERATURE,
    MAX_LOGIT_SCALE,
    ClassOutput,
    ClassTokenAndPositions,
    ContrastiveLogits,
    MaskedMean,
    PatchEmbedding,
    TokenAndPositionEmbedding,
)
from mmcourse.clip.loss import ContrastiveLoss, contrastive_loss, contrastive_loss_per_pair
from mmcourse.clip.model import (
    CLIP_DEFAULTS,
    CLIP_LEARNING_RATE,
    build_clip,
    build_image_encoder,
    build_text_encoder,
)
from mmcourse.clip.shared_space import (
    PROMPT_TEMPLATES,
    class_embeddings,
    embed_images,
    embed_texts,
    retrieval_recall,
    zero_shot_predict,
)

__all__ = [
    "CLIP_DEFAULTS", "CLIP_LEARNING_RATE", "INITIAL_TEMPERATURE", "MAX_LOGIT_SCALE",
    "PROMPT_TEMPLATES", "ClassOutput", "ClassTokenAndPositions", "ContrastiveLogits",
    "ContrastiveLoss", "MaskedMean", "PatchEmbedding", "TokenAndPositionEmbedding",
    "build_clip", "build_image_encoder", "build_text_encoder", "class_embeddings",
    "contrastive_loss", "contrastive_loss_per_pair", "embed_images", "embed_texts",
    "retrieval_recall", "zero_shot_predict",
]
