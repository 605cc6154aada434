"""KerasHub's CLIP on notebook 07's inputs and loss (mmcourse.hub.clip, notebook 11). The
references are independent: the end token placed by hand, the images averaged over 2 x 2
blocks by hand, and the embeddings of ``hub.clip_by_hand`` (NumPy)."""

import keras
import keras_hub  # noqa: F401
import numpy as np
import pytest

from mmcourse import clip, hub
from mmcourse.hub import clip as hub_clip
from mmcourse.hub import presets as hub_presets
from mmcourse.train import hub_clip as hub_clip_training

END = 9


def test_append_end_token_writes_the_end_id_right_after_the_last_word():
    ids = np.array([[5, 7, 0], [3, 0, 0], [1, 2, 4]], "int32")
    expected = [[5, 7, END, 0], [3, END, 0, 0], [1, 2, 4, END]]
    out = keras.ops.convert_to_numpy(hub_clip.AppendEndToken(END)(ids))
    assert out.tolist() == expected


def _randomised(backbone, seed):
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:  # random values everywhere, not the initial ones
        if weight.dtype.startswith("float"):
            weight.assign(weight.numpy() + 0.2 * rng.normal(size=weight.shape))
    return backbone


@pytest.mark.parametrize("image_size", [32, 64])
def test_encoders_equal_clip_by_hand_on_the_course_inputs(image_size):
    backbone = _randomised(hub_presets.tiny_clip(
        END + 1, seed=1, image_size=image_size, patch_size=8, hidden_dim=16, num_layers=1,
        num_heads=2, intermediate_dim=32, projection_dim=8, max_sequence_length=5), 1)
    image_encoder, text_encoder = hub_clip.hub_encoders(backbone, (64, 64, 3))
    rng = np.random.default_rng(0)
    images = rng.random((3, 64, 64, 3)).astype("float32")
    ids = np.array([[5, 7, 0, 0], [3, 1, 2, 8], [4, 0, 0, 0]], "int32")
    factor = 64 // image_size  # area resizing by a whole factor: the mean of each block
    small = images.reshape(3, image_size, factor, image_size, factor, 3).mean(axis=(2, 4))
    with_end = np.array([[5, 7, END, 0, 0], [3, 1, 2, 8, END], [4, END, 0, 0, 0]], "int32")
    image_ref, text_ref = hub.clip_by_hand(backbone, small * 2 - 1, with_end)  # centred
    np.testing.assert_allclose(keras.ops.convert_to_numpy(image_encoder(images)), image_ref,
                               atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(text_encoder(ids)), text_ref,
                               atol=1e-4)


def test_a_conv_stem_feeds_its_feature_map_to_the_vit():
    model = hub_clip.build_hub_clip(12, stem_filters=(4, 8), patch_size=2, hidden_dim=16,
                                    num_layers=1, num_heads=2, intermediate_dim=32)
    encoder = model.get_layer("image_encoder")
    vit = next(layer for layer in encoder.layers if hasattr(layer, "image_shape"))
    assert tuple(vit.image_shape) == (16, 16, 8)  # 64 / 2 / 2, the last stem's filters
    assert [layer.strides for layer in encoder.layers if "stem" in layer.name] == [(2, 2)] * 2


def test_build_hub_clip_is_notebook_07s_model_around_keras_hub():
    model = hub_clip.build_hub_clip(12, max_length=6, seed=3, hidden_dim=16, num_layers=1,
                                    num_heads=2, intermediate_dim=32, projection_dim=8)
    assert isinstance(model.loss, clip.ContrastiveLoss)
    images = np.random.default_rng(1).random((2, 64, 64, 3)).astype("float32")
    ids = np.array([[1, 2, 0], [4, 0, 0]], "int32")
    image = keras.ops.convert_to_numpy(model.get_layer("image_encoder")(images))
    words = keras.ops.convert_to_numpy(model.get_layer("text_encoder")(ids))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    expected = image @ words.T / clip.INITIAL_TEMPERATURE  # CLIP's initial 1 / 0.07
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model([images, ids])), expected,
                               rtol=1e-4, atol=1e-4)


def test_the_seed_chooses_the_initial_weights():
    def weights(seed):
        model = hub_clip.build_hub_clip(12, seed=seed, hidden_dim=16, num_layers=1,
                                        num_heads=2, intermediate_dim=32, projection_dim=8)
        return np.concatenate([w.numpy().ravel() for w in model.trainable_weights])

    assert np.array_equal(weights(0), weights(0))
    assert not np.allclose(weights(0), weights(1))


@pytest.mark.slow
def test_train_hub_clip_reports_notebook_07s_keys():
    result = hub_clip_training.train_hub_clip(epochs=1, seed=1, batch_size=16, train_size=32,
                                     model_options={"hidden_dim": 16, "num_layers": 1,
                                                    "num_heads": 2, "intermediate_dim": 32})
    for key in ("recall_at_1", "recall_at_5", "recall_with_heldout", "zero_shot_accuracy",
                "zero_shot_heldout_accuracy", "params", "train_seconds", "retrieval_pairs",
                "temperature", "history"):
        assert key in result, key
    assert result["arch"] == "keras_hub_clip" and result["seed"] == 1
    assert result["train_examples"] == 32 and result["epochs_run"] == 1
    assert result["model_options"]["hidden_dim"] == 16
    for direction in ("image_to_text", "text_to_image"):
        assert 0.0 <= result["recall_at_1"][direction] <= result["recall_at_5"][direction] <= 1
