"""CLIP at toy scale (notebook 07): the loss by hand and against Keras' cross-entropy,
patches against ``tf.image.extract_patches``, the patch embedding against a strided
convolution, padding in the text encoder, retrieval with repeated captions, saving."""

import math
import re
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from mmcourse import clip
from mmcourse.data import draw
from mmcourse.data import scenes as data
from mmcourse.data import text as data_text
from mmcourse.scratch import patchify
from mmcourse.train import clip as clip_training

TINY = {"stem_filters": (4,), "patch_size": 4, "width": 8, "image_depth": 1, "text_depth": 1,
        "num_heads": 2, "key_dim": 4, "hidden_units": 8, "embedding_dim": 6}


# --- the loss -------------------------------------------------------------------------------

def test_contrastive_loss_by_hand():
    # Unit rows already: I = [e1, e2], T = [e1, (e1 + e2)/sqrt 2]; temperature 1.
    # logits = [[1, r], [0, r]] with r = 1/sqrt 2.
    r = 1 / math.sqrt(2)
    rows = (-math.log(math.exp(1) / (math.exp(1) + math.exp(r)))       # image 1 -> text 1
            - math.log(math.exp(r) / (math.exp(0) + math.exp(r)))) / 2   # image 2 -> text 2
    columns = (-math.log(math.exp(1) / (math.exp(1) + math.exp(0)))     # text 1 -> image 1
               + math.log(2)) / 2                                       # text 2: a tie
    image = [[3.0, 0.0], [0.0, 0.5]]  # lengths do not matter: the loss normalises
    text = [[2.0, 0.0], [1.0, 1.0]]
    loss = clip.contrastive_loss(image, text, 1.0)
    assert float(loss) == pytest.approx((rows + columns) / 2, abs=1e-6)
    assert float(clip.contrastive_loss(image, text, 0.5)) != pytest.approx(float(loss))


def test_contrastive_loss_is_keras_cross_entropy_on_rows_and_columns():
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    logits = unit(image) @ unit(text).T / 0.07
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)
    expected = (float(cross_entropy(np.eye(5), logits))
                + float(cross_entropy(np.eye(5), logits.T))) / 2
    assert float(clip.contrastive_loss(image, text, 0.07)) == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_is_symmetric():
    rng = np.random.default_rng(1)
    image, text = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    assert float(clip.contrastive_loss(image, text, 0.1)) == pytest.approx(
        float(clip.contrastive_loss(text, image, 0.1)), rel=1e-6)
    # ... but it depends on which pairs match: shuffling one side changes it.
    assert float(clip.contrastive_loss(image, text[::-1], 0.1)) != pytest.approx(
        float(clip.contrastive_loss(image, text, 0.1)), rel=1e-3)


def test_contrastive_loss_of_perfectly_aligned_embeddings():
    n = 4
    aligned = np.eye(n)
    # Cosine 1 on the diagonal and 0 elsewhere: each row's softmax gives e^(1/t) / (e^(1/t) +
    # n - 1) to the right pair.
    assert float(clip.contrastive_loss(aligned, aligned, 1.0)) == pytest.approx(
        -math.log(math.e / (math.e + n - 1)), rel=1e-6)
    assert float(clip.contrastive_loss(aligned, 2 * aligned, 0.01)) == pytest.approx(0, abs=1e-6)


def test_repeated_captions_share_the_target():
    # Two images with the same caption: with caption ids each row's target is half on each
    # of the two equal texts, so identical embeddings for both cost log 2 per direction.
    same = np.array([[1.0, 0.0], [1.0, 0.0]])
    loss = clip.contrastive_loss(same, same, 1.0, caption_ids=[7, 7])
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    assert float(clip.contrastive_loss(same, same, 1.0)) == pytest.approx(math.log(2), rel=1e-6)
    # Different embeddings: the target rows are [1/2, 0, 1/2], [0, 1, 0], [1/2, 0, 1/2], as
    # Keras' cross-entropy with those soft targets computes it.
    image = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    text = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])
    targets = np.array([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]])
    logits = image @ text.T / 0.1
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)
    expected = (float(cross_entropy(targets, logits)) + float(cross_entropy(targets, logits.T))) / 2
    shared = float(clip.contrastive_loss(image, text, 0.1, caption_ids=[0, 1, 0]))
    assert shared == pytest.approx(expected, rel=1e-5)
    assert shared < float(clip.contrastive_loss(image, text, 0.1))


