"""The transformer over pixels taught where the objects are (notebook 06): the cell targets
against the scene by hand, the layers that read them (CellObjects, CellLoss, SceneQuestions)
against NumPy and Keras, and the whole-scene trainer against the model it trains."""

import numpy as np
import pytest

from mmcourse.data import cells, draw
from mmcourse.data import scenes as data

RED, BLUE = tuple(draw.COLOURS).index("red"), tuple(draw.COLOURS).index("blue")


def test_cell_targets_put_colour_shape_and_offset_in_the_centre_s_cell():
    """A red square at (20, 45): cell (row 5, column 2), whose centre is (19.5, 43.5), so the
    offset is (0.5 / 8, 1.5 / 8) cells; a blue circle at (63, 0): cell (0, 7), offset
    (3.5 / 8, -3.5 / 8). Every other cell is 0."""
    targets = cells.cell_targets([
        {"colour": "red", "shape": "square", "x": 20, "y": 45},
        {"colour": "blue", "shape": "circle", "x": 63, "y": 0}])
    assert targets.shape == (8, 8, 4) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[5, 2], [1 + RED, 1, 0.0625, 0.1875])
    np.testing.assert_allclose(targets[0, 7], [1 + BLUE, 0, 0.4375, -0.4375])
    targets[5, 2] = targets[0, 7] = 0
    assert not targets.any()


@pytest.mark.parametrize(("objects", "needle"), [
    ([{"colour": "red", "shape": "square", "x": 17, "y": 17},
      {"colour": "blue", "shape": "square", "x": 22, "y": 20}], "two object centres lie in cell"),
    ([{"colour": "red", "shape": "square", "x": 64, "y": 3}], "outside the 64-pixel image"),
])
def test_cell_targets_refuse_what_they_cannot_encode(objects, needle):
    with pytest.raises(ValueError, match=needle):
        cells.cell_targets(objects)
    with pytest.raises(ValueError, match="must be a multiple of grid 7"):
        cells.cell_targets([], grid=7)


def test_every_generated_scene_has_one_centre_per_cell(course_data):
    for split in ("train", "test"):
        for scene in data.load_records("scenes", "relations", split, course_data):
            assert (cells.cell_targets(scene["objects"])[..., 0] > 0).sum() == \
                len(scene["objects"])


@pytest.mark.parametrize(("limit", "questions"), [(None, None), (57, None), (300, 4)])
def test_scene_arrays_keep_every_record_once_beside_its_own_scene(course_data, limit,
                                                                 questions):
    records = data.load_records("qa", "relations", "test", course_data)[:limit]
    arrays = cells.scene_arrays("qa", "relations", "test", course_data, limit, questions)
    rows, q = arrays["labels"].shape
    assert q == (questions or (10 if limit is None else arrays["questions"]))
    assert arrays["records"] == len(records) and arrays["token_ids"].shape[:2] == (rows, q)
    scenes = data.load_records("scenes", "relations", "test", course_data)
    folder = data.DATA_DIR / "relations" / "test"
    by_image = {data.read_image(folder / s["image"]).tobytes(): s for s in scenes}
    seen = set()
    vocabulary = {t: i for i, t in enumerate(__import__("mmcourse.data.text", fromlist=["x"])
                                             .load_vocabulary(course_data))}
    for row in range(rows):
        scene = by_image[arrays["images"][row].tobytes()]  # the row's image is its scene's
        np.testing.assert_array_equal(arrays["cells"][row], cells.cell_targets(scene["objects"]))
        asked = {(r["text"], r["label"]) for r in records if r["scene"] == scene["scene"]}
        for ids, label in zip(arrays["token_ids"][row], arrays["labels"][row], strict=True):
            words = tuple(int(i) for i in ids if i)
            matches = [(t, lab) for t, lab in asked
                       if tuple(vocabulary.get(w, 1) for w in t.split()) == words
                       and lab == label]
            assert matches, (row, words, label)  # a record of this scene, never invented
            seen.update((scene["scene"], t) for t, _ in matches)
    assert len(seen) == len({(r["scene"], r["text"]) for r in records})  # none left out


# --- the layers ---------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_cell_objects_turn_predictions_into_tokens_and_counts_by_hand():
    from mmcourse.matcher.object_relations import CellObjects

    rng = np.random.default_rng(0)
    predictions = rng.normal(0, 2, size=(2, 4, 12)).astype("float32")  # a 2x2 grid
    predictions[0, 1, :7] = [-5, 5, 0, 0, 0, 0, 0]  # cell (0, 1): surely red's centre
    predictions[0, 2, :7] = [5, -5, 0, 0, 0, 0, 0]  # cell (1, 0): surely empty
    tokens, counts = (np.asarray(t) for t in CellObjects(grid=2)(predictions))
    colour, shape = _softmax(predictions[..., :7]), _softmax(predictions[..., 7:10])
    present = (colour[..., 0] < 0.5).astype("float32")
    column, row = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    x = (column + 0.5 + predictions[..., 10]) - 1.0  # 2 / grid = 1
    y = (row + 0.5 + predictions[..., 11]) - 1.0
    expected = np.concatenate([colour[..., 1:], shape, x[..., None], y[..., None],
                               present[..., None]], axis=-1)
    np.testing.assert_allclose(tokens, expected, atol=1e-5)
    np.testing.assert_allclose(counts, (present[..., None] * shape).sum(axis=1), atol=1e-5)
    assert present[0, 1] == 1 and present[0, 2] == 0
    assert CellObjects(grid=2).centre_index == 9


