"""OpenCV augmentation and modality-consistent (image, text) augmentation."""

import cv2
import numpy as np
import pytest

from mmcourse.data import augment, draw, statements
from mmcourse.data import scenes as data


@pytest.fixture(scope="module")
def photo():
    from matplotlib import cbook

    return data.read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def scene():
    return draw.render_scene(data.random_scene(np.random.default_rng(0), "relations"))


def test_data_augment_is_the_articles_function(photo):
    for seed in range(5):
        expected_rng = np.random.default_rng(seed)
        angle = expected_rng.integers(-30, 30)
        scale = expected_rng.uniform(0.8, 1.2)
        rows, cols = photo.shape[:2]
        matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), int(angle), scale)
        expected = cv2.warpAffine(photo, matrix, (cols, rows))
        np.testing.assert_array_equal(augment.data_augment(photo, np.random.default_rng(seed)),
                                      expected)


def test_data_augment_identity_when_no_rotation_or_scale(scene):
    """With angle 0 and scale 1 the warp changes nothing (checks the centre convention)."""
    class NoChange(np.random.Generator):
        def integers(self, low, high=None, **kwargs):
            return 0

        def uniform(self, low=0.0, high=1.0, size=None):
            return 1.0

    rng = NoChange(np.random.PCG64(0))
    np.testing.assert_array_equal(augment.data_augment(scene, rng), scene)


TRANSFORMS = [
    augment.data_augment,
    augment.random_flip,
    augment.random_crop,
    augment.random_brightness_contrast,
    augment.add_noise,
    augment.augment_image,
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda f: f.__name__)
def test_transforms_keep_shape_dtype_and_range(transform, photo, scene):
    for image in (photo, scene):
        for seed in range(3):
            out = transform(image, np.random.default_rng(seed))
            assert out.shape == image.shape and out.dtype == np.uint8
            assert out is not image and not np.shares_memory(out, image)
        np.testing.assert_array_equal(transform(image, np.random.default_rng(9)),
                                      transform(image, np.random.default_rng(9)))


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda f: f.__name__)
def test_transforms_reject_bad_input(transform, scene):
    rng = np.random.default_rng(0)
    for bad_rng in (None, 0, np.random.RandomState(0)):
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
            transform(scene, bad_rng)
    with pytest.raises(ValueError, match="dtype uint8"):
        transform(scene.astype(np.float32) / 255, rng)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\), got \(64, 64\)"):
        transform(scene[..., 0], rng)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\), got \(64, 64, 4\)"):
        transform(np.zeros((64, 64, 4), np.uint8), rng)
    with pytest.raises(ValueError, match="is empty"):
        transform(np.zeros((0, 64, 3), np.uint8), rng)
    with pytest.raises(ValueError, match=r"is empty: shape \(64, 0, 3\)"):
        transform(np.zeros((64, 0, 3), np.uint8), rng)
    with pytest.raises(TypeError, match="numpy array"):
        transform([[1, 2, 3]], rng)


def test_each_transform_does_what_it_says(scene):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(augment.random_flip(scene, rng, p=1.0), scene[:, ::-1])
    np.testing.assert_array_equal(augment.random_flip(scene, rng, horizontal=False, p=1.0),
                                  scene[::-1])
    np.testing.assert_array_equal(augment.random_flip(scene, rng, p=0.0), scene)
    np.testing.assert_array_equal(augment.random_crop(scene, rng, min_fraction=1.0), scene)
    noisy = augment.add_noise(scene, np.random.default_rng(1), sigma=8)
    assert 6 < np.std(noisy.astype(float) - scene) < 10
    np.testing.assert_array_equal(augment.add_noise(scene, rng, sigma=0), scene)
    same = augment.random_brightness_contrast(scene, rng, brightness=0, contrast=0)
    assert np.abs(same.astype(int) - scene).max() <= 1
    with pytest.raises(ValueError, match="min_fraction"):
        augment.random_crop(scene, rng, min_fraction=0)
    with pytest.raises(ValueError, match=r"min_fraction must be in \(0, 1\], got 1.5"):
        augment.random_crop(scene, rng, min_fraction=1.5)
    with pytest.raises(ValueError, match="sigma"):
        augment.add_noise(scene, rng, sigma=-1)


def test_crop_window_stays_inside_the_image(scene):
    for seed in range(10):  # the full-size window can only start at (0, 0)
        np.testing.assert_array_equal(
            augment.random_crop(scene, np.random.default_rng(seed), min_fraction=1.0), scene)
    pixel = np.array([[[10, 20, 30]]], np.uint8)  # 1x1: a 0.01 window still has 1 pixel
    for seed in range(10):
        np.testing.assert_array_equal(
            augment.random_crop(pixel, np.random.default_rng(seed), min_fraction=0.01), pixel)