@pytest.mark.parametrize(("image", "text", "temperature", "match"), [
    (np.zeros((2, 3)), np.zeros((3, 3)), 1.0, r"both be \(N, d\) with the same N and d"),
    (np.zeros((2, 3)), np.zeros((2, 4)), 1.0, r"got \(2, 3\) and \(2, 4\)"),
    (np.zeros(3), np.zeros(3), 1.0, "both be"),
    (np.ones((2, 3)), np.ones((2, 3)), 0.0, "temperature must be a number > 0, got 0.0"),
    (np.ones((2, 3)), np.ones((2, 3)), "hot", "temperature must be a number > 0"),
])
def test_contrastive_loss_bad_input(image, text, temperature, match):
    with pytest.raises(ValueError, match=match):
        clip.contrastive_loss(image, text, temperature)


def test_learned_temperature_starts_at_clip_value_and_is_clipped():
    layer = clip.ContrastiveLogits()
    image, text = np.eye(3, dtype="float32"), np.eye(3, dtype="float32")
    logits = np.asarray(layer([image, text]))
    np.testing.assert_allclose(np.diag(logits), 1 / 0.07, rtol=1e-5)
    assert layer.temperature == pytest.approx(0.07, rel=1e-6)
    assert layer.log_scale.trainable
    layer.log_scale.assign(math.log(1000.0))  # 1 / tau = 1000 is clipped to 100
    np.testing.assert_allclose(np.diag(np.asarray(layer([image, text]))), 100.0, rtol=1e-5)
    assert layer.temperature == pytest.approx(0.01)
    fixed = clip.ContrastiveLogits(1.0, learn_temperature=False)
    fixed([image, text])
    assert not fixed.log_scale.trainable
    with pytest.raises(ValueError, match="temperature must be a number >= 0.01"):
        clip.ContrastiveLogits(0.001)


# --- patches and the ViT ---------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "patch"), [((2, 8, 8, 3), 4), ((1, 6, 9, 2), 3),
                                              ((3, 4, 4, 1), 1), ((1, 8, 4, 3), 4)])
def test_patchify_equals_tf_extract_patches(shape, patch):
    images = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = tf.image.extract_patches(images, sizes=[1, patch, patch, 1],
                                        strides=[1, patch, patch, 1], rates=[1, 1, 1, 1],
                                        padding="VALID").numpy()
    expected = expected.reshape(shape[0], -1, patch * patch * shape[3])
    np.testing.assert_array_equal(patchify(images, patch), expected)


def test_patchify_order_by_hand():
    image = np.arange(16).reshape(1, 4, 4, 1)
    patches = patchify(image, 2)
    # Row-major over the 2 x 2 grid; inside a patch, row by row.
    np.testing.assert_array_equal(patches[0], [[0, 1, 4, 5], [2, 3, 6, 7],
                                               [8, 9, 12, 13], [10, 11, 14, 15]])


@pytest.mark.parametrize(("images", "patch", "match"), [
    (np.zeros((1, 10, 8, 3)), 4, "multiples of patch_size 4, got H=10, W=8"),
    (np.zeros((1, 8, 8, 3)), 3, "multiples of patch_size 3"),
    (np.zeros((8, 8, 3)), 4, r"4-D \(N, H, W, C\), got shape \(8, 8, 3\)"),
    (np.zeros((1, 8, 8, 3)), 0, "patch_size must be a positive int, got 0"),
])
def test_patchify_bad_input(images, patch, match):
    with pytest.raises(ValueError, match=match):
        patchify(images, patch)


def test_patch_embedding_is_a_strided_convolution_and_a_matmul():
    images = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype(np.float32)
    layer = clip.PatchEmbedding(patch_size=4, width=5)
    tokens = np.asarray(layer(images))
    assert tokens.shape == (2, 16, 5)
    kernel, bias = (np.asarray(w) for w in layer.get_weights())
    np.testing.assert_allclose(tokens, patchify(images, 4) @ kernel + bias, atol=1e-5)
    conv = layer.as_conv2d()
    assert conv.strides == (4, 4) and conv.kernel_size == (4, 4)
    np.testing.assert_allclose(np.asarray(conv(images)).reshape(2, -1, 5), tokens, atol=1e-5)
    with pytest.raises(ValueError, match="multiples of patch_size 4"):
        layer(np.zeros((1, 10, 16, 3), np.float32))


