"""Scaled dot-product and multi-head attention by hand, equal to Keras'
``MultiHeadAttention`` with the same weights (notebook 06).
"""

from __future__ import annotations

import numpy as np

from mmcourse.scratch.activations import softmax
from mmcourse.scratch.checks import check_array

#: The score of a masked-out position, as in Keras: its weight becomes exp(-1e9) = 0, and
#: a row with every position masked gets uniform weights.
MASKED_SCORE = -1e9


def scaled_dot_product_attention(q, k, v, mask=None):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V (Vaswani et al. 2017).

    ``q`` (N, Tq, d), ``k`` (N, Tk, d), ``v`` (N, Tk, dv); ``mask`` an optional boolean
    (N, Tq, Tk) array, True where query t may attend to key s (False positions get the
    score ``MASKED_SCORE``, as in Keras). Returns ``(output (N, Tq, dv), weights
    (N, Tq, Tk))``; every row of ``weights`` sums to 1. Introduced in notebook 06.
    """
    q = check_array("q", q, 3, layout="(N, Tq, d)")
    k = check_array("k", k, 3, layout="(N, Tk, d)", context=f"q has shape {q.shape}")
    v = check_array("v", v, 3, layout="(N, Tk, dv)", context=f"k has shape {k.shape}")
    if k.shape[0] != q.shape[0] or k.shape[2] != q.shape[2]:
        raise ValueError(f"k must be (N, Tk, d) with the N and d of q: q {q.shape}, k {k.shape}")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v must be (N, Tk, dv) with the N and Tk of k: k {k.shape}, "
                         f"v {v.shape}")
    scores = q @ np.swapaxes(k, 1, 2) / np.sqrt(q.shape[2])  # (N, Tq, Tk)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != scores.shape:
            raise ValueError(f"mask must be a boolean (N, Tq, Tk) array {scores.shape} for q "
                             f"{q.shape} and k {k.shape}, got {mask.dtype} {mask.shape}")
        scores = np.where(mask, scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def multi_head_attention(query, value, weights, num_heads: int, key=None, mask=None):
    """``keras.layers.MultiHeadAttention(num_heads, key_dim)(query, value, key)`` by hand.

    ``query`` (N, Tq, d_q), ``value`` (N, Tv, d_v), ``key`` (N, Tv, d_k), default
    ``value``. ``weights`` is ``layer.get_weights()``: the query, key and value kernels
    (d_in, num_heads, key_dim) and biases (num_heads, key_dim), then the output kernel
    (num_heads, value_dim, d_model) and bias (d_model,). Each head h attends with its own
    projections, Q_h = query W_q[:, h] + b_q[h] (and so on), and the heads' outputs are
    projected back together: out = sum_h head_h W_o[h] + b_o. ``mask`` is an optional
    boolean (N, Tq, Tv) array, True where attention is allowed (Keras' ``attention_mask``).
    Returns the output (N, Tq, d_model). Introduced in notebook 06.
    """
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) \
            or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    if not isinstance(weights, (list, tuple)) or len(weights) != 8:
        raise ValueError("weights must be layer.get_weights() of a MultiHeadAttention with "
                         "biases: 8 arrays (query, key, value kernels and biases, output "
                         f"kernel and bias), got {type(weights).__name__} of "
                         f"{len(weights) if hasattr(weights, '__len__') else '?'}")
    query = check_array("query", query, 3, layout="(N, Tq, d_q)")
    value = check_array("value", value, 3, layout="(N, Tv, d_v)",
                        context=f"query has shape {query.shape}")
    key = value if key is None else check_array("key", key, 3, layout="(N, Tv, d_k)",
                                                context=f"value has shape {value.shape}")
    if value.shape[0] != query.shape[0] or key.shape[:2] != value.shape[:2]:
        raise ValueError(f"query, key and value must share N, and key and value their length "
                         f"Tv: query {query.shape}, key {key.shape}, value {value.shape}")
    (wq, bq, wk, bk, wv, bv, wo, bo) = (check_array(f"weights[{i}]", w)
                                        for i, w in enumerate(weights))
    for name, kernel, inputs in (("query", wq, query), ("key", wk, key), ("value", wv, value)):
        if kernel.ndim != 3 or kernel.shape[0] != inputs.shape[2] or kernel.shape[1] != num_heads:
            raise ValueError(f"the {name} kernel must be (d_in, num_heads, head_dim) = "
                             f"({inputs.shape[2]}, {num_heads}, ...) for {name} "
                             f"{inputs.shape}, got {kernel.shape}")
    if wo.ndim != 3 or wo.shape[:2] != wv.shape[1:]:
        raise ValueError(f"the output kernel must be (num_heads, value_dim, d_model) with "
                         f"{wv.shape[1:]} first, got {wo.shape}")

    def project(x, kernel, bias):  # (N, T, d_in) -> (N, heads, T, head_dim)
        return np.einsum("ntd,dhk->nhtk", x, kernel) + bias[None, :, None, :]

    q, k, v = project(query, wq, bq), project(key, wk, bk), project(value, wv, bv)
    n, heads, tq, _ = q.shape
    flat = lambda a: a.reshape(n * heads, a.shape[2], a.shape[3])  # noqa: E731
    head_mask = None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (n, tq, k.shape[2]):
            raise ValueError(f"mask must be a boolean (N, Tq, Tv) array {(n, tq, k.shape[2])} "
                             f"for query {query.shape} and value {value.shape}, got "
                             f"{mask.dtype} {mask.shape}")
        head_mask = np.repeat(mask, heads, axis=0)  # the same mask for every head
    attended, _ = scaled_dot_product_attention(flat(q), flat(k), flat(v), head_mask)
    attended = attended.reshape(n, heads, tq, -1)
    return np.einsum("nhtv,hvd->ntd", attended, wo) + bo
