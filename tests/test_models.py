"""mmcourse.matcher.model: encoders, build_model for every fusion, the article's model,
masking; and mmcourse.matcher.io: the bad-input errors of check_inputs."""

import keras
import numpy as np
import pytest

from mmcourse.matcher import fusion
from mmcourse.matcher.io import check_inputs, predict_batch
from mmcourse.matcher.model import (
    TASKS,
    build_article_model,
    build_image_encoder,
    build_model,
    build_text_encoder,
)

VOCAB, LENGTH, BATCH = 30, 12, 3
RNG = np.random.default_rng(0)
IMAGES = RNG.random((BATCH, 64, 64, 3), dtype=np.float32)
TOKENS = np.zeros((BATCH, LENGTH), "int32")
TOKENS[:, :4] = RNG.integers(2, VOCAB, (BATCH, 4))
SMALL = {"vocabulary_size": VOCAB, "filters": (4, 8, 8), "embedding_dim": 6, "text_units": 5,
         "fusion_units": 7, "hidden_units": 9}


def test_image_encoder_outputs_and_parameters():
    encoder = build_image_encoder()
    assert encoder.output_shape == (None, 32)
    assert encoder.count_params() == (27 + 1) * 16 + (144 + 1) * 32 + (288 + 1) * 32 == 14336
    grid, vector = build_image_encoder(output="both")(IMAGES)
    assert tuple(grid.shape) == (BATCH, 8, 8, 32) and tuple(vector.shape) == (BATCH, 32)
    np.testing.assert_allclose(vector, np.mean(grid, axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert build_image_encoder(filters=(8, 8), output="grid").output_shape == (None, 16, 16, 8)
    assert [layer.name for layer in encoder.layers][1:] == ["centre", "conv1", "conv2", "conv3",
                                                             "pool"]
    both = build_image_encoder(pooling="avgmax", normalize=True)
    assert both.output_shape == (None, 64) and both.count_params() == 14336 + 2 * 64


def test_image_encoder_bad_arguments():
    with pytest.raises(ValueError, match="output must be"):
        build_image_encoder(output="map")
    with pytest.raises(ValueError, match="filters must be"):
        build_image_encoder(filters=())
    with pytest.raises(ValueError, match="pooling must be"):
        build_image_encoder(pooling="sum")


def test_text_encoder_parameters_and_masking():
    keras.utils.set_random_seed(0)
    encoder = build_text_encoder(VOCAB, embedding_dim=6, units=5)
    assert encoder.count_params() == VOCAB * 6 + 4 * (6 + 5 + 1) * 5
    short = encoder(TOKENS[:, :4])
    padded = encoder(TOKENS)  # the same captions followed by 8 padding tokens
    longer = encoder(np.pad(TOKENS, ((0, 0), (0, 20))))
    np.testing.assert_allclose(padded, short, atol=1e-6)
    np.testing.assert_allclose(longer, short, atol=1e-6)
    changed = TOKENS.copy()
    changed[:, 1] = 1  # a real token changes the output: the test can fail
    assert not np.allclose(encoder(changed), short, atol=1e-4)


def test_text_encoder_bad_arguments():
    with pytest.raises(ValueError, match="vocabulary_size must be"):
        build_text_encoder(1)
    with pytest.raises(ValueError, match="units must be a positive int"):
        build_text_encoder(10, units=0)


@pytest.mark.parametrize("name", fusion.FUSIONS)  # the relational ones: test_relations.py
def test_every_fusion_builds_a_compiled_match_model(name):
    keras.utils.set_random_seed(0)
    model = build_model("match", name, **SMALL)
    assert model.optimizer is not None and model.loss == "binary_crossentropy"
    out = np.asarray(model([IMAGES, TOKENS]))
    assert out.shape == (BATCH, 1) and np.all((out > 0) & (out < 1))
    # whole-model parameters = encoders + fusion (docstring formula) + head
    on_grid = name in ("film", "attention")
    d_grid, d_txt, d_out = 8, 5, 7
    d_img = d_grid if on_grid else 2 * d_grid  # the vector pools avg and max side by side
    conv = (27 + 1) * 4 + (36 + 1) * 8 + (72 + 1) * 8
    image_params = 0 if name == "text" else conv + (0 if on_grid else 2 * d_img)  # + norm
    text_params = 0 if name == "image" else VOCAB * 6 + 4 * (6 + 5 + 1) * 5 + 2 * d_txt
    width = 2 * d_grid if name == "film" else fusion.fusion_output_width(name, d_img, d_txt,
                                                                        d_out)
    head = (width + 1) * 9 + 9 + 1
    expected = image_params + text_params + fusion.parameter_count(name, d_img, d_txt, d_out) + head
    assert model.count_params() == expected
    # padding does not change the prediction
    np.testing.assert_allclose(model([IMAGES, np.pad(TOKENS, ((0, 0), (0, 5)))]), out, atol=1e-6)


@pytest.mark.parametrize(("name", "ignored"), [("image", "text"), ("text", "image")])
def test_unimodal_baselines_ignore_the_other_modality(name, ignored):
    model = build_model("match", name, **SMALL)
    other_images = RNG.random(IMAGES.shape, dtype=np.float32)
    other_tokens = np.where(TOKENS > 0, 2 + (TOKENS - 1) % (VOCAB - 2), 0)  # every word changed
    base = np.asarray(model([IMAGES, TOKENS]))
    same = model([other_images, TOKENS]) if ignored == "image" else model([IMAGES, other_tokens])
    changed = model([IMAGES, other_tokens]) if ignored == "image" else model([other_images, TOKENS])
    np.testing.assert_allclose(same, base, atol=1e-6)
    assert not np.allclose(changed, base, atol=1e-6)


def test_qa_model_is_a_softmax_over_the_answers():
    model = build_model("qa", "multiply", num_answers=11, **SMALL)
    out = np.asarray(model([IMAGES, TOKENS]))
    assert out.shape == (BATCH, 11)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.loss == "sparse_categorical_crossentropy"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown fusion 'outer'; valid names: image, text, concat"):
        build_model("match", "outer", vocabulary_size=VOCAB)
    with pytest.raises(ValueError, match="unknown task 'caption'; valid names: match, qa"):
        build_model("caption", "concat", vocabulary_size=VOCAB)
    assert TASKS == ("match", "qa")


def test_article_model_structure_and_parameters():
    model = build_article_model(vocabulary_size=VOCAB)
    kinds = [type(layer).__name__ for layer in model.layers]
    for kind in ("Conv2D", "MaxPooling2D", "Flatten", "Embedding", "LSTM", "Concatenate",
                 "Dense"):
        assert kind in kinds
    flat = 14 * 14 * 128  # 64 -> 62 -> 31 -> 29 -> 14
    expected = ((27 + 1) * 64 + (576 + 1) * 128 + VOCAB * 64 + 4 * (64 + 64 + 1) * 64
                + (flat + 64 + 1) * 128 + 128 + 1)
    assert model.count_params() == expected
    assert np.asarray(model([IMAGES, TOKENS])).shape == (BATCH, 1)


@pytest.fixture(scope="module")
def small_model():
    return build_model("match", "concat", sequence_length=LENGTH, **SMALL)


def test_check_inputs_accepts_a_good_batch(small_model):
    images, tokens = check_inputs(small_model, IMAGES.astype("float64"), TOKENS.astype("int64"))
    assert images.dtype == np.float32 and tokens.dtype == np.int32
    assert predict_batch(small_model, IMAGES, TOKENS).shape == (BATCH, 1)
    check_inputs(((64, 64, 3), (None,)), IMAGES, TOKENS)  # shapes instead of a model


@pytest.mark.parametrize(("images", "tokens", "message"), [
    (IMAGES[0], TOKENS[:1], r"image_batch must have shape \(batch, 64, 64, 3\), got "
                            r"\(64, 64, 3\) \(one image\? use image\[None\]"),
    (IMAGES[:, :32], TOKENS, r"image_batch must have shape \(batch, 64, 64, 3\), got \(3, 32"),
    ((IMAGES * 255).astype("uint8"), TOKENS, r"image_batch must be float in \[0, 1\].*uint8"),
    (IMAGES, TOKENS[:, :5], r"token_ids must have shape \(batch, 12\)"),
    (IMAGES, TOKENS[0], r"token_ids must have shape \(batch, 12\)"),
    (IMAGES, TOKENS.astype("float32"), r"token_ids must hold integer ids"),
    (IMAGES[:2], TOKENS, r"same batch size, got 2 images and 3 token rows"),
    (IMAGES, TOKENS + VOCAB, r"token_ids must be in \[0, 30\)"),
    (IMAGES, TOKENS - 1, r"token_ids must be in \[0, 30\)"),
])
def test_check_inputs_names_the_expected_shape(small_model, images, tokens, message):
    with pytest.raises(ValueError, match=message):
        check_inputs(small_model, images, tokens)
    with pytest.raises(ValueError, match=message.split(",")[0]):
        predict_batch(small_model, images, tokens)


def test_check_inputs_rejects_a_non_model():
    with pytest.raises(TypeError, match="model_or_shapes must be a Keras model"):
        check_inputs(42, IMAGES, TOKENS)


def test_importing_models_and_training_does_not_load_keras():
    import subprocess
    import sys

    code = ("import sys, mmcourse, mmcourse.matcher.model, mmcourse.matcher.io, "
            "mmcourse.apps.raw_model, mmcourse.train.tasks; "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; "
            "assert 'mmcourse.matcher.fusion' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- MatcherConfig: the architecture options in one checked object (issue 26) ---------------


def test_a_config_and_its_fields_as_keywords_build_the_same_model():
    from mmcourse.matcher.config import MatcherConfig

    options = {key: value for key, value in SMALL.items() if key != "vocabulary_size"}
    by_config = build_model("match", "lowrank", MatcherConfig(**options), vocabulary_size=VOCAB)
    by_keywords = build_model("match", "lowrank", vocabulary_size=VOCAB, **options)
    shapes = [tuple(w.shape) for w in by_config.weights]
    assert shapes == [tuple(w.shape) for w in by_keywords.weights]
    # hand count of the head: Dense(9) on the rank-4 fusion's 7 units, then Dense(1)
    assert by_config.get_layer("hidden").kernel.shape == (7, 9)
    assert by_config.get_layer("match").kernel.shape == (9, 1)
    # a keyword replaces the config's field, and the rest of the config stays
    wider = build_model("match", "lowrank", MatcherConfig(**options), vocabulary_size=VOCAB,
                        hidden_units=5)
    assert wider.get_layer("hidden").kernel.shape == (7, 5)
    assert wider.get_layer("image_encoder").get_layer("conv3").kernel.shape[-1] == 8


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hidden_units", 0, "hidden_units must be a positive int, got 0"),
    ("embedding_dim", None, "embedding_dim must be a positive int, got None"),
    ("text_units", 2.0, "text_units must be a positive int, got 2.0"),
    ("num_heads", True, "num_heads must be a positive int, got True"),
    ("width", -1, "width must be a positive int, got -1"),
    ("pooling", "mean", "pooling must be one of avg, max, avgmax, got 'mean'"),
    ("filters", (), r"filters must be a non-empty sequence of positive ints, got \(\)"),
    ("filters", (8, 0), r"filters must be a non-empty sequence of positive ints"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\), got 1.0"),
    ("frequencies", -1, "frequencies must be an int >= 0, got -1"),
    ("learning_rate", 0, "learning_rate must be a positive number"),
    ("image_shape", (64, 64), None),  # (slots, features) is valid: the objects fusion
    ("image_shape", (64, 0, 3), r"image_shape must be \(height, width, channels\)"),
    ("coordinates", "yes", "coordinates must be True or False, got 'yes'"),
    ("normalize", None, "normalize must be True or False, got None"),
])
def test_config_checks_each_field_when_it_is_made(field, value, message):
    from mmcourse.matcher.config import MatcherConfig

    if message is None:
        assert getattr(MatcherConfig(**{field: value}), field) == value
        return
    with pytest.raises(ValueError, match=message):
        MatcherConfig(**{field: value})
    with pytest.raises(ValueError, match=message):  # the keyword goes through the same check
        build_model("match", "concat", vocabulary_size=VOCAB, **{field: value})


def test_config_is_frozen_and_unknown_options_list_the_fields():
    import dataclasses

    from mmcourse.matcher.config import MatcherConfig

    config = MatcherConfig(filters=[4, 8])
    assert config.filters == (4, 8)  # a list becomes a tuple: the config compares and hashes
    assert hash(config) == hash(MatcherConfig(filters=(4, 8)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_units = 3
    with pytest.raises(TypeError, match=r"unknown option\(s\) \[.units.\]; the options "
                                        r"are MatcherConfig's fields: image_shape, filters"):
        build_model("match", "concat", vocabulary_size=VOCAB, units=3)
    with pytest.raises(TypeError, match="config must be a MatcherConfig, got dict"):
        build_model("match", "concat", {"hidden_units": 3}, vocabulary_size=VOCAB)


def test_resolved_fills_only_the_unset_fields_with_the_fusions_defaults():
    from mmcourse.matcher.config import MatcherConfig

    # the values notebook 06 states for its models (Santoro et al.'s CNN+MLP is 256 wide)
    assert MatcherConfig().resolved("concat").filters == (16, 32, 32)
    assert MatcherConfig().resolved("concat").coordinates is False
    cnn_mlp = MatcherConfig().resolved("cnn_mlp")
    assert (cnn_mlp.width, cnn_mlp.coordinates, cnn_mlp.batch_norm) == (256, True, True)
    network = MatcherConfig(width=32).resolved("relation_network")
    assert (network.width, network.filters) == (32, (16, 32, 32, 32))
    transformer = MatcherConfig(anchored=False).resolved("anchored")
    assert (transformer.anchored, transformer.hops, transformer.width) == (False, 2, 64)
    assert MatcherConfig().resolved("objects").width == 64
