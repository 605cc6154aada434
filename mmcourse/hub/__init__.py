"""KerasHub's CLIP and PaliGemma computed by hand, in NumPy, from their weights (notebook 11).

``clip_by_hand`` and ``paligemma_logits_by_hand`` read a KerasHub backbone's weights and
redo its forward pass with the course's own pieces: ``scratch.patchify`` and
``scratch.multi_head_attention`` (notebooks 06-07), and RMSNorm, RoPE, grouped-query
attention, GeGLU and the prefix-LM mask (``scratch_realfamily``). The tests assert that
the results equal KerasHub's own outputs, so KerasHub is the independent reference.
"""

from __future__ import annotations

import math

import numpy as np

from mmcourse import scratch
from mmcourse.scratch.checks import check_array
from mmcourse.scratch.realfamily import (
    MASKED_SCORE,
    geglu,
    gelu,
    grouped_query_attention,
    layer_norm,
    prefix_lm_mask,
    quick_gelu,
    rms_norm,
    rotary_embedding,
    softmax,
)


def _value(variable) -> np.ndarray:
    """A weight as a float64 NumPy array."""
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable, np.float64)


def _activation(name):
    if name == "quick_gelu":
        return quick_gelu
    if name == "gelu":
        return lambda x: gelu(x, approximate=False)
    raise ValueError(f"intermediate_activation {name!r} is not done by hand; expected "
                     "'quick_gelu' (CLIP) or 'gelu'")


def _ln(layer, x):
    return layer_norm(x, _value(layer.gamma), _value(layer.beta), layer.epsilon)


def _dense(layer, x):
    out = x @ _value(layer.kernel)
    return out + _value(layer.bias) if layer.use_bias else out


def _clip_block(block, x, causal: bool):
    """One CLIP encoder block: pre-norm attention and a quick-GELU MLP, each with a residual."""
    n, length, _ = x.shape
    mask = np.broadcast_to(np.tril(np.ones((length, length), bool)), (n, length, length)) \
        if causal else None
    attention = block.attention
    x = x + scratch.multi_head_attention(_ln(block.layer_norm_1, x),
                                         _ln(block.layer_norm_1, x),
                                         attention.get_weights(), attention.num_heads,
                                         mask=mask)
    hidden = _activation(block.intermediate_activation)(_dense(block.dense_1,
                                                               _ln(block.layer_norm_2, x)))
    return x + _dense(block.dense_2, hidden)


def _check_backbone(backbone, class_name: str):
    if type(backbone).__name__ != class_name:
        raise TypeError(f"backbone must be a keras_hub.models.{class_name}, "
                        f"got {type(backbone).__name__}")


def clip_vision_by_hand(backbone, images) -> np.ndarray:
    """CLIP's image embeddings, (N, projection_dim): patches (a convolution with stride =
    kernel = patch size is a matrix product on the patches), the class token, learned
    positions, a pre-norm, the encoder blocks, a final norm, the class token's output and
    the projection. Notebook 11."""
    encoder = backbone.vision_encoder
    embedding = encoder.embedding
    images = check_array("images", images, 4, layout="(N, H, W, 3)")
    if tuple(images.shape[1:]) != tuple(encoder.image_shape):
        raise ValueError(f"images must be (N, *{tuple(encoder.image_shape)}) for this "
                         f"backbone, got {images.shape}")
    kernel = _value(embedding.patch_embedding.kernel)  # (p, p, 3, D)
    patches = scratch.patchify(images.astype(np.float64), embedding.patch_size)
    tokens = patches @ kernel.reshape(-1, kernel.shape[-1])  # (N, P, D)
    class_token = np.broadcast_to(_value(embedding.class_embedding),
                                  (len(images), 1, kernel.shape[-1]))
    x = np.concatenate([class_token, tokens], axis=1)
    position_ids = np.asarray(embedding.position_ids.numpy()).reshape(-1)
    x = x + _value(embedding.position_embedding.embeddings)[position_ids]
    x = _ln(encoder.pre_layer_norm, x)
    for block in encoder.encoder_layers:
        x = _clip_block(block, x, causal=False)
    x = _ln(encoder.layer_norm, x)
    return x[:, 0] @ _value(backbone.vision_projection.kernel)