def test_noise_clips_at_0_and_255_only():
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    for image in (black, white):
        np.testing.assert_array_equal(augment.add_noise(image, np.random.default_rng(0), 0),
                                      image)
    noisy = augment.add_noise(black, np.random.default_rng(0), sigma=50)
    assert noisy.min() == 0 and noisy.max() > 50
    noisy = augment.add_noise(white, np.random.default_rng(0), sigma=20)  # above 255: 255
    assert noisy.max() == 255 and noisy.min() > 100


def test_augment_image_is_the_documented_composition(scene):
    """Rotation+scale, horizontal flip, crop, brightness/contrast, noise: in this order and
    all on by default."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        expected = augment.data_augment(scene, rng)
        expected = augment.random_flip(expected, rng, horizontal=True)
        expected = augment.random_crop(expected, rng)
        expected = augment.add_noise(augment.random_brightness_contrast(expected, rng), rng)
        np.testing.assert_array_equal(augment.augment_image(scene, np.random.default_rng(seed)),
                                      expected)
    np.testing.assert_array_equal(
        augment.augment_image(scene, np.random.default_rng(0), rotate=False, flip=False,
                              crop=False, photometric=False), scene)


def test_swap_table_swaps_left_and_right_by_default():
    tokens = ["", "[UNK]", "left", "right", "above", "below", "red"]
    assert augment.swap_table(tokens).tolist() == [0, 1, 3, 2, 4, 5, 6]
    assert augment.swap_table(tokens, horizontal=False).tolist() == [0, 1, 2, 3, 5, 4, 6]
    assert augment.swap_table(["", "[UNK]", "left"]).tolist() == [0, 1, 2]  # no "right"


def test_flip_pair_is_horizontal_by_default(scene):
    image, text = augment.flip_pair(scene, "a red circle left of a blue square")
    np.testing.assert_array_equal(image, scene[:, ::-1])
    assert text == "a red circle right of a blue square"
    image, text = augment.augment_pair(scene, "a large red circle", np.random.default_rng(0),
                                       rotate=True)  # the attributes level: rotation is safe
    assert image.shape == scene.shape and text == "a large red circle"


def _draws(seed, brightness, contrast):
    """The contrast factor and brightness shift a generator seeded ``seed`` gives first."""
    twin = np.random.default_rng(seed)
    return twin.uniform(1 - contrast, 1 + contrast), twin.uniform(-brightness, brightness) * 255


def test_contrast_pivots_on_the_image_mean():
    grey = np.full((4, 5, 3), 100, np.uint8)
    for seed in range(6):
        alpha, _ = _draws(seed, 0, 0.5)
        assert abs(alpha - 1) > 0.01  # a real change of contrast: about 0, 100 would move
        out = augment.random_brightness_contrast(grey, np.random.default_rng(seed),
                                                 brightness=0, contrast=0.5)
        np.testing.assert_array_equal(out, grey)


def test_brightness_and_contrast_by_hand():
    image = np.array([[[0, 100, 200], [50, 100, 150]]], np.uint8)  # mean 100
    # seed 0: alpha = 1.137, beta = -23.48; 0 -> 1.137 * -100 + 100 - 23.48 = -37.2 -> 0
    # (clipped, not mirrored to 37), 50 -> 19.7, 100 -> 76.5, 150 -> 133.4, 200 -> 190.2
    out = augment.random_brightness_contrast(image, np.random.default_rng(0), brightness=0.2,
                                             contrast=0.5)
    assert out.tolist() == [[[0, 77, 190], [20, 77, 133]]]
    # seed 4: alpha = 1.443, beta = 1.155: 200 -> 245.5 -> 245, 0 -> -43.2 -> 0
    out = augment.random_brightness_contrast(image, np.random.default_rng(4), brightness=0.2,
                                             contrast=0.5)
    assert out.tolist() == [[[0, 101, 245], [29, 101, 173]]]
    for seed in range(6):
        alpha, beta = _draws(seed, 0.2, 0.5)
        expected = np.clip(np.rint(alpha * (image - 100.0) + 100 + beta), 0, 255)
        out = augment.random_brightness_contrast(image, np.random.default_rng(seed),
                                                 brightness=0.2, contrast=0.5)
        np.testing.assert_array_equal(out, expected)
    # brightness alone: contrast 0 draws alpha = 1 exactly, so x -> x + beta
    _, beta = _draws(1, 0.2, 0)
    out = augment.random_brightness_contrast(image, np.random.default_rng(1), brightness=0.2,
                                             contrast=0)
    np.testing.assert_array_equal(out, np.clip(np.rint(image + beta), 0, 255))
    assert round(beta) == 46


def test_brightness_and_contrast_reject_bad_ranges(scene):
    rng = np.random.default_rng(0)
    for extreme in (0, 1):  # the ends of [0, 1] are allowed
        out = augment.random_brightness_contrast(scene, rng, brightness=extreme, contrast=extreme)
        assert out.shape == scene.shape
    with pytest.raises(ValueError, match="contrast must be in"):
        augment.random_brightness_contrast(scene, rng, contrast=1.5)
    with pytest.raises(ValueError, match="brightness must be in"):
        augment.random_brightness_contrast(scene, rng, brightness=-0.1)


def test_augment_batch_photometric_by_hand():
    """Flat images (unchanged by flips): x -> alpha (x - mean) + mean + beta + noise = x + beta
    + noise, with the draws of a generator seeded like the one passed."""
    levels = np.array([30, 100, 200, 250])
    images = np.ones((4, 3, 2, 3), np.uint8) * levels[:, None, None, None].astype(np.uint8)
    images[1, 0, 0] = [0, 0, 90]  # one non-flat image: the pivot is its own mean
    ids, labels = np.zeros((4, 2), np.int32), np.zeros(4, np.float32)
    out, _, _ = augment.augment_batch(images, ids, labels, np.random.default_rng(3), ["", "[UNK]"])
    twin = np.random.default_rng(3)
    horizontal, vertical = twin.random(4) < 0.5, twin.random(4) < 0.5
    alpha = twin.uniform(0.8, 1.2, size=(4, 1, 1, 1))
    beta = twin.uniform(-0.2, 0.2, size=(4, 1, 1, 1)) * 255
    noise = twin.normal(0.0, 8.0, size=images.shape)
    assert np.abs(alpha - 1).max() > 0.1  # contrast about 0 would move x by (alpha - 1) x
    flipped = images[1, ::-1 if vertical[1] else 1, ::-1 if horizontal[1] else 1].astype(float)
    expected = images.astype(float) + beta + noise
    mean = flipped.mean()  # (5 * 3 * 100 + 90) / 18 = 88.33
    assert mean == pytest.approx((15 * 100 + 90) / 18)
    expected[1] = alpha[1] * (flipped - mean) + mean + beta[1] + noise[1]
    np.testing.assert_allclose(out, np.clip(np.rint(expected), 0, 255), atol=1)


def test_swap_spatial_words_in_one_pass():
    assert augment.swap_spatial_words("a red circle left of a blue square") == \
        "a red circle right of a blue square"
    assert augment.swap_spatial_words("left to right: red, blue") == "right to left: red, blue"
    assert augment.swap_spatial_words("Left or right?") == "Right or left?"
    assert augment.swap_spatial_words("above and below", horizontal=False) == "below and above"
    assert augment.swap_spatial_words("at the top or bottom", horizontal=False) == \
        "at the bottom or top"
    assert augment.swap_spatial_words("bright leftovers", horizontal=True) == "bright leftovers"
    assert augment.swap_spatial_words("a red circle above a cube") == "a red circle above a cube"
    with pytest.raises(TypeError, match="text must be a str"):
        augment.swap_spatial_words(None)


def _mirror(objects, horizontal):
    key = "x" if horizontal else "y"
    return [{**o, key: draw.IMAGE_SIZE - 1 - o[key]} for o in objects]


def _true_spatial_texts(objects, relations):
    texts = []
    for a in objects:
        for b in objects:
            for relation in relations:
                statement = {"kind": "spatial", "a": a, "relation": relation, "b": b}
                if a is not b and statements.is_true(statement, objects):
                    texts.append(statements.statement_text(statement))
    return sorted(texts)


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_pair_keeps_relational_captions_true(horizontal):
    """Flip a scene: the swapped captions are exactly the true captions of the mirrored scene."""
    relations = ("left of", "right of") if horizontal else ("above", "below")
    rng = np.random.default_rng(11)
    for _ in range(20):
        objects = data.random_scene(rng, "relations")
        image = draw.render_scene(objects)
        mirrored = _mirror(objects, horizontal)
        captions = _true_spatial_texts(objects, relations)
        assert captions
        flipped_captions = []
        for caption in captions:
            flipped_image, flipped_caption = augment.flip_pair(image, caption, horizontal)
            flipped_captions.append(flipped_caption)
            assert flipped_caption != caption
            assert statements.is_true(statements.parse_statement(flipped_caption), mirrored)
            assert not statements.is_true(statements.parse_statement(caption), mirrored)  # the lie
        assert sorted(flipped_captions) == _true_spatial_texts(mirrored, relations)
        expected = image[:, ::-1] if horizontal else image[::-1]
        np.testing.assert_array_equal(flipped_image, expected)
        if horizontal:  # shapes are left-right symmetric: the flip equals the mirrored render
            rendered = draw.render_scene(mirrored).astype(int)
            assert np.abs(rendered - flipped_image).mean() < 0.5
            caption = statements.retrieval_caption(objects, "relations")
            _, flipped_caption = augment.flip_pair(image, caption, horizontal)
            names = statements.retrieval_caption(mirrored, "relations").split(": ")[1].split(", ")
            assert flipped_caption == "right to left: " + ", ".join(reversed(names))


def test_augment_pair_keeps_text_true_and_is_seeded():
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(30):
        objects = data.random_scene(rng, "relations")
        image = draw.render_scene(objects)
        caption = _true_spatial_texts(objects, ("left of", "above"))[0]
        out_image, out_text = augment.augment_pair(image, caption, rng, photometric=False)
        flips = [(h, v) for h in (False, True) for v in (False, True)
                 if np.array_equal(out_image, image[::-1 if v else 1, ::-1 if h else 1])]
        assert flips
        h, v = flips[0]
        seen.add((h, v))
        objects_after = _mirror(objects, True) if h else objects
        objects_after = _mirror(objects_after, False) if v else objects_after
        assert statements.is_true(statements.parse_statement(out_text), objects_after)
    assert len(seen) == 4
    first = augment.augment_pair(image, caption, np.random.default_rng(1))
    second = augment.augment_pair(image, caption, np.random.default_rng(1))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    with pytest.raises(TypeError, match="rng must be"):
        augment.augment_pair(image, caption, 1)
    with pytest.raises(TypeError, match="text must be a str"):
        augment.augment_pair(image, b"bytes", rng)


def test_augment_batch_swaps_token_ids_and_answers():
    vocabulary = ["", "[UNK]", "left", "right", "above", "below", "red", "of"]
    answers = ["circle", "left", "right", "top", "bottom"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 8, 8, 3), dtype=np.uint8)
    ids = np.tile(np.array([[6, 2, 7, 4, 0]], np.int32), (64, 1))  # red left of above
    labels = np.tile(np.array([1, 3, 0, 2], np.int32), 16)
    out_images, out_ids, out_labels = augment.augment_batch(
        images, ids, labels, np.random.default_rng(1), vocabulary, answers=answers,
        photometric=False)
    assert out_images.dtype == np.uint8 and out_ids.dtype == np.int32
    for i in range(64):
        h = np.array_equal(out_images[i], images[i, :, ::-1]) or \
            np.array_equal(out_images[i], images[i, ::-1, ::-1])
        v = np.array_equal(out_images[i], images[i, ::-1]) or \
            np.array_equal(out_images[i], images[i, ::-1, ::-1])
        assert out_ids[i].tolist() == [6, 3 if h else 2, 7, 5 if v else 4, 0]
        expected_answer = {1: 2 if h else 1, 2: 1 if h else 2, 3: 4 if v else 3,
                           4: 3 if v else 4, 0: 0}[labels[i]]
        assert out_labels[i] == expected_answer
    assert not np.array_equal(out_images, images)
    noisy, _, _ = augment.augment_batch(images, ids, labels, np.random.default_rng(1), vocabulary)
    assert noisy.dtype == np.uint8 and noisy.shape == images.shape
    one, _, _ = augment.augment_batch(images[:1], ids[:1], labels[:1], rng, vocabulary,
                                      rotate=True)  # a batch of one, rotated
    assert one.shape == (1, 8, 8, 3) and one.dtype == np.uint8
    with pytest.raises(ValueError, match=r"image_batch is empty: shape \(0, 8, 8, 3\)"):
        augment.augment_batch(images[:0], ids[:0], labels[:0], rng, vocabulary)
    with pytest.raises(ValueError, match="same length"):
        augment.augment_batch(images, ids[:3], labels, rng, vocabulary)
    with pytest.raises(ValueError, match=r"shape \(N, H, W, 3\)"):
        augment.augment_batch(images[0], ids, labels, rng, vocabulary)