def test_the_cell_loss_is_cross_entropy_everywhere_plus_shape_and_offset_at_centres():
    import keras

    from mmcourse.matcher.object_relations import CellLoss

    rng = np.random.default_rng(1)
    predictions = rng.normal(size=(2, 4, 12)).astype("float32")
    targets = np.zeros((2, 2, 2, 4), "float32")
    targets[0, 0, 1] = [3, 2, 0.25, -0.125]  # example 0: one centre, in cell 1
    targets[1, 1, 0] = [1, 0, -0.5, 0.5]      # example 1: centres in cells 2 and 3
    targets[1, 1, 1] = [6, 1, 0.0, 0.25]
    flat = targets.reshape(2, 4, 4)
    colour_ce = -np.log(np.take_along_axis(_softmax(predictions[..., :7]),
                                           flat[..., :1].astype(int), -1))[..., 0]
    shape_ce = -np.log(np.take_along_axis(_softmax(predictions[..., 7:10]),
                                          flat[..., 1:2].astype(int), -1))[..., 0]
    offset = ((predictions[..., 10:12] - flat[..., 2:4]) ** 2).sum(-1)
    centre = (flat[..., 0] > 0).astype("float32")
    per_example = colour_ce.mean(-1) + (centre * (shape_ce + offset)).sum(-1) / (
        centre.sum(-1) + 1)
    loss = CellLoss()
    np.testing.assert_allclose(float(loss(targets, predictions)), per_example.mean(), rtol=1e-5)
    # Keras' own cross-entropy gives the colour term
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        flat[..., 0], predictions[..., :7])
    np.testing.assert_allclose(np.asarray(keras_ce), colour_ce, rtol=1e-5)
    assert CellLoss.from_config(loss.get_config()).shapes == 3


@pytest.mark.parametrize(("mode", "shape", "expected"), [
    ("repeat", (2, 5), lambda v: np.repeat(v, 3, axis=0)),  # each scene once per question
    ("fold", (2, 3, 5), lambda v: v.reshape(6, 5)),
    ("unfold", (6, 5), lambda v: v.reshape(2, 3, 5)),
])
def test_scene_questions_match_numpy_repeat_and_reshape(mode, shape, expected):
    from mmcourse.matcher.object_relations import SceneQuestions

    values = np.arange(np.prod(shape), dtype="float32").reshape(shape)
    layer = SceneQuestions(3, mode)
    got = np.asarray(layer(values))
    np.testing.assert_array_equal(got, expected(values))
    if mode == "fold":  # question q of scene s is row s * Q + q
        np.testing.assert_array_equal(got[4], values[1, 1])
    assert SceneQuestions.from_config(layer.get_config()).mode == mode
    with pytest.raises(ValueError, match="mode must be one of"):
        SceneQuestions(3, "stack")
    with pytest.raises(ValueError, match="questions must be a positive int"):
        SceneQuestions(0, mode)


# --- the model and its trainer ------------------------------------------------------------


@pytest.mark.parametrize("task", ["qa", "match"])
def test_the_trainer_answers_each_scene_s_questions_as_the_model_does(task):
    from mmcourse.matcher.model import build_model, cell_trainer

    model = build_model(task, "transformer", vocabulary_size=30, num_answers=7)
    trainer = cell_trainer(model, questions_per_scene=3)
    assert {id(w) for w in trainer.weights} == {id(w) for w in model.weights}  # the same layers
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(2, 64, 64, 3)).astype("float32")
    token_ids = rng.integers(1, 30, size=(2, 3, 12)).astype("int32")
    token_ids[:, :, 9:] = 0
    out = trainer.predict([images, token_ids], verbose=0)
    assert set(out) == {"answer", "cells"} and out["cells"].shape == (2, 64, 12)
    per_question = model.predict([np.repeat(images, 3, axis=0), token_ids.reshape(6, 12)],
                                 verbose=0)
    np.testing.assert_allclose(out["answer"].reshape(per_question.shape), per_question,
                               atol=1e-5)
    with pytest.raises(ValueError, match="questions_per_scene must be >= 1"):
        cell_trainer(model, 0)