def test_class_token_and_positions_by_hand():
    layer = clip.ClassTokenAndPositions()
    tokens = np.random.default_rng(3).normal(size=(2, 3, 4)).astype(np.float32)
    output = np.asarray(layer(tokens))
    class_token, positions = (np.asarray(w) for w in (layer.class_token, layer.positions))
    assert output.shape == (2, 4, 4)
    np.testing.assert_allclose(output[:, 0], np.broadcast_to(class_token[0, 0] + positions[0, 0],
                                                             (2, 4)), atol=1e-6)
    np.testing.assert_allclose(output[:, 1:], tokens + positions[0, 1:], atol=1e-6)
    assert len(layer.trainable_weights) == 2


# --- the text encoder ------------------------------------------------------------------------

def test_masked_mean_by_hand():
    hidden = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], np.float32)
    np.testing.assert_allclose(np.asarray(clip.MaskedMean()([hidden, np.array([[5, 9, 0]])])),
                               [[2.0, 3.0]])


def test_padding_changes_nothing_in_the_text_encoder():
    encoder = clip.build_text_encoder(20, max_length=16, **TINY)
    ids = np.array([[3, 4, 5, 6], [7, 8, 0, 0]], np.int32)
    short = np.asarray(encoder(ids))
    padded = np.asarray(encoder(np.pad(ids, ((0, 0), (0, 8)))))
    np.testing.assert_allclose(short, padded, atol=1e-5)
    # What is in the padding does matter when it is not padding: the mask is what hides it.
    unmasked = np.asarray(encoder(np.pad(ids, ((0, 0), (0, 8)), constant_values=9)))
    assert not np.allclose(short, unmasked, atol=1e-3)
    # And word order matters (positions), though the mean is over tokens.
    swapped = np.asarray(encoder(np.array([[4, 3, 5, 6]], np.int32)))
    assert not np.allclose(short[:1], swapped, atol=1e-4)


# --- retrieval and zero-shot ----------------------------------------------------------------

def test_retrieval_recall_with_repeated_captions_by_hand():
    captions = ["red", "red", "blue", "green"]
    # Rows: images, columns: texts (here the same four captions).
    similarity = np.array([[0.1, 0.9, 0.0, 0.2],   # top text 1 reads "red": a hit
                           [0.3, 0.2, 0.8, 0.1],   # top "blue" (miss), top-2 adds "red": hit at 2
                           [0.0, 0.1, 0.2, 0.7],   # top "green": miss; top-2 adds "blue": hit
                           [0.5, 0.4, 0.3, 0.6]])  # top "green": hit
    recall = clip.retrieval_recall(similarity, captions, captions, ks=(1, 2))
    assert recall["recall_at_1"]["image_to_text"] == pytest.approx(2 / 4)
    assert recall["recall_at_2"]["image_to_text"] == pytest.approx(4 / 4)
    # Columns, text -> image: text 0 "red" -> image 3 (green), then image 1 (red): hit at 2.
    # Text 1 "red" -> image 0 (red): hit. Text 2 "blue" -> image 1 (red), image 3 (green):
    # miss. Text 3 "green" -> image 2 (blue), then image 3 (green): hit at 2.
    assert recall["recall_at_1"]["text_to_image"] == pytest.approx(1 / 4)
    assert recall["recall_at_2"]["text_to_image"] == pytest.approx(3 / 4)


def test_retrieval_recall_bad_input():
    with pytest.raises(ValueError, match=r"\(N_images, N_texts\) = \(2, 2\)"):
        clip.retrieval_recall(np.zeros((2, 3)), ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="ks must hold positive ints, got 0"):
        clip.retrieval_recall(np.zeros((1, 1)), ["a"], ["a"], ks=(0,))


def test_attribute_classes_cover_every_size_colour_and_shape():
    classes = clip_training.attribute_classes()
    assert len(classes) == len(set(classes)) == 2 * 6 * 3
    assert ("small", "red", "circle") in classes
    for colour, shape in clip_training.HELDOUT_COMBINATIONS:
        assert colour in draw.COLOURS and shape in draw.SHAPES


