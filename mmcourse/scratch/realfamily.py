"""The pieces of a real model family (Gemma, PaliGemma, CLIP) in NumPy (notebook 11).

RMSNorm, rotary position embedding, grouped-query attention, the GeGLU feed-forward layer
and the prefix-LM mask, each one equation long and each tested alone against the KerasHub
layer it mirrors. ``mmcourse.scratch`` re-exports them beside notebooks 02-07's pieces, and
``mmcourse.hub`` puts them together into whole models. Weights use KerasHub's layouts.
"""

from __future__ import annotations

import math

import numpy as np

#: The score of a masked-out position, as in Keras' Softmax layer.
MASKED_SCORE = -1e9


def _array(name: str, x, ndim=None, layout: str = "") -> np.ndarray:
    """``x`` as a float64 array, or a TypeError/ValueError that names ``name``."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf.Tensor, Keras variable
        x = x.numpy()
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and array.ndim not in allowed:
        ranks = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name} must be {ranks} {layout}, got shape {array.shape}")
    return array


def softmax(scores, axis: int = -1) -> np.ndarray:
    """exp(s) / sum exp(s) along ``axis``, shifted by the maximum for stability."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=axis, keepdims=True)


def gelu(x, approximate: bool = True) -> np.ndarray:
    """GELU, x Phi(x): the tanh approximation (Gemma, SigLIP) or the exact erf form."""
    x = np.asarray(x, dtype=np.float64)
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def quick_gelu(x) -> np.ndarray:
    """CLIP's cheap GELU: x sigmoid(1.702 x)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-1.702 * x))


def layer_norm(x, gamma, beta, epsilon: float) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis (CLIP, SigLIP)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * np.asarray(gamma) + np.asarray(beta)


def rms_norm(x, scale, epsilon: float = 1e-6) -> np.ndarray:
    """RMSNorm as Gemma writes it: x / sqrt(mean(x^2) + epsilon) * (1 + scale).

    No mean is subtracted and there is no bias (Zhang & Sennrich 2019); Gemma stores the
    gain as ``scale`` around 0, so a fresh layer is the identity up to the division.
    ``x`` (..., d), ``scale`` (d,). Introduced in notebook 11.
    """
    x = _array("x", x)
    scale = _array("scale", scale, 1, "(d,)")
    if x.ndim == 0 or x.shape[-1] != scale.shape[0]:
        raise ValueError(f"scale must have one entry per feature of x: x {x.shape}, "
                         f"scale {scale.shape}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + epsilon) * (1.0 + scale)


def rotary_embedding(x, positions=None, max_wavelength: float = 10_000.0) -> np.ndarray:
    """Rotary position embedding (RoPE, Su et al. 2021) in the rotate-half layout.

    ``x`` is (N, T, d) or (N, T, heads, d) with d even; ``positions`` (T,) defaults to
    0..T-1. Feature pair (i, i + d/2) at position p is rotated by the angle
    p * max_wavelength^(-2i/d), so the dot product of a rotated query and key depends only
    on their distance. Equals ``keras_hub.layers.RotaryEmbedding()(x)``. Notebook 11.
    """
    x = _array("x", x, (3, 4), "(N, T, d) or (N, T, heads, d)")
    length, dim = x.shape[1], x.shape[-1]
    if dim % 2:
        raise ValueError(f"the feature size of x must be even to rotate pairs, got {dim}")
    positions = np.arange(length, dtype=np.float64) if positions is None \
        else _array("positions", positions, 1, "(T,)")
    if positions.shape[0] != length:
        raise ValueError(f"positions must have T={length} entries for x {x.shape}, "
                         f"got {positions.shape}")
    inverse_frequency = max_wavelength ** (-np.arange(0, dim, 2) / dim)  # (d/2,)
    angles = positions[:, None] * inverse_frequency[None, :]  # (T, d/2)
    angles = np.concatenate([angles, angles], axis=-1)  # (T, d): pair i and i + d/2 share
    shape = (1, length) + (1,) * (x.ndim - 3) + (dim,)
    cos, sin = np.cos(angles).reshape(shape), np.sin(angles).reshape(shape)
    first, second = x[..., : dim // 2], x[..., dim // 2:]
    rotated_half = np.concatenate([-second, first], axis=-1)
    return x * cos + rotated_half * sin


def grouped_query_attention(query, key, value, mask=None) -> np.ndarray:
    """Grouped-query attention (Ainslie et al. 2023): many query heads share few K/V heads.

    ``query`` (N, T, Hq, h), ``key`` and ``value`` (N, S, Hkv, h) with Hq a multiple of
    Hkv: query head j reads key/value head j // (Hq / Hkv). Scores are q.k / sqrt(h);
    ``mask`` (N, T, S) is True where query t may see key s, and a query that may see
    nothing gets zeros, as in KerasHub's Gemma attention. Hkv = Hq is multi-head
    attention, Hkv = 1 multi-query attention. Returns (N, T, Hq, h). Notebook 11.
    """
    query = _array("query", query, 4, "(N, T, Hq, h)")
    key = _array("key", key, 4, "(N, S, Hkv, h)")
    value = _array("value", value, 4, "(N, S, Hkv, h)")
    if key.shape != value.shape or key.shape[0] != query.shape[0] \
            or key.shape[3] != query.shape[3]:
        raise ValueError(f"key and value must be (N, S, Hkv, h) with the N and h of query: "
                         f"query {query.shape}, key {key.shape}, value {value.shape}")
    query_heads, kv_heads = query.shape[2], key.shape[2]
    if query_heads % kv_heads:
        raise ValueError(f"the query heads ({query_heads}) must be a multiple of the key/value "
                         f"heads ({kv_heads})")
    group = query_heads // kv_heads
    key = np.repeat(key, group, axis=2)  # head j of the repeated K is K's head j // group
    value = np.repeat(value, group, axis=2)
    scores = np.einsum("nthd,nshd->nhts", query, key) / math.sqrt(query.shape[3])
    if mask is not None:
        mask = np.asarray(mask).astype(bool)
        expected = (query.shape[0], query.shape[1], key.shape[1])
        if mask.shape != expected:
            raise ValueError(f"mask must be (N, T, S) = {expected}, got {mask.shape}")
        scores = np.where(mask[:, None], scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    if mask is not None:
        weights = np.where(mask[:, None], weights, 0.0)  # an all-masked row gives zeros
    return np.einsum("nhts,nshd->nthd", weights, value)


def geglu(x, gate_kernel, up_kernel, down_kernel) -> np.ndarray:
    """Gemma's gated feed-forward layer (Shazeer 2020): (GELU(x W_gate) * (x W_up)) W_down.

    ``x`` (..., d), ``gate_kernel`` and ``up_kernel`` (d, f), ``down_kernel`` (f, d); no
    biases, and GELU is the tanh approximation. Notebook 11.
    """
    x = _array("x", x)
    gate = _array("gate_kernel", gate_kernel, 2, "(d, f)")
    up = _array("up_kernel", up_kernel, 2, "(d, f)")
    down = _array("down_kernel", down_kernel, 2, "(f, d)")
    if gate.shape != up.shape or gate.shape[0] != x.shape[-1] or down.shape[0] != gate.shape[1]:
        raise ValueError(f"kernels must be gate (d, f), up (d, f), down (f, d_out) for x with "
                         f"d={x.shape[-1]}: gate {gate.shape}, up {up.shape}, down {down.shape}")
    return (gelu(x @ gate) * (x @ up)) @ down


def prefix_lm_mask(padding_mask, response_mask=None, image_tokens: int = 0) -> np.ndarray:
    """The prefix-LM attention mask of PaliGemma, (N, T, T) with T = image_tokens + L.

    ``padding_mask`` and ``response_mask`` are (N, L) over the text; image tokens come
    first and count as prefix. Query t may see key s when s is a real prefix token (image
    or prompt: seen by everyone, in both directions) or when s is a response token with
    s <= t (causal over the response). Padding is seen by no one. Without a response mask
    the whole text is causal. Notebook 11.
    """
    padding = np.asarray(padding_mask).astype(bool)
    if padding.ndim != 2:
        raise ValueError(f"padding_mask must be 2-D (N, L), got shape {padding.shape}")
    if isinstance(image_tokens, bool) or not isinstance(image_tokens, (int, np.integer)) \
            or image_tokens < 0:
        raise ValueError(f"image_tokens must be an int >= 0, got {image_tokens!r}")
    n, text_shape = padding.shape[0], padding.shape
    length = image_tokens + padding.shape[1]
    causal = np.tril(np.ones((length, length), bool))[None]
    padding = np.concatenate([np.ones((n, image_tokens), bool), padding], axis=1)
    if response_mask is None:
        return causal & padding[:, None, :]
    response = np.asarray(response_mask).astype(bool)
    if response.shape != text_shape:
        raise ValueError(f"response_mask must have the shape of padding_mask {text_shape}, "
                         f"got {response.shape}")
    response = np.concatenate([np.zeros((n, image_tokens), bool), response], axis=1)
    prefix = padding & ~response
    return prefix[:, None, :] | (causal & response[:, None, :])


def lora_dense(x, kernel, bias, a, b, alpha, rank) -> np.ndarray:
    """A Dense layer with a LoRA update (Hu et al. 2021), as Keras' ``Dense.enable_lora``:
    y = x W + (alpha / rank) (x A) B + bias, with ``kernel`` W (d_in, d_out), ``a`` A
    (d_in, rank), ``b`` B (rank, d_out) and ``bias`` (d_out,) or None. Only A and B are
    trained; B starts at zero, so the adapted layer starts equal to the base one. The
    low-rank path costs rank (d_in + d_out) numbers instead of d_in d_out. Notebook 12."""
    x = _array("x", x)
    kernel = _array("kernel", kernel, 2, "(d_in, d_out)")
    a = _array("a", a, 2, "(d_in, rank)")
    b = _array("b", b, 2, "(rank, d_out)")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank must be an int >= 1, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) \
            or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    d_in, d_out = kernel.shape
    if x.shape[-1] != d_in:
        raise ValueError(f"x has {x.shape[-1]} features but kernel expects d_in={d_in}: "
                         f"x {x.shape}, kernel {kernel.shape}")
    if a.shape != (d_in, rank) or b.shape != (rank, d_out):
        raise ValueError(f"a must be (d_in, rank) = {(d_in, rank)} and b (rank, d_out) = "
                         f"{(rank, d_out)}, got a {a.shape}, b {b.shape}")
    y = x @ kernel + (alpha / rank) * ((x @ a) @ b)
    if bias is not None:
        bias = _array("bias", bias, 1, "(d_out,)")
        if bias.shape != (d_out,):
            raise ValueError(f"bias must be (d_out,) = {(d_out,)}, got {bias.shape}")
        y = y + bias
    return y
