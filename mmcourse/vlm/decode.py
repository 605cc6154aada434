"""Writing text with a decoder or a VLM (notebook 08): ``decode_ids`` (greedy or top-k with a
seed, stopping at "[END]", never emitting padding, "[UNK]" or "[START]") and ``generate``
(texts in, texts out). With ``use_cache=True`` each layer's keys and values are kept (a KV
cache) and each step runs only the new token; ``use_cache=False`` recomputes the whole
sequence (``python -m mmcourse bench decode`` compares the two).
"""

from __future__ import annotations

import weakref

import numpy as np
from keras import ops

from mmcourse.configs import positive_int
from mmcourse.data import text
from mmcourse.vlm.model import model_parts
from mmcourse.vlm.vocab import decoder_vocabulary, ids_to_texts, word_ids

METHODS = ("greedy", "top_k")


class _Decoder:
    """The compiled forward passes of one model: the whole sequence, and the KV cache's
    prefill and one-token step."""

    def __init__(self, model):
        import tensorflow as tf  # noqa: PLC0415

        self.parts = model_parts(model)
        self.full = tf.function(self._full, reduce_retracing=True)
        self.prefill = tf.function(self._prefill, reduce_retracing=True)
        self.step = tf.function(self._step, reduce_retracing=True)
        self.visual = tf.function(self._visual, reduce_retracing=True)

    def _visual(self, images):
        return self.parts["projector"](self.parts["vision"](images, training=False))

    def _run(self, visual, token_ids, caches=None):
        parts = self.parts
        hidden = parts["embedding"](token_ids)
        if parts["prefix"]:
            hidden = ops.concatenate([ops.cast(visual, hidden.dtype), hidden], axis=1)
        for block, cross in zip(parts["blocks"], parts["cross"], strict=True):
            if cross is not None:
                hidden = cross(hidden, visual)
            if caches is not None:
                caches.append(block.keys_values(hidden))
            hidden = block(hidden)
        return hidden

    def _full(self, visual, token_ids):
        hidden = self._run(visual, token_ids)[:, -1:]
        return self.parts["head"](self.parts["norm"](hidden))[:, 0]

    def _prefill(self, visual, token_ids):
        caches = []
        hidden = self._run(visual, token_ids, caches)[:, -1:]
        image_caches = [cross.image_keys_values(visual) if cross is not None else ()
                        for cross in self.parts["cross"]]
        return self.parts["head"](self.parts["norm"](hidden))[:, 0], caches, image_caches

    def _step(self, token_ids, position, caches, image_caches):
        hidden = self.parts["embedding"].step(token_ids, position)
        new_caches = []
        for block, cross, cache, image_cache in zip(self.parts["blocks"], self.parts["cross"],
                                                    caches, image_caches, strict=True):
            if cross is not None:
                hidden = cross.step(hidden, *image_cache)
            hidden, keys, values = block.step(hidden, *cache)
            new_caches.append((keys, values))
        return self.parts["head"](self.parts["norm"](hidden))[:, 0], new_caches


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_decoder(model) -> _Decoder:
    """The KV-cache decoder of ``model``, built once and kept while the model lives.
    Notebook 08."""
    if model not in _DECODERS:
        _DECODERS[model] = _Decoder(model)
    return _DECODERS[model]


def _check_images(images, parts):
    images = np.asarray(images)
    shape = tuple(parts["vision"].inputs[0].shape[1:])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != shape \
            or len(images) == 0:
        raise ValueError(f"images must be uint8 (N, {', '.join(map(str, shape))}) with N >= "
                         f"1, got {images.dtype} {images.shape}")
    return images.astype(np.float32) / 255.0


def choose_tokens(logits, method, k, temperature, rng):
    """The next token id of each row of ``logits`` (N, V): the argmax (greedy), or drawn
    from the top ``k`` at ``temperature`` with ``rng`` (top-k). Notebook 08."""
    if method == "greedy":
        return np.argmax(logits, axis=1)
    chosen = np.empty(len(logits), np.int64)
    for row, scores in enumerate(logits):
        top = np.argsort(-scores, kind="stable")[:k]
        scaled = (scores[top] - scores[top[0]]) / temperature
        weights = np.exp(scaled)
        chosen[row] = top[rng.choice(k, p=weights / weights.sum())]
    return chosen