# --- the model ------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never trained
def test_clip_model_saves_and_loads_with_safe_mode(tmp_path):
    model = clip.build_clip(30, **TINY)
    rng = np.random.default_rng(4)
    images = rng.random((3, 64, 64, 3)).astype(np.float32)
    ids = np.array([[2, 3, 4, 0], [5, 6, 0, 0], [7, 8, 9, 10]], np.int32)
    before = np.asarray(model([images, ids]))
    assert before.shape == (3, 3)
    model.save(tmp_path / "clip.keras")
    loaded = keras.saving.load_model(tmp_path / "clip.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded([images, ids])), before, atol=1e-5)
    assert loaded.get_layer("logits").temperature == pytest.approx(0.07, rel=1e-5)
    assert {"image_encoder", "text_encoder", "logits"} <= {layer.name for layer in loaded.layers}


def test_build_clip_rejects_unknown_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\]"):
        clip.build_clip(30, depth=3)


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _zero_shot_by_hand(model, images, scenes, vocabulary, templates=clip.PROMPT_TEMPLATES):
    """Zero-shot accuracy from the two encoders, as the CLIP paper describes it: each class
    prompt in every template, normalised, averaged, normalised; the closest class wins."""
    classes = [(s, c, h) for s in draw.SIZES for c in draw.COLOURS for h in draw.SHAPES]
    prompts = [template.format(size=s, colour=c, shape=h) for s, c, h in classes
               for template in templates]
    texts = _unit(model.get_layer("text_encoder")(data_text.vectorize(prompts,
                                                                      vocabulary=vocabulary)))
    classes_embedded = _unit(texts.reshape(len(classes), len(templates), -1).mean(1))
    embedded = _unit(model.get_layer("image_encoder")(images.astype(np.float32) / 255))
    truth = [classes.index((o["size"], o["colour"], o["shape"]))
             for o in (scene["objects"][0] for scene in scenes)]
    return float(np.mean((embedded @ classes_embedded.T).argmax(1) == truth))


def test_train_clip_quick_run_reports_every_key(capsys):
    result = clip_training.train_clip("attributes", epochs=1, train_size=128, batch_size=32,
                             model_options=TINY, keep_model=True)
    assert capsys.readouterr().out == ""  # no Keras progress bar: without log, it is silent
    model = result.pop("model")
    # the numbers, recomputed here from the trained encoders: recall@1 image -> text over the
    # test pairs of the seen combinations, zero-shot on them and on every held-out image
    vocabulary = data_text.load_vocabulary()
    test_images, test_captions, _ = data.load_arrays("retrieval", "attributes", "test")
    train_images, _, _ = data.load_arrays("retrieval", "attributes", "train")
    test_scenes = data.load_records("scenes", "attributes", "test")
    train_scenes = data.load_records("scenes", "attributes", "train")
    held = lambda s: (s["objects"][0]["colour"], s["objects"][0]["shape"]) in \
        clip_training.HELDOUT_COMBINATIONS  # noqa: E731
    seen = np.array([not held(s) for s in test_scenes])
    images = _unit(model.get_layer("image_encoder")(test_images[seen].astype(np.float32) / 255))
    captions = [c for c, keep in zip(test_captions, seen, strict=True) if keep]
    texts = _unit(model.get_layer("text_encoder")(data_text.vectorize(captions,
                                                                      vocabulary=vocabulary)))
    best = (images @ texts.T).argmax(1)
    assert result["recall_at_1"]["image_to_text"] == pytest.approx(
        np.mean([captions[j] == captions[i] for i, j in enumerate(best)]), abs=1e-9)
    seen_scenes = [s for s in test_scenes if not held(s)]
    assert result["zero_shot_accuracy"] == pytest.approx(
        _zero_shot_by_hand(model, test_images[seen], seen_scenes, vocabulary), abs=1e-9)
    assert list(result["zero_shot_by_template"]) == list(clip.PROMPT_TEMPLATES)
    for template, accuracy in result["zero_shot_by_template"].items():
        assert accuracy == pytest.approx(_zero_shot_by_hand(
            model, test_images[seen], seen_scenes, vocabulary, (template,)), abs=1e-9)
    heldout_images = np.concatenate([test_images[~seen], train_images[[held(s) for s in
                                                                      train_scenes]]])
    heldout_scenes = [s for s in test_scenes if held(s)] + [s for s in train_scenes if held(s)]
    assert result["zero_shot_heldout_accuracy"] == pytest.approx(
        _zero_shot_by_hand(model, heldout_images, heldout_scenes, vocabulary), abs=1e-9)
    assert result["epochs_run"] == 1 and len(result["history"]["loss"]) == 1
    assert result["params"] == model.count_params()
    for key in ("recall_at_1", "recall_at_5"):
        assert set(result[key]) == {"image_to_text", "text_to_image"}
        assert all(0 <= v <= 1 for v in result[key].values())
    assert result["chance"] == pytest.approx(1 / 36)
    assert result["train_examples"] == 128
    # Held out of training, scored afterwards: every such image of the train and test splits.
    scenes = (data.load_records("scenes", "attributes", "train")
              + data.load_records("scenes", "attributes", "test"))
    assert result["heldout_examples"] == sum(
        (s["objects"][0]["colour"], s["objects"][0]["shape"]) in clip_training.HELDOUT_COMBINATIONS
        for s in scenes)
    assert result["retrieval_pairs"] == 500 - sum(
        (s["objects"][0]["colour"], s["objects"][0]["shape"]) in clip_training.HELDOUT_COMBINATIONS
        for s in data.load_records("scenes", "attributes", "test"))
    for key in ("zero_shot_accuracy", "zero_shot_heldout_accuracy", "params", "train_seconds",
                "seed"):
        assert result[key] is not None


