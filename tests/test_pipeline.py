"""tf.data pipelines (mmcourse.data.pipeline)."""

import numpy as np
import pytest

from mmcourse.data import draw, pipeline, statements, store, text
from mmcourse.data import scenes as data


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    sizes = {level: {"train": 40, "val": 10, "test": 10} for level in data.LEVELS}
    return store.generate(tmp_path_factory.mktemp("pipe"), progress=False, sizes=sizes)


def _batches(dataset):
    return [((i.numpy(), t.numpy()), y.numpy()) for (i, t), y in dataset]


@pytest.mark.parametrize(("task", "label_dtype"), [("match", np.float32), ("qa", np.int32),
                                                     ("retrieval", np.int32)])
def test_batches_have_the_contract_shapes(root, task, label_dtype):
    dataset = pipeline.make_dataset(task, "relations", "train", batch_size=16, root=root)
    (images, ids), labels = dataset.element_spec
    assert tuple(images.shape) == (None, 64, 64, 3) and images.dtype.name == "float32"
    assert tuple(ids.shape) == (None, text.SEQUENCE_LENGTH) and ids.dtype.name == "int32"
    batches = _batches(dataset)
    assert [len(y) for _, y in batches] == [16] * (len(batches) - 1) + [len(batches[-1][1])]
    total = sum(len(y) for _, y in batches)
    assert total == len(data.load_records(task, "relations", "train", root))
    for (images, _ids), labels in batches:
        assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
        assert labels.dtype == label_dtype


def test_unshuffled_matches_load_arrays(root):
    images, texts, labels = data.load_arrays("match", "attributes", "val", root)
    batches = _batches(pipeline.make_dataset("match", "attributes", "val", batch_size=8,
                                             root=root))
    np.testing.assert_allclose(np.concatenate([b[0][0] for b in batches]), images / 255.0,
                               atol=1e-7)
    np.testing.assert_array_equal(np.concatenate([b[0][1] for b in batches]),
                                  text.vectorize(texts, root=root))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)


def test_seeded_shuffle_and_augmentation_are_reproducible(root):
    def first_epoch(seed, augment=True):
        return _batches(pipeline.make_dataset("match", "relations", "train", batch_size=16,
                                              augment=augment, seed=seed, root=root))

    a, b, c = first_epoch(1), first_epoch(1), first_epoch(2)
    for (x, y) in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0][0], y[0][0])
        np.testing.assert_array_equal(x[0][1], y[0][1])
        np.testing.assert_array_equal(x[1], y[1])
    assert not np.array_equal(a[0][0][0], c[0][0][0])
    plain = first_epoch(1, augment=False)
    assert not np.array_equal(a[0][0][0], plain[0][0][0])  # augmented
    np.testing.assert_array_equal(a[0][1], plain[0][1])  # same order, same labels


def test_each_epoch_is_reshuffled(root):
    dataset = pipeline.make_dataset("match", "attributes", "train", batch_size=80,
                                    root=root, augment=True, seed=4)
    first, second = _batches(dataset), _batches(dataset)
    assert not np.array_equal(first[0][1], second[0][1]) or \
        not np.array_equal(first[0][0][1], second[0][0][1])


def test_augmented_texts_stay_true(root):
    """Flipped images get swapped words: relabel each augmented text against its scene."""
    records = data.load_records("match", "relations", "train", root)
    scenes = {r["scene"]: r["objects"] for r in data.load_records("scenes", "relations",
                                                                  "train", root)}
    dataset = pipeline.make_dataset("match", "relations", "train", batch_size=16, shuffle=False,
                                    augment=True, seed=3, root=root)
    vocabulary = text.load_vocabulary(root)
    flipped_texts = 0
    index = 0
    for (images, ids), labels in _batches(dataset):
        for image, row, label in zip(images, ids, labels, strict=True):
            record = records[index]
            index += 1
            augmented_text = text.decode(row, vocabulary=vocabulary)[0]
            objects = [dict(o) for o in scenes[record["scene"]]]
            original = draw.render_scene(objects).astype(np.float32) / 255
            # Which flip happened? The closest of the four flips of the original image.
            flips = {(h, v): original[::-1 if v else 1, ::-1 if h else 1]
                     for h in (False, True) for v in (False, True)}
            h, v = min(flips, key=lambda k: np.abs(flips[k] - image).mean())
            for obj in objects:
                obj["x"] = 63 - obj["x"] if h else obj["x"]
                obj["y"] = 63 - obj["y"] if v else obj["y"]
            statement = statements.parse_statement(augmented_text)
            assert statements.is_true(statement, objects) == bool(label), (record, h, v)
            flipped_texts += augmented_text != record["text"]
    assert flipped_texts > 10


def test_qa_answers_follow_flips(root):
    answers = text.answer_vocabulary(root)
    records = data.load_records("qa", "relations", "train", root)
    dataset = pipeline.make_dataset("qa", "relations", "train", batch_size=100, shuffle=False,
                                    augment=True, seed=0, root=root)
    (_, ids), labels = _batches(dataset)[0]
    vocabulary = text.load_vocabulary(root)
    swap = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    changed = 0
    for row, label, record in zip(ids, labels, records[:len(labels)], strict=True):
        question = text.decode(row, vocabulary=vocabulary)[0]
        expected = record["answer"]
        if question != record["text"]:  # a flip swapped the question's words ...
            expected = swap[expected]  # ... so the answer must swap too
            changed += 1
        assert answers[label] == expected, (record, question)
    assert changed > 0


def test_own_folder(root):
    dataset = pipeline.make_dataset(folder=data.DATA_DIR / "samples", root=root, batch_size=4,
                                    augment=True)
    (images, ids), labels = next(iter(dataset))
    assert images.shape == (4, 64, 64, 3) and ids.shape == (4, text.SEQUENCE_LENGTH)
    assert set(labels.numpy().tolist()) <= {0.0, 1.0}


def test_dataset_from_arrays_rejects_bad_input():
    images = np.zeros((4, 64, 64, 3), np.uint8)
    ids = np.zeros((4, 12), np.int32)
    labels = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="images must be uint8"):
        pipeline.dataset_from_arrays(images.astype(np.float32), ids, labels)
    with pytest.raises(ValueError, match="same length N, got 4, 3, 4"):
        pipeline.dataset_from_arrays(images, ids[:3], labels)
    with pytest.raises(ValueError, match="token_ids must be integers"):
        pipeline.dataset_from_arrays(images, ids.astype(np.float32), labels)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        pipeline.dataset_from_arrays(images, ids, labels[:, None])
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        pipeline.dataset_from_arrays(images, ids, labels, batch_size=0)
    with pytest.raises(ValueError, match="needs vocabulary"):
        pipeline.dataset_from_arrays(images, ids, labels, augment=True)
    with pytest.raises(ValueError, match="images is empty"):
        pipeline.dataset_from_arrays(images[:0], ids[:0], labels[:0])
    with pytest.raises(ValueError, match="task must be one of"):
        pipeline.make_dataset("captioning")
