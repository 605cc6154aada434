"""The classical object extractor (mmcourse.data.objects) against the generator's own ground truth
(scenes.jsonl), and the ``objects`` fusion: masking, training, saving, refusals."""

import numpy as np
import pytest

from mmcourse.data import draw, objects, store
from mmcourse.data import scenes as data

SCENES = 150  # per level: the first scenes of the test split


def _scenes(level, count=SCENES):
    store.ensure_data()
    folder = data.DATA_DIR / level / "test"
    scenes = data.load_records("scenes", level, "test")[:count]
    return [(data.read_image(folder / s["image"]), s["objects"]) for s in scenes]


@pytest.mark.parametrize("level", ["relations", "attributes"])
def test_extracted_counts_colours_and_centres_equal_what_the_generator_drew(level):
    errors = []
    for image, drawn in _scenes(level):
        found = objects.detect_objects(image)
        assert len(found) == len(drawn)
        assert sorted(o["colour"] for o in found) == sorted(o["colour"] for o in drawn)
        for obj in drawn:
            (match,) = [o for o in found if o["colour"] == obj["colour"]]
            errors.append(np.hypot(match["x"] - obj["x"], match["y"] - obj["y"]))
    assert max(errors) <= 0.75  # pixels; measured 0.5 over all 1500 test scenes


def test_the_median_filter_keeps_the_count_under_strong_pixel_noise():
    """Gaussian noise of standard deviation 60 (of 255): with the 3x3 median filter every
    object is still found once; without it, noise splits objects and merges colours (measured
    on 200 scenes: count right in 100% with the filter, 72% without)."""
    rng = np.random.default_rng(60)
    right = {0: [], 3: []}
    for image, drawn in _scenes("relations", 60):
        noisy = np.clip(image + rng.normal(0, 60, image.shape), 0, 255).astype(np.uint8)
        for blur in right:
            found = objects.detect_objects(noisy, blur=blur)
            right[blur].append(sorted(o["colour"] for o in found)
                               == sorted(o["colour"] for o in drawn))
    assert all(right[3])
    assert np.mean(right[0]) < 0.95


def test_the_shape_features_separate_the_drawn_shapes():
    """A two-line rule on the features (hand-set from the drawing geometry: a triangle fills
    half its bounding box, a disc pi/4, a square all of it; a disc's contour keeps many
    corners) names every drawn shape."""
    for image, drawn in _scenes("relations"):
        for obj in objects.detect_objects(image):
            (truth,) = [o["shape"] for o in drawn if o["colour"] == obj["colour"]]
            guess = ("triangle" if obj["extent"] < 0.67 else
                     "circle" if obj["vertices"] >= 7 else "square")
            assert guess == truth, (obj, truth)


def test_compare_with_scene_scores_a_detection_against_the_drawing():
    drawn = [{"colour": "red", "x": 10, "y": 10}, {"colour": "blue", "x": 40, "y": 30}]
    good = [{"colour": "red", "x": 10.4, "y": 10}, {"colour": "blue", "x": 40, "y": 29.5}]
    assert objects.compare_with_scene(good, drawn) == {
        "count_ok": True, "colours_ok": True, "centres_ok": True, "max_error": 0.5}
    shifted = [good[0], {"colour": "blue", "x": 42, "y": 30}]
    assert objects.compare_with_scene(shifted, drawn)["centres_ok"] is False
    split = objects.compare_with_scene([*good, {"colour": "blue", "x": 45, "y": 30}], drawn)
    assert split["max_error"] == pytest.approx(0.4)  # red's error: blue matched twice
    assert (split["count_ok"], split["colours_ok"], split["centres_ok"]) == (False, True, False)


def test_a_token_holds_colour_shape_centre_size_and_presence():
    scene = [{"shape": "circle", "colour": "blue", "x": 45, "y": 20, "r": 8},
             {"shape": "square", "colour": "red", "x": 15, "y": 40, "r": 7}]
    tokens = objects.object_tokens(draw.render_scene(scene))
    assert tokens.shape == (objects.MAX_OBJECTS, objects.FEATURES) == (4, 14)
    assert tokens.dtype == np.float32
    names = objects.TOKEN_FEATURES
    red, blue = tokens[0], tokens[1]  # ordered by colour: red before blue in draw.COLOURS
    assert red[names.index("colour_red")] == 1 and red[:6].sum() == 1
    assert blue[names.index("colour_blue")] == 1 and blue[:6].sum() == 1
    for token, obj in ((red, scene[1]), (blue, scene[0])):
        assert token[names.index("x")] == pytest.approx(obj["x"] / 63 * 2 - 1, abs=0.02)
        assert token[names.index("y")] == pytest.approx(obj["y"] / 63 * 2 - 1, abs=0.02)
        assert token[names.index("present")] == 1
    # size: the radius of a disc of the same area, over 8 pixels: 8 / 8 for the disc of
    # r = 8; the square's side is 2 * 0.89 * 7 = 12.5, a disc of its area has r = 7.0
    assert blue[names.index("size")] == pytest.approx(1.0, abs=0.06)
    assert red[names.index("size")] == pytest.approx(7.0 / 8, abs=0.06)
    assert blue[names.index("extent")] == pytest.approx(np.pi / 4, abs=0.05)
    assert red[names.index("extent")] == pytest.approx(1.0, abs=0.05)
    assert not tokens[2:].any()  # padding slots are all zero