def test_text_longer_than_the_position_table_is_a_clear_error():
    encoder = clip.build_text_encoder(20, max_length=4, **TINY)
    with pytest.raises(ValueError, match="6 positions but this embedding knows max_length=4"):
        encoder(np.ones((1, 6), np.int32))


# --- zero-shot and the snapshots on a model whose embeddings are known (issue 28, s. 7) --------
# The fake model's text encoder is a bag of words over VOCABULARY (one dimension per word) and
# its image encoder reads a 9-vector written into the image's pixels, so every embedding, and
# so every class embedding and prediction below, is worked out by hand.

VOCABULARY = ["", "[UNK]", "a", "small", "big", "red", "blue", "circle", "square"]
WORD = {word: index for index, word in enumerate(VOCABULARY)}


class _Encoder:
    def __init__(self, function):
        self.function = function

    def __call__(self, inputs, training=False):
        return self.function(np.asarray(inputs))


class _KnownModel:
    """``get_layer`` gives the two encoders; ``shift`` is added to every image embedding."""

    def __init__(self):
        self.shift = np.zeros(len(VOCABULARY))
        self.layers = {
            "text_encoder": _Encoder(lambda ids: np.stack(
                [np.bincount(row[row > 0], minlength=len(VOCABULARY)) for row in ids]
            ).astype(np.float32)),
            "image_encoder": _Encoder(lambda pixels: pixels[:, 0, :, 0] * 255.0 + self.shift)}

    def get_layer(self, name):
        return self.layers[name]


def _images(*vectors):
    """uint8 images (N, 1, 9, 3) whose image embedding is ``vector``."""
    return np.stack([np.repeat(np.asarray(v, np.uint8)[None, :, None], 3, axis=2)
                     for v in vectors])


def _bag(*words):
    vector = np.zeros(len(VOCABULARY))
    for word in words:
        vector[WORD[word]] += 1
    return vector


CLASSES = [("small", "red", "circle"), ("big", "blue", "square")]
TEMPLATES = ("a {size} {colour} {shape}", "{colour} {shape}", "{size} {shape}")