def decode_ids(model, images=None, prompt_ids=None, max_length: int = 16,
               method: str = "greedy", k: int = 5, seed: int = 0, temperature: float = 1.0,
               use_cache: bool = True, stop_at_end: bool = True, return_logits: bool = False):
    """Generated token ids (batch, max_length) after "[START]" and ``prompt_ids`` (batch,
    L0) (optional; ids of words); a row is padded with 0 after its "[END]".

    The vocabulary's last two ids are "[START]" and "[END]"; the logits of padding (0),
    "[UNK]" (1) and "[START]" are set to -inf before choosing, so they are never emitted
    ("[END]" too with ``stop_at_end=False``, which always generates ``max_length`` tokens).
    ``method="greedy"`` takes the argmax; ``"top_k"`` samples among the k largest logits
    (divided by ``temperature``) with ``numpy.random.default_rng(seed)``. With
    ``return_logits`` also returns the raw logits of every step (batch, steps, V).
    Introduced in notebook 08.
    """
    parts = model_parts(model)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    max_length = positive_int("max_length", max_length)
    vocabulary_size = parts["head"].units
    start, end = vocabulary_size - 2, vocabulary_size - 1
    banned = [0, 1, start] + ([] if stop_at_end else [end])
    if method == "top_k":
        k = positive_int("k", k)
        if k > vocabulary_size - len(banned):
            raise ValueError(f"k must be at most {vocabulary_size - len(banned)} (the tokens "
                             f"that may be emitted), got {k}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if parts["vision"] is None:
        if images is not None:
            raise ValueError("images must be None for a text decoder without a vision encoder")
        visual = None
        batch = 1 if prompt_ids is None else len(np.asarray(prompt_ids))
    else:
        if images is None:
            raise ValueError("images must be given for a vision-language model")
        pixels = _check_images(images, parts)
        batch = len(pixels)
    prompt = np.zeros((batch, 0), np.int32) if prompt_ids is None \
        else np.asarray(prompt_ids).reshape(batch, -1) if np.size(prompt_ids) == 0 \
        else np.asarray(prompt_ids)
    if prompt.ndim != 2 or len(prompt) != batch or not np.issubdtype(prompt.dtype, np.integer) \
            or (prompt.size and (prompt.min() < 2 or prompt.max() >= start)):
        raise ValueError(f"prompt_ids must be word ids in [2, {start}) of shape (batch, L0) "
                         f"with batch = {batch}, got {prompt.dtype} {prompt.shape}")
    positions = parts["embedding"].max_length
    if prompt.shape[1] + max_length > positions:
        raise ValueError(f"max_length + prompt length must be at most {positions} (the "
                         f"decoder's positions, [START] included), got max_length="
                         f"{max_length} with a prompt of {prompt.shape[1]} words")
    decoder = cached_decoder(model)
    if parts["vision"] is not None:
        visual = decoder.visual(ops.convert_to_tensor(pixels))
    token_ids = np.concatenate([np.full((batch, 1), start, np.int32),
                                prompt.astype(np.int32)], axis=1)
    if use_cache:
        logits, caches, image_caches = decoder.prefill(visual, ops.convert_to_tensor(token_ids))
    else:
        logits = decoder.full(visual, ops.convert_to_tensor(token_ids))
    rng = np.random.default_rng(seed)
    generated = np.zeros((batch, max_length), np.int32)
    all_logits = []
    finished = np.zeros(batch, bool)
    for t in range(max_length):
        scores = np.array(ops.convert_to_numpy(logits), dtype=np.float64)
        all_logits.append(scores.copy())
        scores[:, banned] = -np.inf
        chosen = choose_tokens(scores, method, k, temperature, rng)
        generated[:, t] = np.where(finished, 0, chosen)
        finished |= chosen == end
        if finished.all() or t == max_length - 1:
            break
        new = np.where(finished, end, chosen).astype(np.int32)[:, None]
        if use_cache:
            logits, caches = decoder.step(ops.convert_to_tensor(new),
                                          ops.convert_to_tensor(token_ids.shape[1], "int32"),
                                          caches, image_caches)
            token_ids = np.concatenate([token_ids, new], axis=1)
        else:
            token_ids = np.concatenate([token_ids, new], axis=1)
            logits = decoder.full(visual, ops.convert_to_tensor(token_ids))
    if return_logits:
        return generated, np.stack(all_logits, axis=1)
    return generated


def generate(model, images=None, prompt="", max_length: int = 16, method: str = "greedy",
             k: int = 5, seed: int = 0, temperature: float = 1.0, use_cache: bool = True,
             vocabulary=None, root=None) -> list[str]:
    """Texts written by ``model`` (``build_vlm``, or ``build_decoder`` with
    ``images=None``): one per image (uint8 (N, H, W, 3)), continuing "[START]" + ``prompt``
    (one str for all, or one per image) for at most ``max_length`` tokens, "[END]" included
    and not shown. ``vocabulary`` defaults to ``decoder_vocabulary(root)``. See
    ``decode_ids`` for the methods and limits. Introduced in notebook 08."""
    vocabulary = decoder_vocabulary(root) if vocabulary is None else list(vocabulary)
    vocabulary_size = model_parts(model)["head"].units
    if len(vocabulary) != vocabulary_size:
        raise ValueError(f"vocabulary has {len(vocabulary)} tokens but the model predicts "
                         f"{vocabulary_size}: pass the decoder_vocabulary it was built for")
    count = 1 if images is None else len(np.asarray(images))
    prompts = [prompt] * count if isinstance(prompt, str) else list(prompt)
    if len(prompts) != count or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a str or {count} strs (one per image), got "
                         f"{prompt!r}")
    rows = [word_ids(text.split_words(p), vocabulary, "prompt") for p in prompts]
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"prompt: every prompt must have the same number of words, got "
                         f"{sorted({len(row) for row in rows})}")
    prompt_ids = np.array(rows, np.int32).reshape(count, -1)
    generated = decode_ids(model, images, prompt_ids, max_length, method, k, seed,
                           temperature, use_cache)
    return ids_to_texts(generated, vocabulary)