def test_extra_objects_beyond_the_slots_keep_the_largest():
    scene = [{"shape": "circle", "colour": colour, "x": x, "y": 32, "r": r}
             for colour, x, r in (("red", 10, 4), ("green", 26, 7), ("blue", 42, 5),
                                  ("cyan", 56, 6))]
    tokens = objects.object_tokens(draw.render_scene(scene), max_objects=2)
    colours = [tuple(draw.COLOURS)[int(row[:6].argmax())] for row in tokens]
    assert colours == ["green", "cyan"]


def test_where_it_breaks_an_occluded_object_moves_its_centre():
    """Two objects 6 pixels into each other: the one drawn first loses pixels to the one on
    top, so its centroid moves away by more than the 1-pixel tolerance."""
    under = {"shape": "square", "colour": "red", "x": 24, "y": 32, "r": 8}
    over = {"shape": "circle", "colour": "blue", "x": 24 + 8 + 7 - 6, "y": 32, "r": 8}
    found = objects.detect_objects(draw.render_scene([under, over]))
    score = objects.compare_with_scene(found, [under, over])
    assert score["count_ok"] and score["colours_ok"]
    assert not score["centres_ok"] and score["max_error"] > 1.0
    (red,) = [o for o in found if o["colour"] == "red"]
    assert red["x"] < under["x"] - 1.0  # pushed away from the occluder


def test_scene_tokens_stacks_a_batch():
    images = np.stack([image for image, _ in _scenes("relations", 3)])
    tokens = objects.scene_tokens(images)
    assert tokens.shape == (3, 4, objects.FEATURES)
    np.testing.assert_array_equal(tokens[1], objects.object_tokens(images[1]))