def test_class_embeddings_average_the_normalised_prompts_by_hand():
    model = _KnownModel()
    embeddings = clip.class_embeddings(model, CLASSES, TEMPLATES, vocabulary=VOCABULARY)
    assert embeddings.shape == (2, len(VOCABULARY))
    # "a small red circle": four words, each 1/2 once normalised; "red circle" and "small
    # circle": 1/sqrt 2 each. Their mean: a 1/6, small (1/2 + 1/sqrt 2) / 3, red the same,
    # circle (1/2 + 2/sqrt 2) / 3; then normalised again.
    half, root = 0.5, 1 / math.sqrt(2)
    for row, (size, colour, shape) in zip(embeddings, CLASSES, strict=True):
        expected = np.zeros(len(VOCABULARY))
        expected[WORD["a"]] = half / 3
        expected[[WORD[size], WORD[colour]]] = (half + root) / 3
        expected[WORD[shape]] = (half + 2 * root) / 3
        np.testing.assert_allclose(row, expected / np.linalg.norm(expected), atol=1e-6)
    # one template: the prompt's own direction
    single = clip.class_embeddings(model, CLASSES[:1], ("{colour} {shape}",), vocabulary=VOCABULARY)
    np.testing.assert_allclose(single[0], _bag("red", "circle") / math.sqrt(2), atol=1e-6)
    with pytest.raises(ValueError, match="templates must hold at least one"):
        clip.class_embeddings(model, CLASSES, (), vocabulary=VOCABULARY)


def test_zero_shot_predict_picks_the_closest_class_prompt():
    model = _KnownModel()
    images = _images(_bag("big", "blue", "square"),   # class 1 exactly
                     _bag("small", "red", "circle"),  # class 0 exactly
                     2 * _bag("blue") + _bag("red"),  # mostly blue: class 1
                     _bag("a", "red", "red", "square", "circle"))  # red + circle beat square
    predictions = clip.zero_shot_predict(model, images, CLASSES, TEMPLATES, vocabulary=VOCABULARY)
    assert predictions.tolist() == [1, 0, 1, 0]
    # the class order is the index's order
    assert clip.zero_shot_predict(model, images, CLASSES[::-1], TEMPLATES,
                                  vocabulary=VOCABULARY).tolist() == [0, 1, 0, 1]


def test_similarity_snapshots_record_cosines_before_training_and_after_the_named_epochs():
    model = _KnownModel()
    images = _images(_bag("red"), _bag("red", "circle"))
    ids = np.array([[WORD["red"], 0], [WORD["circle"], WORD["circle"]]])
    callback = clip_training.SimilaritySnapshots(images, ids, epochs=[1, 3])
    callback.set_model(model)
    callback.on_train_begin()
    root = 1 / math.sqrt(2)
    before = [[1.0, 0.0], [root, root]]  # cosines of the images (rows) and texts by hand
    for epoch in range(3):  # Keras numbers the epochs from 0; the snapshots from 1
        model.shift = model.shift + _bag("circle")  # "training": images drift towards circle
        callback.on_epoch_end(epoch)
    assert sorted(callback.snapshots) == [0, 1, 3]
    np.testing.assert_allclose(callback.snapshots[0], before, atol=1e-6)
    # after epoch 1 the images are red + circle and red + 2 circle; after epoch 3, red +
    # 3 circle and red + 4 circle
    for epoch, (first, second) in {1: (1, 2), 3: (3, 4)}.items():
        expected = [[1 / math.hypot(1, c), c / math.hypot(1, c)] for c in (first, second)]
        np.testing.assert_allclose(callback.snapshots[epoch], expected, atol=1e-6)


# --- what the mutation audit found untested (issue 28, section 7) ---------------------------


def test_patch_embedding_adds_its_bias_and_declares_the_shapes_it_returns():
    images = np.random.default_rng(4).normal(size=(2, 8, 8, 2)).astype(np.float32)
    layer = clip.PatchEmbedding(patch_size=4, width=3)
    layer.build(images.shape)
    kernel = np.random.default_rng(5).normal(size=(4 * 4 * 2, 3)).astype(np.float32)
    bias = np.array([1.0, -2.0, 0.5], np.float32)  # not the zeros it starts with
    layer.set_weights([kernel, bias])
    tokens = np.asarray(layer(images))
    np.testing.assert_allclose(tokens, patchify(images, 4) @ kernel + bias, atol=1e-5)
    assert layer.compute_output_shape((None, 8, 8, 2)) == (None, 4, 3) == (None, *tokens.shape[1:])
    class_layer = clip.ClassTokenAndPositions()
    out = class_layer(tokens)
    assert class_layer.compute_output_shape((None, 4, 3)) == (None, 5, 3) == (None, *out.shape[1:])
    assert clip.ClassOutput().compute_output_shape((None, 5, 3)) == (None, 3)


