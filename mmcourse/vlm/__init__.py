"""A multimodal language model at toy scale: a GPT-style decoder, a LLaVA-style prefix of
visual tokens, Flamingo's gated cross-attention and fast decoding (notebook 08).

This family's public face: ``from mmcourse import vlm`` gives every name below. The code is in

- ``vlm.vocab``: the decoder's vocabulary (``decoder_vocabulary``: the course words, then
  "[START]" and "[END]"), texts to ids and back (``encode_texts``, ``ids_to_texts``);
- ``vlm.layers``: ``DecoderEmbedding``, ``DecoderBlock`` (pre-norm, causal), Flamingo's
  ``GatedCrossAttention`` (tanh gates that start at 0, so the new model starts as the text
  decoder, exactly), ``GridCoordinates`` and ``DropPrefix``;
- ``vlm.model``: ``build_decoder``, ``build_projector``, ``vision_tokens`` (notebook 07's
  frozen ViT tokens before pooling) and ``build_vlm(decoder, vision, arch)``, LLaVA
  (``arch="llava"``, Liu et al. 2023: projected visual tokens before the text) or Flamingo
  (``arch="flamingo"``, Alayrac et al. 2022: a gated cross-attention before every block);
- ``vlm.decode``: ``decode_ids`` and ``generate``, greedy or top-k, with a KV cache
  (``use_cache=True``) or recomputing the whole sequence.

Judging captions by their meaning (``caption_statements``, ``caption_is_true``,
``correct_statements``) lives with the course grammar in ``mmcourse.data.captions`` and is
re-exported here. Training (``train_captioner``, ``train_vqa``, ``caption_backbone``,
``GateTrace``, the metrics) reads datasets, so it is in ``mmcourse.train.vlm``.

Visual tokens carry the ViT's positions; the decoder's position embedding numbers the text
tokens only (from 0, with or without a prefix), so a text decoder pre-trained alone keeps its
positions in the VLM. Like ``mmcourse.clip``, this package imports Keras at module level
because it defines layers registered for ``.keras`` saving; other modules import it inside
functions.
"""

from mmcourse.data.captions import caption_is_true, caption_statements, correct_statements
from mmcourse.vlm.decode import METHODS, decode_ids, generate
from mmcourse.vlm.layers import (
    DecoderBlock,
    DecoderEmbedding,
    DropPrefix,
    GatedCrossAttention,
    GridCoordinates,
)
from mmcourse.vlm.model import (
    ARCHS,
    DECODER_DEFAULTS,
    DECODER_MAX_LENGTH,
    build_decoder,
    build_projector,
    build_vlm,
    on_vision_tokens,
    vision_tokens,
)
from mmcourse.vlm.vocab import SPECIAL_TOKENS, decoder_vocabulary, encode_texts, ids_to_texts

__all__ = [
    "ARCHS", "DECODER_DEFAULTS", "DECODER_MAX_LENGTH", "METHODS", "SPECIAL_TOKENS",
    "DecoderBlock", "DecoderEmbedding", "DropPrefix", "GatedCrossAttention", "GridCoordinates",
    "build_decoder", "build_projector", "build_vlm", "caption_is_true", "caption_statements",
    "correct_statements", "decode_ids", "decoder_vocabulary", "encode_texts", "generate",
    "ids_to_texts", "on_vision_tokens", "vision_tokens",
]