@pytest.mark.parametrize("call, needle", [
    (lambda: objects.object_tokens(np.zeros((64, 64, 3), np.float32)), "image must be RGB uint8"),
    (lambda: objects.object_tokens(np.zeros((64, 64), np.uint8)), "image must be RGB uint8"),
    (lambda: objects.object_tokens(np.zeros((64, 64, 3), np.uint8), max_objects=0),
     "max_objects must be a positive int, got 0"),
    (lambda: objects.detect_objects(np.zeros((64, 64, 3), np.uint8), min_area=0),
     "min_area must be a positive int"),
    (lambda: objects.colour_labels(np.zeros((64, 64, 3), np.uint8), blur=2),
     "blur must be 0, 1 or an odd int >= 3, got 2"),
    (lambda: objects.scene_tokens(np.zeros((2, 64, 64), np.uint8)), "images must be RGB uint8"),
    (lambda: objects.dataset_from_tokens(np.zeros((2, 4, 14)), np.zeros((2, 5), int),
                                         np.zeros(2)), "tokens must be float32"),
])
def test_bad_input_gets_a_clear_error(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


# --- the objects fusion ---------------------------------------------------------------------


def test_padding_slots_add_nothing_to_the_relation_sum():
    """Two objects in four slots give what the plain relation network gives on the two
    objects alone (mmcourse.blocks.RelationModule, same weights)."""
    from mmcourse.blocks import RelationModule
    from mmcourse.matcher.object_relations import ObjectRelationModule

    rng = np.random.default_rng(0)
    two = rng.normal(size=(3, 2, 14)).astype("float32")
    two[:, :, -1] = 1.0
    padded = np.concatenate([two, np.zeros((3, 2, 14), "float32")], axis=1)
    question = rng.normal(size=(3, 5)).astype("float32")
    layer = ObjectRelationModule(16)
    plain = RelationModule(16)
    got = np.asarray(layer([padded, question]))
    plain([two, question])
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(got, np.asarray(plain([two, question])), rtol=1e-5, atol=1e-5)
    unmasked = np.asarray(RelationModule.call(layer, [padded, question]))
    assert not np.allclose(unmasked, got, atol=1e-3)  # the padding would count without it


def test_each_pair_also_sees_its_offset_and_distance():
    """g's first layer against the formula, in NumPy: relu(W_i o_i + W_j o_j + W_g [x_j - x_i;
    y_j - y_i; |p_j - p_i|] + W_q q + b), then the ReLU layers; the sum over present pairs."""
    from mmcourse.matcher.object_relations import ObjectRelationModule

    rng = np.random.default_rng(1)
    tokens = rng.normal(size=(2, 3, 6)).astype("float32")
    tokens[:, :, -1] = [1.0, 1.0, 0.0]
    question = rng.normal(size=(2, 4)).astype("float32")
    layer = ObjectRelationModule(8, depth=2, centre_index=2)
    got = np.asarray(layer([tokens, question]))
    w1, w2, wq, b, w_g = (np.asarray(w) for w in (
        layer.first_kernel, layer.second_kernel, layer.question_kernel, layer.bias,
        layer.geometry_kernel))
    w_dense, b_dense = (np.asarray(w) for w in layer.pair_layers[0].weights)
    assert w_g.shape == (3, 8) and w_dense.shape == (8, 8)
    expected = np.zeros((2, 8))
    for n in range(2):
        for i in range(2):  # the third token is padding
            for j in range(2):
                offset = tokens[n, j, 2:4] - tokens[n, i, 2:4]
                # the layer's distance is sqrt(|offset|^2 + 1e-6): a finite gradient at i = j
                geometry = np.array([*offset, np.sqrt(offset @ offset + 1e-6)])
                hidden = np.maximum(tokens[n, i] @ w1 + tokens[n, j] @ w2 + geometry @ w_g
                                    + question[n] @ wq + b, 0)
                expected[n] += np.maximum(hidden @ w_dense + b_dense, 0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mmcourse.train import tasks as training

    run_dir = tmp_path_factory.mktemp("objects_run")
    result = training.train(task="qa", fusion="objects", level="relations", epochs=1,
                            train_size=128, test_size=64, run_dir=run_dir, log=None,
                            keep_model=True)
    return result, run_dir


def test_the_objects_model_trains_on_tokens_and_reports_extraction_time(trained):
    result, _ = trained
    model = result["model"]
    assert [tuple(t.shape) for t in model.inputs][0] == (None, 4, objects.FEATURES)
    assert result["fusion"] == "objects" and result["epochs_run"] == 1
    assert result["train_examples"] == 128 and result["test_examples"] == 64
    assert result["extract_seconds"] > 0
    assert set(result["accuracy_by_type"]) >= {"relational", "non_relational"}
    assert np.isfinite(result["test_loss"])


def test_the_objects_model_round_trips_through_keras_files(trained):
    from mmcourse.matcher.io import load_matcher

    result, run_dir = trained
    tokens, token_ids, _, _ = objects.split_features("qa", "relations", "test", limit=16)
    loaded = load_matcher(run_dir / "model.keras")
    np.testing.assert_allclose(loaded.predict([tokens, token_ids], verbose=0),
                               result["model"].predict([tokens, token_ids], verbose=0),
                               atol=1e-6)


def test_the_objects_model_refuses_raw_inputs(trained):
    from mmcourse.data import text
    from mmcourse.matcher import io as matcher_io
    from mmcourse.train import tasks as training

    with pytest.raises(ValueError, match="takes object tokens .* cannot be saved with raw "
                                         "inputs, exported or served"):
        matcher_io.raw_input_model(trained[0]["model"], text.load_vocabulary(), 12,
                                   answers=text.answer_vocabulary())
    with pytest.raises(ValueError, match="save: the objects model takes object tokens"):
        training.train(task="qa", fusion="objects", level="relations", save="m.keras")


def test_build_model_checks_the_token_shape():
    from mmcourse.matcher.model import build_model

    with pytest.raises(ValueError, match=r"image_shape for fusion 'objects' must be \(slots, "
                                         r"14\) object tokens"):
        build_model("qa", "objects", image_shape=(4, 9))
    model = build_model("match", "objects", image_shape=(6, objects.FEATURES))
    assert tuple(model.inputs[0].shape) == (None, 6, objects.FEATURES)


# --- the match model over object tokens (issue 25): find both named objects ----------------

# Three colours, then x, y, present: red at the centre, green 0.5 right of it, blue 0.9 left
# of it, and a padding slot (all zeros: its centre is red's, at distance 0).
SCENE = np.array([[[1, 0, 0, 0.0, 0.0, 1], [0, 1, 0, 0.5, 0.0, 1], [0, 0, 1, -0.9, 0.0, 1],
                   [0, 0, 0, 0.0, 0.0, 0]]], "float32")


def _pointing_readout(tau=30.0, read_neighbours=False):
    """An ObjectPairReadout whose hop 1 finds the colour the question names (question: one-hot
    of a's colour, then of b's): key = 50 x colour, query_a / query_b pick a's / b's half."""
    from mmcourse.matcher.object_relations import ObjectPairReadout

    layer = ObjectPairReadout(3, depth=1, centre_index=3, tau=tau,
                              read_neighbours=read_neighbours)
    question = np.zeros((1, 6), "float32")
    layer([SCENE, question])
    key = np.zeros((6, 3), "float32")
    key[:3] = 50 * np.eye(3)
    layer.key_kernel.assign(key)
    layer.query_a_kernel.assign(np.vstack([np.eye(3), np.zeros((3, 3))]).astype("float32"))
    layer.query_b_kernel.assign(np.vstack([np.zeros((3, 3)), np.eye(3)]).astype("float32"))
    return layer


def _question(a, b):
    question = np.zeros((1, 6), "float32")
    question[0, a], question[0, 3 + b] = 1.0, 1.0
    return question


@pytest.mark.parametrize(("a", "b", "nearest", "furthest"), [
    (2, 0, 1, 2),  # b red: green (0.5 away) is nearest, blue (0.9) furthest; not red itself
    (0, 1, 0, 2),  # b green: red (0.5) nearest, blue (1.4) furthest
    (1, 2, 0, 1),  # b blue: red (0.9) nearest, green (1.4) furthest
])
def test_the_pair_readout_finds_both_objects_and_b_s_nearest_and_furthest(a, b, nearest,
                                                                          furthest):
    layer = _pointing_readout()
    w_a, w_b, near, far = (np.asarray(w)[0] for w in layer.weights_of([SCENE, _question(a, b)]))
    one_hot = np.eye(4)
    np.testing.assert_allclose(w_a, one_hot[a], atol=1e-4)
    np.testing.assert_allclose(w_b, one_hot[b], atol=1e-4)
    # the padding slot (at red's centre) is never a neighbour, b is never its own
    np.testing.assert_allclose(near, one_hot[nearest], atol=1e-4)
    np.testing.assert_allclose(far, one_hot[furthest], atol=1e-4)


def test_the_distance_hops_follow_the_softmax_of_tau_times_distance():
    """Red's neighbours green (0.5) and blue (0.9) at tau = 2: near = softmax(-2 [0.5, 0.9]),
    by hand e^-1 / (e^-1 + e^-1.8) = 0.6900, far = e^1.8 / (e^1 + e^1.8) = 0.6900 too."""
    layer = _pointing_readout(tau=2.0)
    _, _, near, far = (np.asarray(w)[0] for w in layer.weights_of([SCENE, _question(1, 0)]))
    np.testing.assert_allclose(near, [0, 0.6900, 0.3100, 0], atol=1e-3)
    np.testing.assert_allclose(far, [0, 0.3100, 0.6900, 0], atol=1e-3)


@pytest.mark.parametrize(("a", "b", "is_near", "is_far"), [(1, 0, 1, 0), (2, 0, 0, 1),
                                                          (0, 1, 1, 0)])
def test_the_pair_readout_reads_the_pair_as_its_formula_says(a, b, is_near, is_far):
    """out = relu([o_a; o_b; w^a . near; w^a . far; p_b - p_a; |p_b - p_a|; q] W + b), the
    pieces written out by hand: green is red's nearest, blue red's furthest, red green's
    nearest."""
    layer = _pointing_readout()
    question = _question(a, b)
    got = np.asarray(layer([SCENE, question]))[0]
    o_a, o_b = SCENE[0, a], SCENE[0, b]
    offset = o_b[3:5] - o_a[3:5]
    pieces = np.concatenate([o_a, o_b, [is_near, is_far], offset,
                             [np.sqrt(offset @ offset + 1e-6)], question[0]])
    assert pieces.shape == (2 * 6 + 5 + 6,)
    kernel, bias = (np.asarray(w) for w in layer.mlp[0].weights)
    np.testing.assert_allclose(got, np.maximum(pieces @ kernel + bias, 0), atol=1e-3)


@pytest.mark.parametrize(("b", "nearest", "furthest"), [(0, 1, 2), (1, 0, 2), (2, 0, 1)])
def test_with_read_neighbours_the_readout_also_reads_b_s_nearest_and_furthest(b, nearest,
                                                                             furthest):
    """qa: "what shape is the object nearest to the red one" is a property of b's nearest
    object, so the MLP also gets its token and the furthest one's, after the pair's pieces."""
    layer = _pointing_readout(read_neighbours=True)
    a = (b + 1) % 3
    question = _question(a, b)
    got = np.asarray(layer([SCENE, question]))[0]
    o_a, o_b = SCENE[0, a], SCENE[0, b]
    offset = o_b[3:5] - o_a[3:5]
    pieces = np.concatenate([o_a, o_b, [float(a == nearest), float(a == furthest)], offset,
                             [np.sqrt(offset @ offset + 1e-6)], question[0],
                             SCENE[0, nearest], SCENE[0, furthest]])
    assert pieces.shape == (4 * 6 + 5 + 6,)
    kernel, bias = (np.asarray(w) for w in layer.mlp[0].weights)
    np.testing.assert_allclose(got, np.maximum(pieces @ kernel + bias, 0), atol=1e-3)
    config = layer.get_config()
    assert config["read_neighbours"] is True
    assert type(layer).from_config(config).read_neighbours is True


def test_word_slots_pool_the_words_by_position_skipping_padding():
    """Slot 0's logits (0, ln 3, 5, ...) over the words of "w1 w2" (then padding): weights
    1/4, 3/4, 0 by hand; the slot is 1/4 e_1 + 3/4 e_2."""
    from mmcourse.matcher.object_relations import WordSlots

    embedded = np.array([[[1, 0], [0, 4], [9, 9]]], "float32")
    token_ids = np.array([[5, 7, 0]], "int32")
    layer = WordSlots(2, max_length=8)
    layer([embedded, token_ids])
    logits = np.zeros((2, 8), "float32")
    logits[0, :3] = [0.0, np.log(3.0), 5.0]
    layer.position_logits.assign(logits)
    weights = np.asarray(layer.weights_of([embedded, token_ids]))[0]
    np.testing.assert_allclose(weights, [[0.25, 0.75, 0], [0.5, 0.5, 0]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer([embedded, token_ids]))[0],
                               [[0.25, 3.0], [0.5, 2.0]], atol=1e-6)


@pytest.mark.parametrize(("make", "needle"), [
    (lambda: __import__("mmcourse.matcher.object_relations", fromlist=["x"]).WordSlots(0),
     "slots must be a positive int"),
    (lambda: __import__("mmcourse.matcher.object_relations", fromlist=["x"]).ObjectPairReadout(
        tau=0), "tau must be a positive number"),
    (lambda: __import__("mmcourse.matcher.object_relations", fromlist=["x"]).ObjectPairReadout(
        centre_index=1.5), "centre_index must be an int"),
])
def test_the_match_layers_check_their_arguments(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_word_slots_refuse_texts_longer_than_max_length():
    from mmcourse.matcher.object_relations import WordSlots

    with pytest.raises(ValueError, match="L <= max_length=2"):
        WordSlots(1, max_length=2)([np.zeros((1, 3, 2), "float32"), np.ones((1, 3), "int32")])


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # never fitted
def test_the_match_model_round_trips_through_keras_files(tmp_path):
    from mmcourse.matcher.io import load_matcher
    from mmcourse.matcher.model import build_model

    model = build_model("match", "objects")
    assert {"word_slots", "pair", "fusion"} <= {layer.name for layer in model.layers}
    rng = np.random.default_rng(2)
    tokens = rng.normal(size=(3, 4, objects.FEATURES)).astype("float32")
    tokens[:, :, -1] = [1, 1, 1, 0]
    token_ids = rng.integers(1, 20, size=(3, 12)).astype("int32")
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_matcher(tmp_path / "m.keras").predict(
        [tokens, token_ids], verbose=0), model.predict([tokens, token_ids], verbose=0),
        atol=1e-6)


def test_the_objects_match_model_trains_80_epochs_by_default():
    """TASK_FUSION_DEFAULTS: match over objects takes 80 epochs unless told (qa keeps 20)."""
    from mmcourse.train import tasks as training

    result = training.train(task="match", fusion="objects", level="relations", train_size=64,
                            test_size=32, log=None)
    assert result["epochs_run"] == 80 and result["batch_size"] == 256
    assert result["params"] > 59_000  # the word slots and the pair read-out are in it
    assert training.train(task="match", fusion="objects", level="relations", train_size=64,
                          test_size=32, log=None, epochs=2)["epochs_run"] == 2