def test_the_default_clip_is_the_hybrid_vit_of_notebook_07():
    """Notebook 07: 64 x 64 images, three stride-2 3 x 3 convolutions make an 8 x 8 grid
    (64 patches and the class token), both encoders end in the shared 64-dimensional space."""
    model = clip.build_clip(len(VOCABULARY))
    image_encoder, text_encoder = model.get_layer("image_encoder"), model.get_layer("text_encoder")
    assert tuple(image_encoder.input.shape) == (None, 64, 64, 3)
    stems = [image_encoder.get_layer(f"stem{n}") for n in (1, 2, 3)]
    assert [(s.filters, s.kernel_size, s.strides) for s in stems] == [
        (16, (3, 3), (2, 2)), (32, (3, 3), (2, 2)), (32, (3, 3), (2, 2))]
    assert tuple(image_encoder.get_layer("class_and_positions").output.shape) == (None, 65, 64)
    assert tuple(image_encoder.output.shape) == tuple(text_encoder.output.shape) == (None, 64)
    assert tuple(clip.build_image_encoder().input.shape) == (None, 64, 64, 3)


@pytest.mark.parametrize(("images", "found"), [
    (np.zeros((2, 8, 8, 3), np.float32), "float32 (2, 8, 8, 3)"),  # pixels in [0, 1] already
    (np.zeros((8, 8, 3), np.uint8), "uint8 (8, 8, 3)")])  # one image, no batch axis
def test_embed_images_refuses_anything_but_a_uint8_batch(images, found):
    with pytest.raises(ValueError, match=re.escape(f"images must be uint8 (N, H, W, 3), got "
                                                   f"{found}")):
        clip.embed_images(None, images)  # refused before the model is used


@pytest.mark.parametrize(("ids", "found"), [
    (np.zeros((2, 5), np.float32), "float32 (2, 5)"), (np.zeros(5, np.int32), "int32 (5,)")])
def test_embed_texts_refuses_anything_but_a_batch_of_integer_ids(ids, found):
    with pytest.raises(ValueError, match=re.escape(f"token_ids must be integers (N, L), got "
                                                   f"{found}")):
        clip.embed_texts(None, ids)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("level", "flip", "expected_flip"), [
    ("attributes", None, True), ("relations", None, False)])
def test_train_clip_feeds_the_kept_pairs_with_their_caption_ids_and_flips_by_level(
        monkeypatch, level, flip, expected_flip):
    """The dataset ``train_clip`` trains on, caught before any model is built: the first 40
    pairs not held out, caption ids numbering the sorted distinct captions, the batch size,
    the seed, and flips at the attributes level only (its captions say nothing of position)."""
    got = {}

    def catch(*args):
        got["args"] = args
        raise _Stop

    monkeypatch.setattr(clip_training, "_clip_dataset", catch)
    with pytest.raises(_Stop):
        clip_training.train_clip(level, seed=5, batch_size=16, train_size=40, flip=flip)
    images, token_ids, caption_ids, batch_size, seed, flipped = got["args"]
    all_images, captions, _ = data.load_arrays("retrieval", level, "train")
    scenes = data.load_records("scenes", level, "train")
    heldout = clip_training.HELDOUT_COMBINATIONS
    kept = [i for i, s in enumerate(scenes) if level != "attributes" or (
        s["objects"][0]["colour"], s["objects"][0]["shape"]) not in heldout][:40]
    np.testing.assert_array_equal(images, all_images[kept])
    np.testing.assert_array_equal(token_ids, data_text.vectorize([captions[i] for i in kept]))
    names = sorted(set(captions))
    assert list(caption_ids) == [names.index(captions[i]) for i in kept]
    assert (batch_size, seed, flipped) == (16, 5, expected_flip)


def test_train_clip_at_the_relations_level_scores_retrieval_against_its_distinct_captions():
    """No fixed classes at the relations level: chance is one over the test split's distinct
    captions, and every test pair is retrieved. Training itself is skipped (``fit`` replaced)."""
    def builder(vocabulary_size, **arguments):
        model = clip.build_clip(vocabulary_size, **arguments, **TINY)
        model.fit = lambda *args, **kwargs: types.SimpleNamespace(history={"loss": [1.0]})
        return model

    result = clip_training.train_clip("relations", epochs=1, train_size=16, batch_size=16,
                             builder=builder)
    _, test_captions, _ = data.load_arrays("retrieval", "relations", "test")
    assert result["chance"] == 1 / len(set(test_captions))
    assert (result["zero_shot_accuracy"], result["zero_shot_classes"],
            result["heldout_examples"]) == (None, None, 0)
    assert result["retrieval_pairs"] == len(test_captions)
    assert (result["train_examples"], result["epochs_run"]) == (16, 1)