def clip_text_by_hand(backbone, token_ids) -> np.ndarray:
    """CLIP's text embeddings, (N, projection_dim): token plus position embeddings, causal
    encoder blocks, a final norm, and the output at the end token (the largest id in the
    row, as in KerasHub's pooler), projected. Notebook 11."""
    encoder = backbone.text_encoder
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or token_ids.dtype.kind not in "iu":
        raise ValueError(f"token_ids must be a 2-D (N, L) integer array, got "
                         f"{token_ids.dtype} {token_ids.shape}")
    embedding = encoder.embedding
    x = _value(embedding.token_embedding.embeddings)[token_ids]
    x = x + _value(embedding.position_embedding.position_embeddings)[: token_ids.shape[1]]
    for block in encoder.encoder_layers:
        x = _clip_block(block, x, causal=True)
    x = _ln(encoder.layer_norm, x)
    end = np.argmax(token_ids, axis=1)
    return x[np.arange(len(x)), end] @ _value(backbone.text_projection.kernel)


def clip_by_hand(backbone, images, token_ids):
    """``(image_embeddings, text_embeddings)`` of a ``keras_hub.models.CLIPBackbone``, by hand.

    ``images`` preprocessed (N, H, W, 3), ``token_ids`` (N, L). Equal to
    ``backbone.get_vision_embeddings(images)`` and ``backbone.get_text_embeddings(token_ids)``
    (tested to 1e-4). Only NumPy and the backbone's weights are used. Notebook 11.
    """
    _check_backbone(backbone, "CLIPBackbone")
    return clip_vision_by_hand(backbone, images), clip_text_by_hand(backbone, token_ids)


# --- PaliGemma ---------------------------------------------------------------


def _siglip_block(block, x):
    """One SigLIP-style ViT block: pre-LayerNorm multi-head attention (no mask), then a
    tanh-GELU MLP, each with a residual."""
    attention = block.attn
    n, length, width = x.shape
    heads, head_dim = attention.num_heads, attention.head_dim

    def split(layer, inputs):  # (N, T, D) -> (N, T, heads, head_dim)
        return _dense(layer, inputs).reshape(n, length, heads, head_dim)

    normed = _ln(block.layer_norm_1, x)
    q, k, v = (split(layer, normed) for layer in
               (attention.query_proj, attention.key_proj, attention.value_proj))
    scores = np.einsum("nthd,nshd->nhts", q, k) / math.sqrt(head_dim)
    attended = np.einsum("nhts,nshd->nthd", softmax(scores), v).reshape(n, length, width)
    x = x + _dense(attention.out_proj, attended)
    hidden = gelu(_dense(block.mlp_dense_1, _ln(block.layer_norm_2, x)))
    return x + _dense(block.mlp_dense_2, hidden)


def paligemma_image_tokens_by_hand(backbone, images) -> np.ndarray:
    """The image tokens PaliGemma feeds its decoder, (N, patches, hidden_dim): a SigLIP-style
    ViT (patch convolution with bias, learned positions, no class token, pre-norm blocks, a
    final LayerNorm) and the linear projector into the decoder's width. Notebook 11."""
    vit = backbone.vit_encoder
    encoder = vit.get_layer("image_encoder")
    images = check_array("images", images, 4, layout="(N, H, W, 3)")
    size = backbone.image_size
    if images.shape[1:] != (size, size, 3):
        raise ValueError(f"images must be (N, {size}, {size}, 3) for this backbone, "
                         f"got {images.shape}")
    conv = encoder.vision_embeddings.patch_embedding
    kernel = _value(conv.kernel)
    patches = scratch.patchify(images.astype(np.float64), encoder.patch_size)
    x = patches @ kernel.reshape(-1, kernel.shape[-1]) + _value(conv.bias)
    x = x + _value(encoder.vision_embeddings.position_embedding.embeddings)
    for block in encoder.resblocks:
        x = _siglip_block(block, x)
    x = _ln(encoder.encoder_layer_norm, x)
    if backbone.vit_pooling == "gap":
        x = x.mean(axis=1, keepdims=True)
    elif backbone.vit_pooling == "zero":
        x = x[:, :1]
    elif backbone.vit_pooling is not None:
        raise ValueError(f"vit_pooling {backbone.vit_pooling!r} is not done by hand; "
                         "expected None (PaliGemma), 'gap' or 'zero'")
    projector = vit.get_layer("image_classifier")
    if projector.activation.__name__ != "linear":
        raise ValueError("vit_classifier_activation must be None (a linear projector) "
                         f"to be done by hand, got {projector.activation.__name__}")
    return _dense(projector, x)


def _soft_cap(x, cap):
    return x if cap is None else np.tanh(x / cap) * cap


