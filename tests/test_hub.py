"""Whole KerasHub models by hand (mmcourse.hub, notebook 11): CLIP's embeddings and
PaliGemma's logits equal KerasHub's own forward pass, on random configs and weights."""

import keras
import keras_hub
import numpy as np
import pytest

from mmcourse import hub

CLIP_CONFIGS = [
    dict(patch=4, image=16, width=16, heads=2, layers=2, text_heads=4, activation="quick_gelu"),
    dict(patch=8, image=24, width=12, heads=3, layers=1, text_heads=2, activation="gelu"),
]


def _clip(config, seed):
    keras.utils.set_random_seed(seed)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=config["patch"], hidden_dim=config["width"], num_layers=config["layers"],
        num_heads=config["heads"], intermediate_dim=2 * config["width"],
        intermediate_activation=config["activation"],
        image_shape=(config["image"], config["image"], 3))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=50, embedding_dim=config["width"], hidden_dim=config["width"],
        num_layers=config["layers"], num_heads=config["text_heads"],
        intermediate_dim=24, intermediate_activation=config["activation"],
        max_sequence_length=10)
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=8)
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:  # random values everywhere, not the initial ones
        if weight.dtype.startswith("float"):
            weight.assign(weight.numpy() + 0.2 * rng.normal(size=weight.shape))
    ids = vision.embedding.position_ids
    ids.assign(np.arange(ids.shape[1])[None])
    return backbone


@pytest.mark.parametrize("config", CLIP_CONFIGS)
def test_clip_by_hand_equals_keras_hub(config):
    backbone = _clip(config, seed=0)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, config["image"], config["image"], 3)).astype("float32")
    token_ids = rng.integers(1, 49, size=(3, 7)).astype("int32")
    token_ids[np.arange(3), [6, 3, 4]] = 49  # the end token, earlier in some rows
    image_embeddings, text_embeddings = hub.clip_by_hand(backbone, images, token_ids)
    np.testing.assert_allclose(image_embeddings,
                               backbone.get_vision_embeddings(images).numpy(), atol=1e-4)
    np.testing.assert_allclose(text_embeddings,
                               backbone.get_text_embeddings(token_ids).numpy(), atol=1e-4)


def test_clip_by_hand_rejects_bad_input():
    backbone = _clip(CLIP_CONFIGS[0], seed=0)
    with pytest.raises(TypeError, match="backbone must be a keras_hub.models.CLIPBackbone"):
        hub.clip_by_hand(object(), np.zeros((1, 16, 16, 3)), np.ones((1, 3), "int32"))
    with pytest.raises(ValueError, match="images must be"):
        hub.clip_by_hand(backbone, np.zeros((1, 8, 8, 3)), np.ones((1, 3), "int32"))
    with pytest.raises(ValueError, match="token_ids must be a 2-D"):
        hub.clip_by_hand(backbone, np.zeros((1, 16, 16, 3)), np.ones(3, "int32"))


PALIGEMMA_CONFIGS = [
    dict(num_query_heads=4, num_key_value_heads=2),
    dict(num_query_heads=4, num_key_value_heads=1, head_dim=6),
    dict(num_query_heads=2, num_key_value_heads=2, use_post_ffw_norm=True,
         use_post_attention_norm=True, attention_logit_soft_cap=5.0,
         final_logit_soft_cap=3.0, use_sliding_window_attention=True, sliding_window_size=6,
         num_layers=3),
]


def _paligemma(overrides, seed):
    keras.utils.set_random_seed(seed)
    config = dict(vocabulary_size=40, image_size=16, num_layers=2, num_query_heads=4,
                  num_key_value_heads=2, hidden_dim=16, intermediate_dim=24, head_dim=8,
                  vit_patch_size=4, vit_num_heads=2, vit_hidden_dim=12, vit_num_layers=2,
                  vit_intermediate_dim=20)
    config.update(overrides)
    backbone = keras_hub.models.PaliGemmaBackbone(**config)
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:  # RMSNorm scales start at 0: make them matter
        weight.assign(weight.numpy() + 0.2 * rng.normal(size=weight.shape))
    return backbone


def _paligemma_inputs(seed):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, 40, size=(3, 9)).astype("int32")
    padding = np.ones((3, 9), "int32")
    padding[1, 6:] = 0  # a padded row
    response = np.zeros((3, 9), "int32")
    response[0, 3:] = response[1, 4:] = response[2, 6:] = 1  # prompts of 3, 4 and 6 tokens
    images = rng.normal(size=(3, 16, 16, 3)).astype("float32")
    return images, token_ids, padding, response * padding


@pytest.mark.parametrize("overrides", PALIGEMMA_CONFIGS)
def test_paligemma_logits_by_hand_equal_keras_hub(overrides):
    backbone = _paligemma(overrides, seed=2)
    images, token_ids, padding, response = _paligemma_inputs(3)
    inputs = dict(images=images, token_ids=token_ids, padding_mask=padding,
                  response_mask=response)
    expected = backbone.token_embedding(backbone(inputs), reverse=True).numpy()
    logits = hub.paligemma_logits_by_hand(backbone, images, token_ids, padding, response)
    assert logits.shape == (3, backbone.image_sequence_length + 9, 40)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_paligemma_by_hand_rejects_bad_input():
    backbone = _paligemma({}, seed=2)
    images, token_ids, padding, response = _paligemma_inputs(3)
    with pytest.raises(TypeError, match="PaliGemmaBackbone"):
        hub.paligemma_logits_by_hand(object(), images, token_ids, padding, response)
    with pytest.raises(ValueError, match="response_mask must have the shape of token_ids"):
        hub.paligemma_logits_by_hand(backbone, images, token_ids, padding, response[:, :4])
    with pytest.raises(ValueError, match=r"images must be \(N, 16, 16, 3\)"):
        hub.paligemma_logits_by_hand(backbone, images[:, :8], token_ids, padding, response)


def test_without_rotary_embedding_the_prefix_is_order_blind():
    """RoPE is the decoder's only source of word order: without it, permuting prompt tokens
    (all in the bidirectional prefix, the last one kept) leaves the last logits unchanged."""
    backbone = _paligemma({}, seed=4)
    images = np.random.default_rng(5).normal(size=(1, 16, 16, 3)).astype("float32")
    first = np.array([[2, 10, 11, 12, 13, 9]], "int32")
    second = np.array([[2, 12, 13, 10, 11, 9]], "int32")
    ones, zeros = np.ones_like(first), np.zeros_like(first)
    gaps = []
    for rotary in (True, False):
        last = [hub.paligemma_logits_by_hand(backbone, images, ids, ones, zeros,
                                             rotary=rotary)[0, -1] for ids in (first, second)]
        gaps.append(np.abs(last[0] - last[1]).max())
    assert gaps[0] > 1e-3 and gaps[1] < 1e-9
