"""Lessons show their mechanism (issue 24): notebooks 04, 06, 07 and 08 build their central
model in visible cells, and the package keeps a copy for the command line and the later
notebooks. A lesson cell starts with the line

    # Lesson code: tests/test_lessons.py keeps it equal to mmcourse.<module>.<name>

Each test here runs one lesson cell on its own and checks that it computes what the
package's copy computes, on the same weights and inputs, so the two cannot drift apart."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from mmcourse import NOTEBOOKS_DIR

MARKER = re.compile(r"# Lesson code: tests/test_lessons.py keeps it equal to (\S+)")


def _lesson_cells():
    """{package name: (notebook file name, cell source)} of every lesson cell."""
    found = {}
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            match = MARKER.match(source)
            if cell["cell_type"] == "code" and match:
                assert match.group(1) not in found, f"two lesson cells for {match.group(1)}"
                found[match.group(1)] = (path.name, source)
    return found


LESSONS = _lesson_cells()
CHECKED = {
    "mmcourse.matcher.model.build_model": "04_fusion.ipynb",
    "mmcourse.blocks.TransformerBlock": "06_attention_and_relations.ipynb",
    "mmcourse.clip.build_clip": "07_vit_and_clip.ipynb",
    "mmcourse.vlm.decode_ids": "08_multimodal_language_models.ipynb",
}


def _run(target, **names):
    """The namespace left by running the lesson cell for ``target``."""
    namespace = {"keras": keras, "np": np, "ops": ops, "tf": tf, **names}
    exec(compile(LESSONS[target][1], f"<lesson {target}>", "exec"), namespace)  # noqa: S102
    return namespace


def test_every_lesson_cell_is_checked_here_and_sits_in_its_notebook():
    assert {target: notebook for target, (notebook, _) in LESSONS.items()} == CHECKED


@pytest.mark.parametrize("cross", [False, True], ids=["self-attention", "cross-attention"])
def test_the_pre_norm_block_of_06_is_the_packages_transformer_block(cross):
    from mmcourse.blocks import TransformerBlock

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 12)).astype("float32")
    context = rng.normal(size=(2, 7, 12)).astype("float32") if cross else None
    package = TransformerBlock(num_heads=2, key_dim=4, hidden_units=16)
    lesson = _run("mmcourse.blocks.TransformerBlock")["PreNormBlock"](2, 4, 16)
    package(x, context)
    lesson(x, context)
    parts = ("query_norm", "attention", "hidden_norm", "hidden", "out") + \
        (("context_norm",) if cross else ())
    for part in parts:  # random, not initial, weights: LayerNorm starts as the identity
        weights = [rng.normal(size=w.shape).astype("float32")
                   for w in getattr(package, part).get_weights()]
        getattr(package, part).set_weights(weights)
        getattr(lesson, part).set_weights(weights)
    assert lesson.count_params() == package.count_params()
    np.testing.assert_allclose(np.asarray(lesson(x, context)), np.asarray(package(x, context)),
                               atol=1e-4)


def test_the_clip_of_07_takes_the_same_training_step_as_the_packages_build_clip():
    from mmcourse import clip

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    small = {"width": 16, "image_depth": 1, "text_depth": 1, "embedding_dim": 8, "num_heads": 2,
             "key_dim": 4, "hidden_units": 16, "stem_filters": (8,), "patch_size": 4}
    package = clip.build_clip(20, image_shape=(16, 16, 3), **small)
    lesson = _run("mmcourse.clip.build_clip")["CLIP"](
        clip.build_image_encoder((16, 16, 3), **small), clip.build_text_encoder(20, **small))
    for name in ("image_encoder", "text_encoder"):
        getattr(lesson, name).set_weights(package.get_layer(name).get_weights())
    package.compile(optimizer=keras.optimizers.SGD(0.5), loss=clip.ContrastiveLoss())
    lesson.compile(optimizer=keras.optimizers.SGD(0.5))
    images = rng.random((6, 16, 16, 3)).astype("float32")
    token_ids = rng.integers(2, 20, size=(6, 5)).astype("int32")
    caption_ids = np.array([0, 1, 2, 0, 3, 1])  # repeated captions: targets off the diagonal
    np.testing.assert_allclose(np.asarray(lesson((images, token_ids))),
                               np.asarray(package([images, token_ids])), atol=1e-5)
    lesson_loss = lesson.train_on_batch((images, token_ids), caption_ids)
    package_loss = package.train_on_batch([images, token_ids], caption_ids)
    assert lesson_loss == pytest.approx(package_loss, abs=1e-5)
    np.testing.assert_allclose(float(lesson.log_scale.numpy()),
                               float(package.get_layer("logits").log_scale.numpy()), atol=1e-6)
    for name in ("image_encoder", "text_encoder"):
        for mine, theirs in zip(getattr(lesson, name).weights, package.get_layer(name).weights,
                                strict=True):
            np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-5)


def test_the_cached_greedy_loop_of_08_writes_what_the_packages_decode_ids_writes():
    from mmcourse import REPO_ROOT, vlm

    llava = keras.saving.load_model(REPO_ROOT / "docs" / "results" / "vlm_llava.keras",
                                    safe_mode=True)
    images = np.random.default_rng(0).integers(0, 256, size=(6, 64, 64, 3), dtype=np.uint8)
    images[:3] = np.flip(images[:3], axis=1)
    lesson = _run("mmcourse.vlm.decode_ids")["greedy_with_cache"](llava, images, max_length=8)
    expected = vlm.decode_ids(llava, images, max_length=8)
    assert lesson.shape == expected.shape == (6, 8)
    np.testing.assert_array_equal(lesson, expected)
    np.testing.assert_array_equal(expected, vlm.decode_ids(llava, images, max_length=8,
                                                           use_cache=False))


def test_the_concat_matcher_of_04_is_the_packages_build_model():
    from mmcourse.matcher.model import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    package = build_model("match", "concat", vocabulary_size=30)
    lesson = _run("mmcourse.matcher.model.build_model")["concat_matcher"](30)
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32")
               for w in package.get_weights()]  # random norms too, not the identity
    package.set_weights(weights)
    lesson.set_weights(weights)
    images = rng.random((8, 64, 64, 3)).astype("float32")
    token_ids = rng.integers(1, 30, size=(8, 6)).astype("int32")
    token_ids[:4, 3:] = 0  # padding, which the mask must hide from the LSTM
    np.testing.assert_allclose(lesson.predict([images, token_ids], verbose=0),
                               package.predict([images, token_ids], verbose=0), atol=1e-5)
    assert lesson.loss == package.loss == "binary_crossentropy"
    assert float(lesson.optimizer.learning_rate) == pytest.approx(
        float(package.optimizer.learning_rate))