def _gemma_attention(block, x, mask, backbone, rotary=True):
    """Gemma's attention: RMS-normed input, Q/K/V projections, RoPE on Q and K, grouped-query
    attention under the prefix-LM mask, the output projection."""
    attention = block.attention
    normed = rms_norm(x, _value(block.pre_attention_norm.scale),
                      block.pre_attention_norm.epsilon)
    q = np.einsum("btd,ndh->btnh", normed, _value(attention.query_dense.kernel))
    k = np.einsum("btd,kdh->btkh", normed, _value(attention.key_dense.kernel))
    v = np.einsum("btd,kdh->btkh", normed, _value(attention.value_dense.kernel))
    if rotary:
        q, k = rotary_embedding(q), rotary_embedding(k)
    if block.use_sliding_window_attention:
        length = x.shape[1]
        distance = np.abs(np.arange(length)[:, None] - np.arange(length)[None, :])
        mask = mask & (distance <= min(length, backbone.sliding_window_size - 1))[None]
    if attention.logit_soft_cap is None:
        attended = grouped_query_attention(q, k, v, mask)
    else:  # Gemma 2: tanh-capped scores before the mask
        group = q.shape[2] // k.shape[2]
        k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
        scores = np.einsum("nthd,nshd->nhts", q, k) / math.sqrt(q.shape[3])
        scores = np.where(mask[:, None], _soft_cap(scores, attention.logit_soft_cap),
                          MASKED_SCORE)
        weights = np.where(mask[:, None], softmax(scores), 0.0)
        attended = np.einsum("nhts,nshd->nthd", weights, v)
    out = np.einsum("btnh,nhd->btd", attended, _value(attention.output_dense.kernel))
    if block.use_post_attention_norm:
        out = rms_norm(out, _value(block.post_attention_norm.scale),
                       block.post_attention_norm.epsilon)
    return out


def _gemma_block(block, x, mask, backbone, rotary=True):
    """One Gemma decoder block: x + attention(RMSNorm(x)), then + GeGLU(RMSNorm(x))."""
    x = x + _gemma_attention(block, x, mask, backbone, rotary)
    normed = rms_norm(x, _value(block.pre_ffw_norm.scale), block.pre_ffw_norm.epsilon)
    out = geglu(normed, _value(block.gating_ffw.kernel), _value(block.gating_ffw_2.kernel),
                _value(block.ffw_linear.kernel))
    if block.use_post_ffw_norm:
        out = rms_norm(out, _value(block.post_ffw_norm.scale), block.post_ffw_norm.epsilon)
    return x + out


def paligemma_logits_by_hand(backbone, images, token_ids, padding_mask, response_mask, *,
                             rotary: bool = True):
    """The next-token logits of a ``keras_hub.models.PaliGemmaBackbone``, by hand.

    Image tokens (SigLIP-style ViT + linear projector), then the text's token embeddings
    scaled by sqrt(hidden_dim), through the Gemma decoder blocks under the prefix-LM mask
    (bidirectional over image and prompt, causal over the response), a final RMSNorm and
    the tied output embedding. Returns (N, image tokens + L, vocabulary), equal to
    ``backbone.token_embedding(backbone(inputs), reverse=True)`` (tested to 1e-4).
    ``rotary=False`` leaves out the rotary embedding, the decoder's only source of word
    order (an experiment of notebook 11; KerasHub has no such switch). Notebook 11.
    """
    _check_backbone(backbone, "PaliGemmaBackbone")
    token_ids = np.asarray(token_ids)
    if token_ids.ndim != 2 or token_ids.dtype.kind not in "iu":
        raise ValueError(f"token_ids must be a 2-D (N, L) integer array, got "
                         f"{token_ids.dtype} {token_ids.shape}")
    for name, mask in (("padding_mask", padding_mask), ("response_mask", response_mask)):
        if np.shape(mask) != token_ids.shape:
            raise ValueError(f"{name} must have the shape of token_ids {token_ids.shape}, "
                             f"got {np.shape(mask)}")
    image_tokens = paligemma_image_tokens_by_hand(backbone, images)
    if len(image_tokens) != len(token_ids):
        raise ValueError(f"images and token_ids must have the same N: {len(image_tokens)} "
                         f"and {len(token_ids)}")
    table = _value(backbone.token_embedding.embeddings)  # (vocabulary, hidden_dim)
    text = table[token_ids] * math.sqrt(backbone.hidden_dim)
    x = np.concatenate([image_tokens, text], axis=1)
    mask = prefix_lm_mask(padding_mask, response_mask, image_tokens=image_tokens.shape[1])
    for block in backbone.transformer_layers:
        x = _gemma_block(block, x, mask, backbone, rotary)
    x = rms_norm(x, _value(backbone.layer_norm.scale), backbone.layer_norm.epsilon)
    return _soft_cap(x @ table.T, backbone.final_logit_soft_cap)
