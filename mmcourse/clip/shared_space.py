"""Using CLIP's shared space (notebook 07): normalised embeddings of images and texts,
retrieval recall@k, and zero-shot classification by prompt ensembling.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mmcourse.data import text

#: Caption templates for zero-shot prompts; the class embedding is their mean (prompt
#: ensembling, as in the CLIP paper). Only words of the course vocabulary.
PROMPT_TEMPLATES = ("a {size} {colour} {shape}", "the {size} {colour} {shape}",
                    "there is a {size} {colour} {shape}")


def in_batches(encoder, inputs, batch_size: int) -> np.ndarray:
    """The encoder called on slices of ``inputs`` (a direct call: ``predict`` would trace a
    new function for every new input size)."""
    if len(inputs) == 0:
        raise ValueError("need at least one input to embed, got none")
    return np.concatenate([ops.convert_to_numpy(encoder(inputs[start:start + batch_size],
                                                        training=False))
                           for start in range(0, len(inputs), batch_size)])


def embed_images(model, images, batch_size: int = 256) -> np.ndarray:
    """L2-normalised image embeddings (N, d) of uint8 (N, H, W, 3) images. Introduced in
    notebook 07."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    embeddings = in_batches(model.get_layer("image_encoder"),
                            images.astype(np.float32) / 255.0, batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def embed_texts(model, token_ids, batch_size: int = 256) -> np.ndarray:
    """L2-normalised text embeddings (N, d) of token ids (N, L). Introduced in notebook 07."""
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids must be integers (N, L), got {token_ids.dtype} "
                         f"{token_ids.shape}")
    embeddings = in_batches(model.get_layer("text_encoder"), token_ids.astype(np.int32),
                            batch_size)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def retrieval_recall(similarity, image_captions, text_captions, ks=(1, 5)) -> dict:
    """Recall@k in both directions from a similarity matrix (N_images, N_texts).

    Captions repeat (several images are "a small red circle"), so a hit is judged by text,
    not by index: image i is a hit at k when one of its k most similar texts *reads* the
    same as image i's caption; text j is a hit when one of its k most similar images has
    text j as its caption. Returns ``{"recall_at_k": {"image_to_text": r,
    "text_to_image": r}}`` for each k. Introduced in notebook 07.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    image_captions, text_captions = list(image_captions), list(text_captions)
    if similarity.shape != (len(image_captions), len(text_captions)):
        raise ValueError(f"similarity must be (N_images, N_texts) = ({len(image_captions)}, "
                         f"{len(text_captions)}) for the captions given, got {similarity.shape}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"ks must hold positive ints, got {k!r}")
    names = {caption: index for index, caption in enumerate(sorted(set(image_captions)
                                                                    | set(text_captions)))}
    image_ids = np.array([names[c] for c in image_captions])
    text_ids = np.array([names[c] for c in text_captions])
    # Stable sorts: among equal similarities the lower index comes first.
    texts_ranked = np.argsort(-similarity, axis=1, kind="stable")  # per image
    images_ranked = np.argsort(-similarity.T, axis=1, kind="stable")  # per text
    result = {}
    for k in ks:
        image_hits = (text_ids[texts_ranked[:, :k]] == image_ids[:, None]).any(axis=1)
        text_hits = (image_ids[images_ranked[:, :k]] == text_ids[:, None]).any(axis=1)
        result[f"recall_at_{k}"] = {"image_to_text": float(image_hits.mean()),
                                    "text_to_image": float(text_hits.mean())}
    return result

def class_embeddings(model, classes, templates=PROMPT_TEMPLATES, root=None,
                     vocabulary=None) -> np.ndarray:
    """One L2-normalised embedding per class (C, d): each template filled in with the
    class's size, colour and shape, embedded, normalised, averaged over the templates and
    normalised again (prompt ensembling). Introduced in notebook 07."""
    if not templates:
        raise ValueError("templates must hold at least one caption template")
    prompts = [template.format(size=size, colour=colour, shape=shape)
               for size, colour, shape in classes for template in templates]
    embeddings = embed_texts(model, text.vectorize(prompts, root=root, vocabulary=vocabulary))
    mean = embeddings.reshape(len(classes), len(templates), -1).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def zero_shot_predict(model, images, classes, templates=PROMPT_TEMPLATES, root=None,
                      vocabulary=None) -> np.ndarray:
    """The index of the closest class prompt for each image (N,): zero-shot classification,
    no classifier trained. Introduced in notebook 07."""
    scores = embed_images(model, images) @ class_embeddings(model, classes, templates, root,
                                                            vocabulary).T
    return scores.argmax(axis=1)