def test_patch_embedding_refuses_an_unknown_height_width_or_channels():
    # Written from the docstring: images (batch, H, W, C) with H, W and C known; only the
    # batch may be None.
    layer = clip.PatchEmbedding(patch_size=8, width=4)
    for shape in ((None, None, 16, 3), (None, 16, None, 3), (None, 16, 16, None),
                  (None, 16, 16)):
        with pytest.raises(ValueError, match=r"needs images \(batch, H, W, C\) with known H, W"):
            layer.build(shape)


def test_contrastive_logits_accept_a_temperature_down_to_one_over_the_largest_scale():
    # CLIP clips the logit scale 1 / tau at 100, so tau = 0.01 is the smallest allowed.
    assert clip.MAX_LOGIT_SCALE == 100.0
    for tau in (0.01, 0.015, 0.07, 1, 5.0):
        assert clip.ContrastiveLogits(temperature=tau).initial_temperature == tau
    for tau in (0.0099, 0, -0.07, True, "0.07", None):
        with pytest.raises(ValueError, match=r"temperature must be a number >= 0\.01"):
            clip.ContrastiveLogits(temperature=tau)


def test_contrastive_logits_declare_images_by_texts():
    layer = clip.ContrastiveLogits()
    images, texts = np.ones((3, 8), np.float32), np.ones((5, 8), np.float32)
    assert tuple(layer((images, texts)).shape) == (3, 5)
    assert tuple(layer.compute_output_shape(((3, 8), (5, 8)))) == (3, 5)
    assert tuple(layer.compute_output_shape(((None, 8), (7, 8)))) == (None, 7)


def test_retrieval_recall_reports_recall_at_1_and_5_unless_told():
    # 6 images, each its own caption; image i's own text is ranked (i + 1)-th.
    captions = [f"c{i}" for i in range(6)]
    similarity = np.zeros((6, 6))
    for i in range(6):
        others = [j for j in range(6) if j != i]
        order = others[:i] + [i] + others[i:]  # texts from most to least similar
        similarity[i, order] = np.arange(6, 0, -1)
    result = clip.retrieval_recall(similarity, captions, captions)
    assert sorted(result) == ["recall_at_1", "recall_at_5"]
    assert result["recall_at_1"]["image_to_text"] == pytest.approx(1 / 6)
    assert result["recall_at_5"]["image_to_text"] == pytest.approx(5 / 6)


def test_clip_dataset_flips_left_right_and_up_down_independently():
    # 200 copies of one 2 x 2 image with four different pixels: each comes out as one of its
    # four flips (none, left-right, up-down, both), each flip made with probability 1/2 on
    # its own, so each of the four with probability 1/4: 50 +- 6 of 200 (binomial).
    image = np.array([[[0], [1]], [[2], [3]]], np.uint8)
    images = np.repeat(image[None], 200, axis=0)
    dataset = clip_training._clip_dataset(images, np.zeros((200, 3), np.int32),
                                          np.zeros(200, np.int32), 200, 0, True)
    (batch, _), _ = next(iter(dataset))
    batch = np.rint(batch.numpy()[..., 0] * 255).astype(int)
    variants = {"none": image[..., 0], "left-right": image[:, ::-1, 0],
                "up-down": image[::-1, :, 0], "both": image[::-1, ::-1, 0]}
    counts = {name: int(sum(np.array_equal(one, variant) for one in batch))
              for name, variant in variants.items()}
    assert sum(counts.values()) == 200, counts
    assert all(25 <= count <= 75 for count in counts.values()), counts  # +- 4 sd


def test_train_clip_learns_its_temperature_from_clips_0_07_unless_told():
    # The CLIP paper: tau initialised at 0.07 and learned (a log-parameterised scale).
    got = {}

    def builder(vocabulary_size, **arguments):
        got.update(arguments)
        raise _Stop

    with pytest.raises(_Stop):
        clip_training.train_clip("attributes", epochs=1, train_size=16, builder=builder)
    assert (got["temperature"], got["learn_temperature"]) == (0.07, True)
